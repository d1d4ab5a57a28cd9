// Harness of the handoff bench: a two-namespace topology and a `seamless run` started
// from a private copy of the binary (so that an upgrade execs that copy, and nothing
// else on the machine is touched). Everything made here is removed by destructors,
// also when the bench fails or is interrupted (SIGINT/SIGTERM make the waits throw).
//
//   sl-<pid>-<k>-peer  198.18.0.1/24   the bench's clients and backend
//   sl-<pid>-<k>-host  198.18.0.2/24   seamless (keeper + worker)
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <string>

#include "base/unique_fd.h"

namespace seamless::bench {

// Set by SIGINT/SIGTERM: every wait gives up and the run unwinds.
void install_interrupt_handlers();
bool interrupted();

// What the bench does to seamless once the baseline is recorded.
//   kUpgrade  SIGUSR2 to the keeper; ends with "upgrade handoff done".
//   kCrash    SIGKILL to the worker; the keeper checkpoints and a new worker restores,
//             ending with "crash handoff done".
enum class Event { kUpgrade, kCrash };
const char* event_name(Event e);
// "upgrade" or "crash"; nullopt for anything else.
std::optional<Event> parse_event(const std::string& name);

// Runs `command` through /bin/sh; throws when it fails.
void must_sh(const std::string& command);

// Polls `condition` every millisecond; false when `timeout` passed first.
bool wait_until(const std::function<bool()>& condition, std::chrono::milliseconds timeout);

class Topology {
 public:
  Topology();
  ~Topology();
  Topology(const Topology&) = delete;
  Topology& operator=(const Topology&) = delete;

  const std::string& peer() const { return peer_; }
  const std::string& host() const { return host_; }
  int peer_fd() const { return peer_fd_.get(); }
  static constexpr const char* kPeer4 = "198.18.0.1";
  static constexpr const char* kHost4 = "198.18.0.2";

 private:
  std::string peer_, host_;
  UniqueFd peer_fd_;
  bool made_peer_ = false, made_host_ = false;
};

// Moves the calling thread into a namespace for the guard's lifetime; sockets made
// meanwhile stay there.
class InNamespace {
 public:
  explicit InNamespace(int netns_fd);
  ~InNamespace();
  InNamespace(const InNamespace&) = delete;
  InNamespace& operator=(const InNamespace&) = delete;

 private:
  UniqueFd previous_;
};

class SeamlessRun {
 public:
  // Copies `binary` into a fresh temp dir, writes `config_yaml` there (the string
  // "@DIR@" is replaced by that dir) and starts `seamless run` in `netns`.
  SeamlessRun(const std::string& netns, const std::string& binary, const std::string& config_yaml);
  // SIGTERM, then SIGKILL after 10 s; the temp dir goes.
  ~SeamlessRun();
  SeamlessRun(const SeamlessRun&) = delete;
  SeamlessRun& operator=(const SeamlessRun&) = delete;

  pid_t pid() const { return pid_; }
  std::string log() const;
  // Waits for `text` in the log after byte `from`; throws on timeout with the log's tail.
  void wait_for_log(const std::string& text, std::chrono::milliseconds timeout,
                    size_t from = 0) const;
  void signal(int signum) const;
  // The keeper's only child, from /proc/<keeper>/task/<keeper>/children; throws unless
  // there is exactly one (outside a handoff that is the worker).
  pid_t worker_pid() const;
  // SIGTERM and wait; the exit status (128+N for signal N), or -1 if it had to be killed.
  int stop(std::chrono::milliseconds timeout);

 private:
  std::string dir_;
  std::string state_dir_;  // tmpfs: the handoff dir
  pid_t pid_ = -1;
  bool exited_ = false;
};

// Runs `command` in `netns` and returns its standard output.
std::string capture_in(const std::string& netns, const std::string& command);

// seamless_handoff_phase_seconds sum and count by phase, from a Prometheus text page.
struct PhaseSeconds {
  double sum = 0;
  double count = 0;
};
std::map<std::string, PhaseSeconds> parse_phase_metrics(const std::string& page);

// The handoff as the keeper's and workers' log lines tell it, in ms after `start`
// (a wall-clock time in ms since the epoch; log times have ms resolution); -1 = absent.
struct LogTimeline {
  // upgrade: "quiescing worker", after the preflight and the new worker's start
  double quiesce_asked = -1;
  double quiesced = -1;         // upgrade: "quiesced: handing over"
  double worker_died = -1;      // crash: "keeper: worker P killed ... while serving N pairs"
  double checkpoint_done = -1;  // "checkpoint: N pairs ..."
  double exec = -1;             // upgrade: "upgrade: exec"
  double new_keeper = -1;       // upgrade: "keeper P running (generation 2)"
  double worker_ready = -1;     // "worker P ready: ..." of the restoring worker
  double done = -1;             // "upgrade handoff done" / "crash handoff done"
  double checkpoint_ms = -1;    // "... in X ms" of the checkpoint line
  std::string died_line, checkpoint_line, done_line;
};
LogTimeline parse_log_timeline(const std::string& log, int64_t start_wall_ms, Event event);

}  // namespace seamless::bench
