// /metrics over real HTTP on loopback: names, labels and values as Prometheus would scrape
// them, continuity when a new server (a new worker) maps the same segment, and bind errors.
#include "metrics/server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "base/unique_fd.h"
#include "metrics/metrics.h"
#include "tests/integration/metrics/http_get.h"

namespace seamless::metrics {
namespace {

using ::testing::HasSubstr;
using testing::http_get;

std::string scrape(const MetricsServer& server) {
  Result<testing::HttpResponse> response = http_get(server.port(), "/metrics");
  EXPECT_TRUE(response) << response.error().message;
  if (!response) return {};
  EXPECT_EQ(response->status, 200);
  return response->body;
}

// A loopback socket listening on an ephemeral port, i.e. a port that is certainly in use.
UniqueFd listening_socket(std::uint16_t& port) {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(::bind(fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
  EXPECT_EQ(::listen(fd.get(), 1), 0);
  socklen_t length = sizeof(address);
  ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&address), &length);
  port = ntohs(address.sin_port);
  return fd;
}

void populate(Metrics& metrics) {
  Result<ServiceMetrics> pg = metrics.service("pg");
  ASSERT_TRUE(pg);
  for (int i = 0; i < 3; ++i) pg->connection_opened();
  pg->connection_closed();
  pg->add_bytes(Direction::kIn, 100);
  pg->add_bytes(Direction::kOut, 200);
  ASSERT_TRUE(metrics.set_backend_up("pg", "127.0.0.1:5432", true).ok());
  ASSERT_TRUE(metrics.set_backend_up("pg", "127.0.0.2:5432", false).ok());
  ASSERT_TRUE(metrics.backend_connect_failed("pg", "127.0.0.2:5432").ok());
  ASSERT_TRUE(metrics.backend_connect_failed("pg", "127.0.0.2:5432").ok());
  metrics.record_handoff(HandoffReason::kUpgrade, HandoffResult::kSuccess);
  metrics.observe_phase(HandoffPhase::kLock, 0.002);
  metrics.worker_restarted(WorkerRestartCause::kSignal);
  metrics.set_locked_flows(7);
  metrics.bump_generation();
  metrics.set_process_start_time(1700000000);
}

TEST(metrics_Server, ServesEveryFamilyFromTheSegment) {
  Result<MetricsSegment> segment = MetricsSegment::create();
  ASSERT_TRUE(segment);
  Metrics metrics(*segment);
  populate(metrics);
  Result<std::unique_ptr<MetricsServer>> server =
      start_metrics_server("127.0.0.1:0", *segment, "1.2.3");
  ASSERT_TRUE(server) << server.error().message;
  ASSERT_NE((*server)->port(), 0);

  const std::string body = scrape(**server);
  EXPECT_THAT(body, HasSubstr("# TYPE seamless_connections_total counter\n"));
  EXPECT_THAT(body, HasSubstr("seamless_connections_active{service=\"pg\"} 2\n"));
  EXPECT_THAT(body, HasSubstr("seamless_connections_total{service=\"pg\"} 3\n"));
  EXPECT_THAT(body, HasSubstr("seamless_bytes_total{direction=\"in\",service=\"pg\"} 100\n"));
  EXPECT_THAT(body, HasSubstr("seamless_bytes_total{direction=\"out\",service=\"pg\"} 200\n"));
  EXPECT_THAT(body,
              HasSubstr("seamless_backend_up{backend=\"127.0.0.1:5432\",service=\"pg\"} 1\n"));
  EXPECT_THAT(body,
              HasSubstr("seamless_backend_up{backend=\"127.0.0.2:5432\",service=\"pg\"} 0\n"));
  EXPECT_THAT(body, HasSubstr("seamless_backend_connect_failures_total{backend=\"127.0.0.2:5432\","
                              "service=\"pg\"} 2\n"));
  EXPECT_THAT(body,
              HasSubstr("seamless_handoffs_total{reason=\"upgrade\",result=\"success\"} 1\n"));
  EXPECT_THAT(body, HasSubstr("# TYPE seamless_handoff_phase_seconds histogram\n"));
  EXPECT_THAT(body,
              HasSubstr("seamless_handoff_phase_seconds_bucket{phase=\"lock\",le=\"0.001\"} 0\n"));
  EXPECT_THAT(body,
              HasSubstr("seamless_handoff_phase_seconds_bucket{phase=\"lock\",le=\"0.0025\"} 1\n"));
  EXPECT_THAT(body, HasSubstr("seamless_handoff_phase_seconds_count{phase=\"lock\"} 1\n"));
  EXPECT_THAT(body, HasSubstr("seamless_handoff_connections_total{result=\"aborted\"} 0\n"));
  EXPECT_THAT(body, HasSubstr("seamless_handoff_queued_bytes 0\n"));
  EXPECT_THAT(body, HasSubstr("seamless_worker_restarts_total{cause=\"signal\"} 1\n"));
  EXPECT_THAT(body, HasSubstr("seamless_locked_flows 7\n"));
  EXPECT_THAT(body, HasSubstr("seamless_restart_generation 1\n"));
  EXPECT_THAT(body, HasSubstr("seamless_process_start_time_seconds 1700000000\n"));
  EXPECT_THAT(body, HasSubstr("seamless_build_info{version=\"1.2.3\"} 1\n"));

  // Values are read at scrape time: an update shows in the next scrape.
  ASSERT_TRUE(metrics.add_bytes("pg", Direction::kIn, 5).ok());
  EXPECT_THAT(scrape(**server),
              HasSubstr("seamless_bytes_total{direction=\"in\",service=\"pg\"} 105\n"));
}

TEST(metrics_Server, ANewWorkerServesTheSameCounters) {
  Result<MetricsSegment> keeper = MetricsSegment::create();
  ASSERT_TRUE(keeper);
  Metrics metrics(*keeper);
  populate(metrics);
  {
    // The first worker serves, then goes away (its mapping and server with it).
    Result<MetricsSegment> worker = MetricsSegment::adopt(UniqueFd(::dup(keeper->fd())));
    ASSERT_TRUE(worker);
    auto server = start_metrics_server("127.0.0.1:0", *worker);
    ASSERT_TRUE(server) << server.error().message;
    EXPECT_THAT(scrape(**server), HasSubstr("seamless_connections_total{service=\"pg\"} 3\n"));
    ASSERT_TRUE(Metrics(*worker).connection_opened("pg").ok());
  }
  Result<MetricsSegment> successor = MetricsSegment::adopt(UniqueFd(::dup(keeper->fd())));
  ASSERT_TRUE(successor);
  auto server = start_metrics_server("127.0.0.1:0", *successor);
  ASSERT_TRUE(server) << server.error().message;
  const std::string body = scrape(**server);
  EXPECT_THAT(body, HasSubstr("seamless_connections_total{service=\"pg\"} 4\n"));
  EXPECT_THAT(body,
              HasSubstr("seamless_backend_up{backend=\"127.0.0.2:5432\",service=\"pg\"} 0\n"));
  EXPECT_EQ(Metrics(*successor).backend_up("pg", "127.0.0.2:5432"), false);
}

TEST(metrics_Server, StoppingReleasesThePort) {
  Result<MetricsSegment> segment = MetricsSegment::create();
  ASSERT_TRUE(segment);
  auto server = start_metrics_server("127.0.0.1:0", *segment);
  ASSERT_TRUE(server) << server.error().message;
  const std::uint16_t port = (*server)->port();
  ASSERT_TRUE(http_get(port, "/metrics"));
  server.value().reset();
  Result<testing::HttpResponse> after = http_get(port, "/metrics");
  ASSERT_FALSE(after);
  EXPECT_EQ(after.error().code, ECONNREFUSED) << after.error().message;
  // And a new server (the next worker) can bind the same port at once.
  auto next = start_metrics_server("127.0.0.1:" + std::to_string(port), *segment);
  ASSERT_TRUE(next) << next.error().message;
  EXPECT_TRUE(http_get(port, "/metrics"));
}

TEST(metrics_Server, PortInUseIsAClearError) {
  std::uint16_t port = 0;
  UniqueFd holder = listening_socket(port);
  ASSERT_NE(port, 0);
  Result<MetricsSegment> segment = MetricsSegment::create();
  ASSERT_TRUE(segment);
  const std::string listen = "127.0.0.1:" + std::to_string(port);
  Result<std::unique_ptr<MetricsServer>> server = start_metrics_server(listen, *segment);
  ASSERT_FALSE(server);
  EXPECT_EQ(server.error().message, "metrics listen " + listen + ": address already in use");
  EXPECT_EQ(server.error().code, EADDRINUSE);
}

TEST(metrics_Server, MalformedListenAddressesAreErrors) {
  Result<MetricsSegment> segment = MetricsSegment::create();
  ASSERT_TRUE(segment);
  const std::pair<const char*, const char*> cases[] = {
      {"127.0.0.1", "expected host:port"}, {"127.0.0.1:99999", "bad port"},
      {"127.0.0.1:", "bad port"},          {"localhost:9100", "bad IPv4 address"},
      {"[::1:9100", "bad IPv4 address"},   {"[zz]:9100", "bad IPv6 address"},
  };
  for (const auto& [listen, expected] : cases) {
    Result<std::unique_ptr<MetricsServer>> server = start_metrics_server(listen, *segment);
    ASSERT_FALSE(server) << listen;
    EXPECT_THAT(server.error().message,
                HasSubstr(std::string("metrics listen ") + listen + ": " + expected));
  }
}

}  // namespace
}  // namespace seamless::metrics
