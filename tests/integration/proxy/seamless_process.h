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
  // Unless the config names one, the handoff dir is <dir>/run: parallel tests must not
  // share one. `binary` defaults to the build's seamless.
  SeamlessProcess(const std::string& netns, const std::string& config_yaml,
                  const std::string& wrapper = "", const std::string& binary = "");
  ~SeamlessProcess();
  SeamlessProcess(const SeamlessProcess&) = delete;
  SeamlessProcess& operator=(const SeamlessProcess&) = delete;

  pid_t pid() const { return pid_; }
  // The keeper's current worker (its only child), or -1.
  pid_t worker_pid() const;
  // The temp dir holding the config, the log and the handoff dir.
  const std::string& dir() const { return dir_; }
  std::string config_path() const { return dir_ + "/seamless.yaml"; }
  // Replaces the config file (with the same handoff dir), e.g. before a SIGHUP.
  void rewrite_config(const std::string& config_yaml) const;
  // How many times `text` occurs in the log.
  size_t count_in_log(const std::string& text) const;
  // Waits until `text` occurs at least `n` times.
  bool wait_for_count(const std::string& text, size_t n,
                      std::chrono::milliseconds timeout = std::chrono::seconds(20)) const;
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
  std::string with_handoff_dir(const std::string& config_yaml) const;

  std::string dir_;
  std::string log_path_;
  pid_t pid_ = -1;
  std::optional<int> status_;
};

}  // namespace seamless::proxy::testing
