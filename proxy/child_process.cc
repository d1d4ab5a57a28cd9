#include "proxy/child_process.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstring>

extern char** environ;

namespace seamless::proxy {
namespace {

constexpr size_t kMaxOutput = 64 * 1024;

std::vector<char*> c_strings(std::vector<std::string>& strings) {
  std::vector<char*> out;
  for (std::string& s : strings) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

// In the child between fork and exec: only async-signal-safe calls.
[[noreturn]] void exec_child(const SpawnSpec& spec, char* const* argv, char* const* envp) {
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  for (int fd : spec.inherit_fds) ::fcntl(fd, F_SETFD, 0);
  if (spec.stdout_fd >= 0) ::dup2(spec.stdout_fd, 1);
  if (spec.stderr_fd >= 0) ::dup2(spec.stderr_fd, 2);
  if (spec.exe_fd >= 0) {
    ::syscall(SYS_execveat, spec.exe_fd, "", argv, envp, AT_EMPTY_PATH);
  } else {
    ::execve("/proc/self/exe", argv, envp);
  }
  ::_exit(127);
}

}  // namespace

std::vector<std::string> merged_environment(const std::vector<std::string>& extra) {
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string entry(*e);
    const std::string name = entry.substr(0, entry.find('='));
    bool replaced = false;
    for (const std::string& x : extra) replaced = replaced || x.substr(0, x.find('=')) == name;
    if (!replaced) env.push_back(entry);
  }
  env.insert(env.end(), extra.begin(), extra.end());
  return env;
}

Result<ChildProcess> spawn_child(const SpawnSpec& spec) {
  std::vector<std::string> argv_strings = spec.argv;
  std::vector<std::string> env_strings = merged_environment(spec.extra_env);
  std::vector<char*> argv = c_strings(argv_strings);
  std::vector<char*> envp = c_strings(env_strings);
  const pid_t pid = ::fork();
  if (pid < 0) return Error::from_errno("fork");
  if (pid == 0) exec_child(spec, argv.data(), envp.data());
  // Not yet reaped, so the pid cannot have been reused.
  const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (pidfd < 0) {
    const Error e = Error::from_errno("pidfd_open (needs Linux 5.3)");
    ::kill(pid, SIGKILL);
    (void)reap_child(pid);
    return e;
  }
  ::fcntl(pidfd, F_SETFD, FD_CLOEXEC);
  return ChildProcess{pid, UniqueFd(pidfd)};
}

Result<int> reap_child(pid_t pid) {
  int status = 0;
  for (;;) {
    if (::waitpid(pid, &status, 0) == pid) return status;
    if (errno != EINTR) return Error::from_errno("waitpid " + std::to_string(pid));
  }
}

std::string describe_exit(int status) {
  if (WIFEXITED(status)) return "exited " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    const char* name = sigabbrev_np(WTERMSIG(status));
    return std::string("killed by SIG") + (name ? name : std::to_string(WTERMSIG(status)).c_str());
  }
  return "status " + std::to_string(status);
}

Result<CompletedRun> run_child(SpawnSpec spec, std::chrono::milliseconds timeout) {
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) return Error::from_errno("pipe");
  UniqueFd read_end(pipe_fds[0]);
  UniqueFd write_end(pipe_fds[1]);
  spec.stdout_fd = spec.stderr_fd = write_end.get();
  Result<ChildProcess> child = spawn_child(spec);
  write_end.reset();
  if (!child) return child.error();
  CompletedRun run;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  bool pipe_open = true;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      ::kill(child->pid, SIGKILL);
      run.timed_out = true;
      break;
    }
    pollfd fds[2] = {{child->pidfd.get(), POLLIN, 0}, {read_end.get(), POLLIN, 0}};
    const int n = ::poll(fds, pipe_open ? 2 : 1, static_cast<int>(left.count()));
    if (n < 0 && errno != EINTR) break;
    if (pipe_open && (fds[1].revents & (POLLIN | POLLHUP)) != 0) {
      char buf[4096];
      const ssize_t got = ::read(read_end.get(), buf, sizeof(buf));
      if (got > 0 && run.output.size() < kMaxOutput) run.output.append(buf, size_t(got));
      if (got <= 0) pipe_open = false;
      continue;
    }
    if ((fds[0].revents & POLLIN) != 0) break;
  }
  Result<int> status = reap_child(child->pid);
  if (!status) return status.error();
  // What the child wrote just before it exited.
  ::fcntl(read_end.get(), F_SETFL, O_NONBLOCK);
  char buf[4096];
  for (ssize_t got; pipe_open && (got = ::read(read_end.get(), buf, sizeof(buf))) > 0;) {
    if (run.output.size() < kMaxOutput) run.output.append(buf, size_t(got));
  }
  run.wait_status = *status;
  return run;
}

}  // namespace seamless::proxy
