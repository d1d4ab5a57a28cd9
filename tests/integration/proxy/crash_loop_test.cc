// The keeper's crash-loop backoff (DESIGN §2, issue 6): a worker that keeps dying is
// replaced at once for three deaths in quick succession (each within 10 s of the one
// before), then after restart_backoff_min (100 ms), doubling up to restart_backoff_max.
// The keeper holds every socket throughout: the streams, checked byte for byte, only
// stall. A quiet period longer than 10 s forgives the loop.
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "tests/integration/proxy/keeper_fixture.h"

namespace seamless::proxy::testing {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// Every "next worker in Nms" the keeper logged, in order. (No std::regex: GCC 12 with
// ASan warns about libstdc++'s regex, maybe-uninitialized, and -Werror fails the build.)
std::vector<int> backoffs_logged(const std::string& log) {
  static const std::string kLine = "worker crash loop: next worker in ";
  std::vector<int> out;
  for (size_t at = log.find(kLine); at != std::string::npos; at = log.find(kLine, at + 1)) {
    out.push_back(std::stoi(log.substr(at + kLine.size())));
  }
  return out;
}

// The sum of every sample of the family `name` (all its label sets).
double metric_sum(const std::string& text, const std::string& name) {
  double sum = 0;
  for (size_t at = text.find(name + "{"); at != std::string::npos;
       at = text.find(name + "{", at + 1)) {
    if (at != 0 && text[at - 1] != '\n') continue;
    const size_t value = text.find("} ", at);
    if (value == std::string::npos) break;
    sum += std::stod(text.substr(value + 2));
  }
  return sum;
}

class CrashLoopTest : public ProxyKeeperTest {
 protected:
  // SIGKILLs the current worker and waits until its successor serves (the n-th
  // "crash handoff done"): how long that took, or nullopt (and a failure).
  std::optional<Clock::duration> kill_worker(size_t n) {
    const pid_t worker = proxy->worker_pid();
    if (worker <= 0) {
      ADD_FAILURE() << "no worker before kill " << n << ":\n" << proxy->log();
      return std::nullopt;
    }
    const Clock::time_point killed = Clock::now();
    if (::kill(worker, SIGKILL) != 0) {
      ADD_FAILURE() << "kill " << worker << ": " << std::strerror(errno);
      return std::nullopt;
    }
    if (!proxy->wait_for_count("crash handoff done", n, std::chrono::seconds(30))) {
      return std::nullopt;
    }
    return Clock::now() - killed;
  }
};

TEST_F(CrashLoopTest, AWorkerThatKeepsDyingIsRespawnedAfterAGrowingBackoff) {
  auto echo = backend(7101);
  start_copy(config_yaml(ServiceSpec{}));
  const pid_t keeper = proxy->pid();
  open_streams(10);

  // Seven deaths, each right after the new worker is up: the first three are replaced
  // at once, then 100, 200, 400, 800 ms.
  size_t kills = 0;
  std::optional<Clock::duration> recovery;
  for (int i = 0; i < 7; ++i) {
    recovery = kill_worker(++kills);
    ASSERT_TRUE(recovery.has_value());
  }
  EXPECT_EQ(backoffs_logged(proxy->log()), (std::vector<int>{100, 200, 400, 800})) << proxy->log();
  // The log is not all: the last worker really came no sooner than its backoff (a lower
  // bound only; the timer may start a few ms before the death was noticed).
  EXPECT_GE(*recovery, milliseconds(700));
  ASSERT_TRUE(streams_advance(256 * 1024));

  // Over 10 s without a death (streams checked all along) forgive the loop: the next
  // three deaths are replaced at once, and the fourth waits restart_backoff_min again.
  const Clock::time_point quiet_until = Clock::now() + milliseconds(10'500);
  while (Clock::now() < quiet_until) ASSERT_TRUE(streams_advance(16 * 1024));
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(kill_worker(++kills).has_value());
  EXPECT_EQ(backoffs_logged(proxy->log()), (std::vector<int>{100, 200, 400, 800, 100}))
      << proxy->log();

  ASSERT_TRUE(streams_advance(256 * 1024));
  pump->stop();
  EXPECT_EQ(pump->errors(), std::vector<std::string>{});
  // A health probe cut by a kill may end in a FIN; the streams (checked to the byte,
  // still moving) show that no proxied leg did.
  EXPECT_EQ(echo->resets(), 0u);

  // The same keeper throughout, still running, and it counted every restart.
  EXPECT_EQ(proxy->pid(), keeper);
  EXPECT_FALSE(proxy->wait_exit(milliseconds(0)).has_value()) << proxy->log();
  const std::string m = metrics();
  EXPECT_EQ(metric_sum(m, "seamless_worker_restarts_total"), double(kills)) << m;
  EXPECT_EQ(metric(m, "seamless_worker_restarts_total{cause=\"signal\"}"), double(kills)) << m;
  EXPECT_EQ(metric(m, "seamless_handoffs_total{reason=\"crash\",result=\"success\"}"),
            double(kills))
      << m;
}

}  // namespace
}  // namespace seamless::proxy::testing
