// Starting the keeper's children — workers and the upgrade preflight — as separate
// executables with exactly the fds they need, each watched through its own pidfd
// (DESIGN §2: a preflight child is never mistaken for the worker).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <string>
#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"

namespace seamless::proxy {

struct SpawnSpec {
  int exe_fd = -1;                      // execveat(exe_fd, "", AT_EMPTY_PATH); -1: /proc/self/exe
  std::vector<std::string> argv;        // argv[0] included
  std::vector<std::string> extra_env;   // "NAME=value", added to (or replacing in) environ
  std::vector<int> inherit_fds;         // stay open in the child under the same numbers
  int stdout_fd = -1;                   // dup2'ed onto 1 / 2 when >= 0
  int stderr_fd = -1;
};

struct ChildProcess {
  pid_t pid = -1;
  UniqueFd pidfd;  // readable once the child has exited
};

Result<ChildProcess> spawn_child(const SpawnSpec& spec);

// Reaps an exited child (after its pidfd became readable, or to block until it exits).
// Returns the raw wait status.
Result<int> reap_child(pid_t pid);

// "exited 3", "killed by SIGKILL".
std::string describe_exit(int wait_status);

struct CompletedRun {
  int wait_status = 0;
  bool timed_out = false;  // killed with SIGKILL at the deadline
  std::string output;      // stdout and stderr together, capped at 64 KiB
};

// Runs a child to completion, capturing its output, SIGKILLed at `timeout`.
Result<CompletedRun> run_child(SpawnSpec spec, std::chrono::milliseconds timeout);

// environ with `extra` ("NAME=value") replacing or added.
std::vector<std::string> merged_environment(const std::vector<std::string>& extra);

}  // namespace seamless::proxy
