// A `seamless run` child process inside a test namespace: writes the config to a temp
// dir, starts the binary under `ip netns exec`, collects its stderr in a file, and
// kills it (by PID) at the end if the test did not stop it.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>

namespace seamless::proxy::testing {

class SeamlessProcess {
 public:
  // Starts `seamless run --config <dir>/seamless.yaml` in namespace `netns`, through
  // `wrapper` (words split on spaces; it must exec the binary in place) if not empty.
  SeamlessProcess(const std::string& netns, const std::string& config_yaml,
                  const std::string& wrapper = "");
  ~SeamlessProcess();
  SeamlessProcess(const SeamlessProcess&) = delete;
  SeamlessProcess& operator=(const SeamlessProcess&) = delete;

  pid_t pid() const { return pid_; }
  // Everything the process wrote to stdout and stderr so far.
  std::string log() const;
  // Waits until the log contains `text`; false (and the log in the failure) on timeout.
  bool wait_for_log(const std::string& text,
                    std::chrono::milliseconds timeout = std::chrono::seconds(10)) const;
  // Waits for "worker ready".
  bool wait_ready() const { return wait_for_log("worker ready"); }
  void signal(int signum) const;
  // The exit status once the process has exited (128+N for signal N), or nullopt.
  std::optional<int> wait_exit(std::chrono::milliseconds timeout = std::chrono::seconds(10));

 private:
  std::string dir_;
  std::string log_path_;
  pid_t pid_ = -1;
  std::optional<int> status_;
};

}  // namespace seamless::proxy::testing
