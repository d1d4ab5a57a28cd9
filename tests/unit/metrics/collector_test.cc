#include "metrics/collector.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <prometheus/text_serializer.h>

#include <string>

#include "metrics/metrics.h"

namespace seamless::metrics {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// Every family of DESIGN.md §8, with its type.
const std::pair<const char*, const char*> kFamilies[] = {
    {"seamless_connections_active", "gauge"},
    {"seamless_connections_total", "counter"},
    {"seamless_connections_rejected_total", "counter"},
    {"seamless_bytes_total", "counter"},
    {"seamless_backend_up", "gauge"},
    {"seamless_backend_connect_failures_total", "counter"},
    {"seamless_handoffs_total", "counter"},
    {"seamless_handoff_phase_seconds", "histogram"},
    {"seamless_handoff_connections_total", "counter"},
    {"seamless_handoff_queued_bytes", "gauge"},
    {"seamless_worker_restarts_total", "counter"},
    {"seamless_locked_flows", "gauge"},
    {"seamless_restart_generation", "gauge"},
    {"seamless_process_start_time_seconds", "gauge"},
    {"seamless_build_info", "gauge"},
};

class metrics_Collector : public ::testing::Test {
 protected:
  metrics_Collector() : segment_(MetricsSegment::create().value()), metrics_(segment_) {}

  std::string text() {
    SegmentCollector collector(segment_, "9.8.7");
    return prometheus::TextSerializer().Serialize(collector.Collect());
  }

  MetricsSegment segment_;
  Metrics metrics_;
};

TEST_F(metrics_Collector, EveryFamilyHasHelpAndType) {
  const std::string out = text();
  for (const auto& [name, type] : kFamilies) {
    EXPECT_THAT(out, HasSubstr(std::string("# HELP ") + name + " ")) << name;
    EXPECT_THAT(out, HasSubstr(std::string("# TYPE ") + name + " " + type + "\n")) << name;
  }
  EXPECT_THAT(out, HasSubstr("seamless_build_info{version=\"9.8.7\"} 1\n"));
}

TEST_F(metrics_Collector, ServiceAndBackendSamples) {
  Result<ServiceMetrics> pg = metrics_.service("pg");
  ASSERT_TRUE(pg);
  pg->connection_opened();
  pg->connection_opened();
  pg->connection_closed();
  pg->add_bytes(Direction::kIn, 1234);
  pg->connection_rejected(RejectReason::kNoBackend);
  ASSERT_TRUE(metrics_.set_backend_up("pg", "127.0.0.1:5432", true).ok());
  ASSERT_TRUE(metrics_.set_backend_up("pg", "[::1]:5432", false).ok());
  ASSERT_TRUE(metrics_.backend_connect_failed("pg", "[::1]:5432").ok());
  ASSERT_TRUE(metrics_.backend("pg", "127.0.0.2:5432"));  // never checked
  const std::string out = text();
  EXPECT_THAT(out, HasSubstr("seamless_connections_active{service=\"pg\"} 1\n"));
  EXPECT_THAT(out, HasSubstr("seamless_connections_total{service=\"pg\"} 2\n"));
  EXPECT_THAT(out, HasSubstr("seamless_bytes_total{direction=\"in\",service=\"pg\"} 1234\n"));
  EXPECT_THAT(out, HasSubstr("seamless_bytes_total{direction=\"out\",service=\"pg\"} 0\n"));
  EXPECT_THAT(out, HasSubstr("seamless_connections_rejected_total{reason=\"no_backend\","
                             "service=\"pg\"} 1\n"));
  // Both reasons are exported from the start, at 0.
  EXPECT_THAT(out, HasSubstr("seamless_connections_rejected_total{reason=\"max_connections\","
                             "service=\"pg\"} 0\n"));
  EXPECT_THAT(out, HasSubstr("seamless_backend_up{backend=\"127.0.0.1:5432\",service=\"pg\"} 1\n"));
  EXPECT_THAT(out, HasSubstr("seamless_backend_up{backend=\"[::1]:5432\",service=\"pg\"} 0\n"));
  EXPECT_THAT(out, Not(HasSubstr("seamless_backend_up{backend=\"127.0.0.2:5432\"")));
  EXPECT_THAT(out, HasSubstr("seamless_backend_connect_failures_total{backend=\"[::1]:5432\","
                             "service=\"pg\"} 1\n"));
}

TEST_F(metrics_Collector, HandoffSamples) {
  metrics_.record_handoff(HandoffReason::kCrash, HandoffResult::kSuccess);
  metrics_.observe_phase(HandoffPhase::kDump, 0.0003);
  metrics_.observe_phase(HandoffPhase::kDump, 0.004);
  metrics_.record_handoff_connections(HandoffConnectionResult::kRestored, 3);
  metrics_.set_queued_bytes(65536);
  metrics_.worker_restarted(WorkerRestartCause::kOom);
  metrics_.set_locked_flows(4);
  metrics_.bump_generation();
  const std::string out = text();
  EXPECT_THAT(out, HasSubstr("seamless_handoffs_total{reason=\"crash\",result=\"success\"} 1\n"));
  // Known label combinations are exported at zero, so rate() works from the first event.
  EXPECT_THAT(out,
              HasSubstr("seamless_handoffs_total{reason=\"upgrade\",result=\"exec_failed\"} 0\n"));
  EXPECT_THAT(out, HasSubstr("seamless_handoff_phase_seconds_count{phase=\"dump\"} 2\n"));
  EXPECT_THAT(out, HasSubstr("seamless_handoff_phase_seconds_sum{phase=\"dump\"} 0.0043\n"));
  EXPECT_THAT(out,
              HasSubstr("seamless_handoff_phase_seconds_bucket{phase=\"dump\",le=\"0.0001\"} 0\n"));
  EXPECT_THAT(out,
              HasSubstr("seamless_handoff_phase_seconds_bucket{phase=\"dump\",le=\"0.0005\"} 1\n"));
  EXPECT_THAT(out,
              HasSubstr("seamless_handoff_phase_seconds_bucket{phase=\"dump\",le=\"0.005\"} 2\n"));
  EXPECT_THAT(out,
              HasSubstr("seamless_handoff_phase_seconds_bucket{phase=\"dump\",le=\"30\"} 2\n"));
  EXPECT_THAT(out,
              HasSubstr("seamless_handoff_phase_seconds_bucket{phase=\"dump\",le=\"+Inf\"} 2\n"));
  EXPECT_THAT(out, HasSubstr("seamless_handoff_phase_seconds_count{phase=\"unlock\"} 0\n"));
  EXPECT_THAT(out, HasSubstr("seamless_handoff_connections_total{result=\"restored\"} 3\n"));
  EXPECT_THAT(out, HasSubstr("seamless_handoff_queued_bytes 65536\n"));
  EXPECT_THAT(out, HasSubstr("seamless_worker_restarts_total{cause=\"oom\"} 1\n"));
  EXPECT_THAT(out, HasSubstr("seamless_locked_flows 4\n"));
  EXPECT_THAT(out, HasSubstr("seamless_restart_generation 1\n"));
}

TEST_F(metrics_Collector, LabelValuesAreEscaped) {
  ASSERT_TRUE(metrics_.backend_connect_failed("pg", "we\"ird\\addr").ok());
  EXPECT_THAT(text(), HasSubstr("backend=\"we\\\"ird\\\\addr\""));
}

}  // namespace
}  // namespace seamless::metrics
