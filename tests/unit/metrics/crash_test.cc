// A process killed with SIGKILL at an arbitrary instruction while it updates the segment
// must leave every counter where it was (never lower, never torn) and the slot tables usable.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <set>
#include <string>
#include <tuple>

#include "metrics/metrics.h"
#include "metrics/snapshot.h"
#include "tests/unit/metrics/test_util.h"

namespace seamless::metrics {
namespace {

using testing::wait_until;

constexpr std::uint64_t kSeedBytes = 1'000'000;
constexpr int kRounds = 5;                            // successive workers, each SIGKILLed
constexpr std::uint64_t kIterationsPerRound = 3'000;  // at least; killed while inserting
constexpr int kPorts = 1000;                          // distinct backends the workers insert

// The child: maps the segment afresh from the inherited fd (as a new worker would), then
// updates it in an endless loop, looking up or inserting a backend every 16 turns, until
// it is killed.
[[noreturn]] void hammer(int inherited_fd) {
  Result<MetricsSegment> segment = MetricsSegment::adopt(UniqueFd(::dup(inherited_fd)));
  if (!segment) ::_exit(3);
  Metrics metrics(*segment);
  Result<ServiceMetrics> svc = metrics.service("svc");
  if (!svc) ::_exit(4);
  for (std::uint64_t i = 0;; ++i) {
    // Order matters for the invariants the parent checks: bytes, total, active, handoff,
    // phase histogram; a kill leaves each later one at most one step behind.
    svc->add_bytes(Direction::kIn, 1);
    svc->connection_opened();
    svc->connection_closed();
    metrics.record_handoff(HandoffReason::kCrash, HandoffResult::kSuccess);
    metrics.observe_phase(HandoffPhase::kRestore, 0.001);
    if (i % 16 == 0) {
      const std::string address = "127.0.0.1:" + std::to_string(1 + (i / 16) % kPorts);
      if (!metrics.backend_connect_failed("svc", address).ok()) ::_exit(5);
    }
  }
}

const ServiceSample* find(const Snapshot& s, const std::string& name) {
  for (const ServiceSample& service : s.services) {
    if (service.name == name) return &service;
  }
  return nullptr;
}

std::uint64_t bytes_in(layout::Segment& segment) {
  const Snapshot s = take_snapshot(segment);
  const ServiceSample* svc = find(s, "svc");
  return svc != nullptr ? svc->bytes[0] : 0;
}

// Starts a worker on the segment, lets it run past `target` bytes, and SIGKILLs it
// wherever it is. Checks the counter only ever rose while it ran.
void run_and_kill(MetricsSegment& segment, std::uint64_t target) {
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) hammer(segment.fd());
  std::uint64_t seen = 0;
  const bool reached = wait_until([&] {
    const std::uint64_t now = bytes_in(segment.data());
    EXPECT_GE(now, seen);
    seen = now;
    return now >= target;
  });
  ASSERT_EQ(::kill(child, SIGKILL), 0);
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(reached) << "worker stalled at " << seen;
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << "child exited " << status;
  EXPECT_GE(bytes_in(segment.data()), seen);
}

TEST(metrics_Crash, SigkilledWorkersLeaveCountersIntactAndTablesUsable) {
  Result<MetricsSegment> keeper = MetricsSegment::create();
  ASSERT_TRUE(keeper);
  ASSERT_TRUE(Metrics(*keeper).add_bytes("svc", Direction::kIn, kSeedBytes).ok());

  std::uint64_t before = kSeedBytes;
  for (int round = 1; round <= kRounds; ++round) {
    ASSERT_NO_FATAL_FAILURE(run_and_kill(*keeper, before + kIterationsPerRound));
    // Map it again, as the next worker would: every value is where the dead one left it.
    Result<MetricsSegment> again = MetricsSegment::adopt(UniqueFd(::dup(keeper->fd())));
    ASSERT_TRUE(again) << again.error().message;
    const Snapshot s = take_snapshot(again->data());
    ASSERT_EQ(s.services.size(), 1u);
    const ServiceSample& svc = s.services[0];
    EXPECT_GE(svc.bytes[0], before + kIterationsPerRound);
    EXPECT_EQ(bytes_in(again->data()), svc.bytes[0]);  // nobody writes any more
    before = svc.bytes[0];
    // Each kill leaves each later step of one turn at most one behind the step before it.
    const std::uint64_t turns = svc.bytes[0] - kSeedBytes;
    const std::uint64_t handoffs = s.handoffs[2][0];
    const std::uint64_t phases = s.phases[static_cast<std::size_t>(HandoffPhase::kRestore)].count;
    const auto lag = static_cast<std::uint64_t>(round);
    EXPECT_LE(svc.total, turns);
    EXPECT_LE(turns - svc.total, lag);
    EXPECT_LE(handoffs, svc.total);
    EXPECT_LE(svc.total - handoffs, lag);
    EXPECT_LE(phases, handoffs);
    EXPECT_LE(handoffs - phases, lag);
    EXPECT_GE(svc.active, 0);
    EXPECT_LE(svc.active, round);
  }

  // No backend appears twice, and the tables still take lookups and inserts.
  Result<MetricsSegment> next = MetricsSegment::adopt(UniqueFd(::dup(keeper->fd())));
  ASSERT_TRUE(next);
  std::set<std::tuple<std::string, std::string>> keys;
  for (const BackendSample& backend : take_snapshot(next->data()).backends) {
    EXPECT_TRUE(keys.emplace(backend.service, backend.address).second) << backend.address;
  }
  Metrics next_worker(*next);
  for (int port = 1; port <= kPorts; ++port) {
    const std::string address = "127.0.0.1:" + std::to_string(port);
    ASSERT_TRUE(next_worker.backend_connect_failed("svc", address).ok()) << port;
  }
  ASSERT_TRUE(next_worker.connection_opened("svc").ok());
  ASSERT_TRUE(next_worker.connection_opened("after-crash").ok());
  const Snapshot final_state = take_snapshot(next->data());
  EXPECT_EQ(final_state.backends.size(), static_cast<std::size_t>(kPorts));
  EXPECT_EQ(final_state.services.size(), 2u);
  EXPECT_EQ(find(final_state, "svc")->bytes[0], before);
}

}  // namespace
}  // namespace seamless::metrics
