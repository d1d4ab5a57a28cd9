#include "metrics/metrics.h"

#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>

#include "metrics/snapshot.h"

namespace seamless::metrics {
namespace {

using ::testing::HasSubstr;

class metrics_Api : public ::testing::Test {
 protected:
  metrics_Api() : segment_(MetricsSegment::create().value()), metrics_(segment_) {}

  Snapshot snapshot() { return take_snapshot(segment_.data()); }

  MetricsSegment segment_;
  Metrics metrics_;
};

TEST_F(metrics_Api, ServiceHandleCountsConnectionsAndBytes) {
  Result<ServiceMetrics> pg = metrics_.service("pg");
  ASSERT_TRUE(pg) << pg.error().message;
  pg->connection_opened();
  pg->connection_opened();
  pg->connection_closed();
  pg->add_bytes(Direction::kIn, 100);
  pg->add_bytes(Direction::kOut, 7);
  EXPECT_EQ(pg->active(), 1);
  EXPECT_EQ(pg->total(), 2u);
  EXPECT_EQ(pg->bytes(Direction::kIn), 100u);
  EXPECT_EQ(pg->bytes(Direction::kOut), 7u);
  EXPECT_EQ(pg->name(), "pg");
  pg->set_active(5);
  EXPECT_EQ(pg->active(), 5);
}

TEST_F(metrics_Api, ServiceHandleCountsRejectionsByReason) {
  Result<ServiceMetrics> pg = metrics_.service("pg");
  Result<ServiceMetrics> web = metrics_.service("web");
  ASSERT_TRUE(pg && web);
  pg->connection_rejected(RejectReason::kMaxConnections);
  pg->connection_rejected(RejectReason::kMaxConnections);
  pg->connection_rejected(RejectReason::kNoBackend);
  web->connection_rejected(RejectReason::kNoBackend);
  EXPECT_EQ(pg->rejected(RejectReason::kMaxConnections), 2u);
  EXPECT_EQ(pg->rejected(RejectReason::kNoBackend), 1u);
  EXPECT_EQ(web->rejected(RejectReason::kMaxConnections), 0u);
  EXPECT_EQ(web->rejected(RejectReason::kNoBackend), 1u);
  // A rejection is neither an accepted connection nor an active one.
  EXPECT_EQ(pg->total(), 0u);
  EXPECT_EQ(pg->active(), 0);
  const Snapshot s = snapshot();
  ASSERT_EQ(s.services.size(), 2u);
  EXPECT_EQ(s.services[0].name, "pg");
  EXPECT_EQ(s.services[0].rejected[static_cast<std::size_t>(RejectReason::kMaxConnections)], 2u);
  EXPECT_EQ(s.services[0].rejected[static_cast<std::size_t>(RejectReason::kNoBackend)], 1u);
  EXPECT_EQ(s.services[1].rejected[static_cast<std::size_t>(RejectReason::kNoBackend)], 1u);
}

TEST_F(metrics_Api, RejectionsContinueInTheNextWorkersMapping) {
  ASSERT_TRUE(metrics_.service("pg"));
  metrics_.service("pg")->connection_rejected(RejectReason::kNoBackend);
  // A restarted worker adopts the same segment and looks the service up afresh.
  Result<MetricsSegment> next =
      MetricsSegment::adopt(UniqueFd(::fcntl(segment_.fd(), F_DUPFD_CLOEXEC, 0)));
  ASSERT_TRUE(next) << next.error().message;
  Metrics next_metrics(*next);
  Result<ServiceMetrics> pg = next_metrics.service("pg");
  ASSERT_TRUE(pg);
  EXPECT_EQ(pg->rejected(RejectReason::kNoBackend), 1u);
  pg->connection_rejected(RejectReason::kNoBackend);
  EXPECT_EQ(metrics_.find_service("pg")->rejected(RejectReason::kNoBackend), 2u);
}

TEST_F(metrics_Api, OneNameOneSlot) {
  Result<ServiceMetrics> first = metrics_.service("pg");
  ASSERT_TRUE(first);
  first->connection_opened();
  ASSERT_TRUE(metrics_.connection_opened("pg").ok());
  ASSERT_TRUE(metrics_.add_bytes("pg", Direction::kIn, 3).ok());
  EXPECT_EQ(first->total(), 2u);
  EXPECT_EQ(first->bytes(Direction::kIn), 3u);
  ASSERT_EQ(snapshot().services.size(), 1u);
  EXPECT_FALSE(metrics_.find_service("pg2"));
}

TEST_F(metrics_Api, RejectsNamesThatDoNotFit) {
  EXPECT_FALSE(metrics_.service(""));
  EXPECT_TRUE(metrics_.service(std::string(layout::kNameBytes - 1, 'a')));
  Result<ServiceMetrics> too_long = metrics_.service(std::string(layout::kNameBytes, 'a'));
  ASSERT_FALSE(too_long);
  EXPECT_THAT(too_long.error().message, HasSubstr("must be 1..63 bytes"));
  EXPECT_FALSE(metrics_.backend("pg", std::string(layout::kAddressBytes, '1')));
  EXPECT_FALSE(metrics_.service(std::string("a\0b", 3)));
}

TEST_F(metrics_Api, FullTableIsAnError) {
  for (std::size_t i = 0; i < layout::kMaxServices; ++i) {
    ASSERT_TRUE(metrics_.service("s" + std::to_string(i))) << i;
  }
  Result<ServiceMetrics> extra = metrics_.service("one-too-many");
  ASSERT_FALSE(extra);
  EXPECT_THAT(extra.error().message, HasSubstr("table is full (256 slots)"));
  // Existing names are still found in a full table.
  EXPECT_TRUE(metrics_.service("s17"));
  EXPECT_EQ(snapshot().services.size(), layout::kMaxServices);
}

TEST_F(metrics_Api, BackendHealthIsUnknownUntilSet) {
  EXPECT_EQ(metrics_.backend_up("pg", "127.0.0.1:5432"), std::nullopt);
  Result<BackendMetrics> backend = metrics_.backend("pg", "127.0.0.1:5432");
  ASSERT_TRUE(backend);
  EXPECT_EQ(backend->up(), std::nullopt);
  ASSERT_TRUE(metrics_.set_backend_up("pg", "127.0.0.1:5432", false).ok());
  EXPECT_EQ(metrics_.backend_up("pg", "127.0.0.1:5432"), false);
  backend->set_up(true);
  EXPECT_EQ(metrics_.backend_up("pg", "127.0.0.1:5432"), true);
  // Same address under another service is another backend.
  EXPECT_EQ(metrics_.backend_up("web", "127.0.0.1:5432"), std::nullopt);
  ASSERT_TRUE(metrics_.backend_connect_failed("pg", "127.0.0.1:5432").ok());
  backend->connect_failed();
  EXPECT_EQ(backend->connect_failures(), 2u);
  EXPECT_EQ(backend->service(), "pg");
  EXPECT_EQ(backend->address(), "127.0.0.1:5432");
}

TEST_F(metrics_Api, RetiredSlotsAreHiddenAndKeepTheirCounters) {
  ASSERT_TRUE(metrics_.add_bytes("old", Direction::kOut, 9).ok());
  ASSERT_TRUE(metrics_.set_backend_up("old", "127.0.0.1:1", true).ok());
  metrics_.retire_service("old");
  metrics_.retire_backend("old", "127.0.0.1:1");
  EXPECT_TRUE(snapshot().services.empty());
  EXPECT_TRUE(snapshot().backends.empty());
  // Back in the config: the counter continues instead of restarting.
  ASSERT_TRUE(metrics_.add_bytes("old", Direction::kOut, 1).ok());
  ASSERT_EQ(snapshot().services.size(), 1u);
  EXPECT_EQ(snapshot().services[0].bytes[1], 10u);
}

TEST_F(metrics_Api, PhaseHistogramBuckets) {
  metrics_.observe_phase(HandoffPhase::kLock, 0.00005);  // below the first bound
  metrics_.observe_phase(HandoffPhase::kLock, 0.0001);   // on it: le is inclusive
  metrics_.observe_phase(HandoffPhase::kLock, 0.002);
  metrics_.observe_phase(HandoffPhase::kLock, 31.0);  // +Inf
  metrics_.observe_phase(HandoffPhase::kLock, std::numeric_limits<double>::quiet_NaN());
  metrics_.observe_phase(HandoffPhase::kTotal, std::chrono::milliseconds(40));
  const Snapshot s = snapshot();
  const PhaseSample& lock = s.phases[static_cast<std::size_t>(HandoffPhase::kLock)];
  EXPECT_EQ(lock.count, 5u);
  EXPECT_EQ(lock.buckets[0], 3u);  // 50µs, 100µs, NaN counted as 0
  EXPECT_EQ(lock.buckets[4], 1u);  // 2.5 ms bound
  EXPECT_EQ(lock.buckets[layout::kPhaseFiniteBuckets], 1u);
  EXPECT_NEAR(lock.sum_seconds, 31.00215, 1e-9);
  const PhaseSample& total = s.phases[static_cast<std::size_t>(HandoffPhase::kTotal)];
  EXPECT_EQ(total.count, 1u);
  EXPECT_EQ(total.buckets[8], 1u);  // 50 ms bound
  EXPECT_NEAR(total.sum_seconds, 0.04, 1e-12);
}

TEST_F(metrics_Api, HandoffAndProcessValues) {
  metrics_.record_handoff(HandoffReason::kUpgrade, HandoffResult::kSuccess);
  metrics_.record_handoff(HandoffReason::kUpgrade, HandoffResult::kPreflightFailed);
  metrics_.record_handoff(HandoffReason::kUpgrade, HandoffResult::kPreflightFailed);
  metrics_.record_handoff_connections(HandoffConnectionResult::kRestored, 10);
  metrics_.record_handoff_connections(HandoffConnectionResult::kAborted);
  metrics_.worker_restarted(WorkerRestartCause::kSignal);
  metrics_.set_locked_flows(12);
  metrics_.set_queued_bytes(4096);
  EXPECT_EQ(metrics_.bump_generation(), 1u);
  EXPECT_EQ(metrics_.bump_generation(), 2u);
  metrics_.set_process_start_time(1700000000.5);
  const Snapshot s = snapshot();
  EXPECT_EQ(s.handoffs[0][0], 1u);
  EXPECT_EQ(s.handoffs[0][1], 2u);
  EXPECT_EQ(s.handoff_connections[0], 10u);
  EXPECT_EQ(s.handoff_connections[3], 1u);
  EXPECT_EQ(s.worker_restarts[0], 1u);
  EXPECT_EQ(s.locked_flows, 12);
  EXPECT_EQ(s.queued_bytes, 4096u);
  EXPECT_EQ(s.generation, 2u);
  EXPECT_EQ(s.process_start_time, 1700000000.5);
}

TEST_F(metrics_Api, ProcessStartTimeDefaultsToCreation) {
  const double now =
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  EXPECT_NEAR(snapshot().process_start_time, now, 60.0);
}

TEST(metrics_Labels, WireNames) {
  EXPECT_EQ(label_value(Direction::kOut), "out");
  EXPECT_EQ(label_value(HandoffReason::kCrash), "crash");
  EXPECT_EQ(label_value(HandoffResult::kRestoreFailed), "restore_failed");
  EXPECT_EQ(label_value(HandoffPhase::kTotal), "total");
  EXPECT_EQ(label_value(HandoffConnectionResult::kBackendReconnected), "backend_reconnected");
  EXPECT_EQ(label_value(WorkerRestartCause::kQuiesceTimeout), "quiesce_timeout");
  EXPECT_EQ(label_value(RejectReason::kMaxConnections), "max_connections");
  EXPECT_EQ(label_value(RejectReason::kNoBackend), "no_backend");
  EXPECT_EQ(label_value(static_cast<HandoffPhase>(42)), "unknown");
}

}  // namespace
}  // namespace seamless::metrics
