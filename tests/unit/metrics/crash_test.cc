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
constexpr std::uint64_t kChildIterations = 20'000;  // the parent waits for this many

// The child: maps the segment afresh from the inherited fd (as a new worker would), then
// updates it in an endless loop, inserting a new backend every so often, until killed.
[[noreturn]] void hammer(int inherited_fd) {
  Result<MetricsSegment> segment = MetricsSegment::adopt(UniqueFd(::dup(inherited_fd)));
  if (!segment) ::_exit(3);
  Metrics metrics(*segment);
  Result<ServiceMetrics> svc = metrics.service("svc");
  if (!svc) ::_exit(4);
  for (std::uint64_t i = 0;; ++i) {
    // Order matters for the invariants the parent checks: bytes, then total, then active.
    svc->add_bytes(Direction::kIn, 1);
    svc->connection_opened();
    svc->connection_closed();
    metrics.record_handoff(HandoffReason::kCrash, HandoffResult::kSuccess);
    metrics.observe_phase(HandoffPhase::kRestore, 0.001);
    if (i % 16 == 0) {
      const std::string address = "127.0.0.1:" + std::to_string(1 + (i / 16) % 900);
      if (!metrics.backend_connect_failed("svc", address).ok()) ::_exit(5);
    }
  }
}

std::uint64_t bytes_in(const Snapshot& s, const std::string& name) {
  for (const ServiceSample& service : s.services) {
    if (service.name == name) return service.bytes[0];
  }
  return 0;
}

TEST(MetricsCrash, SigkillMidUpdateLeavesCountersIntactAndTablesUsable) {
  Result<MetricsSegment> segment = MetricsSegment::create();
  ASSERT_TRUE(segment);
  Metrics metrics(*segment);
  ASSERT_TRUE(metrics.add_bytes("svc", Direction::kIn, kSeedBytes).ok());

  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) hammer(segment->fd());

  // Kill it at whatever instruction it has reached once it is well into the loop.
  std::uint64_t seen = 0;
  ASSERT_TRUE(wait_until([&] {
    const std::uint64_t now = bytes_in(take_snapshot(segment->data()), "svc");
    EXPECT_GE(now, seen);  // monotonic while it runs
    seen = now;
    return now >= kSeedBytes + kChildIterations;
  }));
  ASSERT_EQ(::kill(child, SIGKILL), 0);
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << "child exited " << status;

  // Map it again, as the next worker would, and find every value where the child left it.
  Result<MetricsSegment> again = MetricsSegment::adopt(UniqueFd(::dup(segment->fd())));
  ASSERT_TRUE(again) << again.error().message;
  const Snapshot after = take_snapshot(again->data());
  EXPECT_EQ(take_snapshot(again->data()).services[0].bytes[0], after.services[0].bytes[0]);
  ASSERT_EQ(after.services.size(), 1u);
  const ServiceSample& svc = after.services[0];
  const std::uint64_t iterations = svc.bytes[0] - kSeedBytes;
  EXPECT_GE(svc.bytes[0], seen);
  // The kill fell somewhere inside one iteration: each later step is at most one behind.
  EXPECT_LE(iterations - svc.total, 1u);
  EXPECT_LE(svc.total, iterations);
  EXPECT_TRUE(svc.active == 0 || svc.active == 1) << svc.active;
  const std::uint64_t handoffs = after.handoffs[2][0];
  const std::uint64_t restores = after.phases[static_cast<std::size_t>(HandoffPhase::kRestore)].count;
  EXPECT_LE(svc.total - handoffs, 1u);
  EXPECT_LE(handoffs - restores, 1u);

  // No backend appears twice, and the tables still take lookups and inserts.
  std::set<std::tuple<std::string, std::string>> keys;
  for (const BackendSample& backend : after.backends) {
    EXPECT_TRUE(keys.emplace(backend.service, backend.address).second) << backend.address;
  }
  Metrics next_worker(*again);
  for (int port = 1; port <= 1000; ++port) {
    ASSERT_TRUE(next_worker.backend_connect_failed("svc", "127.0.0.1:" + std::to_string(port)).ok())
        << port;
  }
  ASSERT_TRUE(next_worker.connection_opened("svc").ok());
  ASSERT_TRUE(next_worker.connection_opened("after-crash").ok());
  const Snapshot final_state = take_snapshot(again->data());
  EXPECT_EQ(final_state.backends.size(), 1000u);
  EXPECT_EQ(final_state.services.size(), 2u);
  EXPECT_EQ(bytes_in(final_state, "svc"), svc.bytes[0]);
}

}  // namespace
}  // namespace seamless::metrics
