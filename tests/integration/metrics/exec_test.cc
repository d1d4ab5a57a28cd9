// The segment survives execve: the keeper clears CLOEXEC, passes the fd number in
// SEAMLESS_METRICS_FD, and the new image (here a helper binary) adopts the same memory.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <vector>

#include "metrics/metrics.h"
#include "metrics/segment.h"

extern char** environ;

namespace seamless::metrics {
namespace {

struct ExecOutcome {
  std::string output;
  int exit_code = -1;
};

// Runs the helper with the segment's fd number in its environment; collects its stdout
// (bounded by a deadline) and its exit code.
ExecOutcome exec_helper(const MetricsSegment& segment, const char* add_bytes) {
  std::vector<std::string> env_strings;
  for (char** e = environ; *e != nullptr; ++e) env_strings.emplace_back(*e);
  env_strings.push_back(std::string(kFdEnvVar) + "=" + std::to_string(segment.fd()));
  std::vector<char*> envp;
  for (std::string& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::string path = METRICS_EXEC_HELPER;
  std::string arg = add_bytes;
  char* argv[] = {path.data(), arg.data(), nullptr};

  int out[2];
  EXPECT_EQ(::pipe2(out, O_CLOEXEC), 0);
  const pid_t child = ::fork();
  if (child == 0) {
    ::dup2(out[1], STDOUT_FILENO);  // dup2 clears CLOEXEC on the copy
    ::execve(path.c_str(), argv, envp.data());
    ::_exit(127);
  }
  ::close(out[1]);
  ExecOutcome outcome;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  char buffer[512];
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                          deadline - std::chrono::steady_clock::now())
                          .count();
    pollfd p{out[0], POLLIN, 0};
    if (left <= 0 || ::poll(&p, 1, static_cast<int>(left)) <= 0) {
      ::kill(child, SIGKILL);  // timed out: do not leave it behind
      break;
    }
    const ssize_t n = ::read(out[0], buffer, sizeof(buffer));
    if (n <= 0) break;
    outcome.output.append(buffer, static_cast<std::size_t>(n));
  }
  ::close(out[0]);
  int status = 0;
  ::waitpid(child, &status, 0);
  outcome.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return outcome;
}

TEST(metrics_Exec, SegmentSurvivesExecve) {
  Result<MetricsSegment> segment = MetricsSegment::create();
  ASSERT_TRUE(segment);
  Metrics metrics(*segment);
  ASSERT_TRUE(metrics.add_bytes("svc", Direction::kIn, 1000).ok());
  ASSERT_TRUE(metrics.set_backend_up("svc", "127.0.0.1:7001", false).ok());
  ASSERT_TRUE(segment->set_inherit_on_exec(true).ok());

  const ExecOutcome first = exec_helper(*segment, "5");
  EXPECT_EQ(first.exit_code, 0) << first.output;
  EXPECT_EQ(first.output, "bytes_in=1000 generation=0 backend_up=0\n");
  // And the second image sees what the first one wrote.
  const ExecOutcome second = exec_helper(*segment, "7");
  EXPECT_EQ(second.exit_code, 0) << second.output;
  EXPECT_EQ(second.output, "bytes_in=1005 generation=1 backend_up=0\n");

  EXPECT_EQ(metrics.find_service("svc")->bytes(Direction::kIn), 1012u);
  EXPECT_EQ(metrics.generation(), 2u);
}

// The control: with CLOEXEC left on, the new image has no segment to adopt.
TEST(metrics_Exec, CloexecSegmentDoesNotSurviveExecve) {
  Result<MetricsSegment> segment = MetricsSegment::create();
  ASSERT_TRUE(segment);
  const ExecOutcome outcome = exec_helper(*segment, "5");
  EXPECT_EQ(outcome.exit_code, 3);
  EXPECT_NE(outcome.output.find("error: adopt metrics segment fd"), std::string::npos)
      << outcome.output;
}

}  // namespace
}  // namespace seamless::metrics
