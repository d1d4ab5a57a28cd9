// Backend choice in `seamless run`: failover, no backend, connect timeout, health checks
// in /metrics, max_connections, idle timeout, running out of fds.
#include <sys/socket.h>

#include <cerrno>

#include "tests/integration/proxy/proxy_fixture.h"

namespace seamless::proxy::testing {
namespace {

// A health check that never runs after the first (the interval is an hour).
constexpr const char* kQuietHealthCheck =
    "    health_check:\n      interval: 1h\n      timeout: 1s\n";

TEST_F(ProxyTest, FailsOverToTheNextBackendWhenOneRefuses) {
  auto echo = backend(7102);  // nothing listens on 7101
  ServiceSpec s;
  s.backends = {"198.18.0.1:7101", "198.18.0.1:7102"};
  s.extra = kQuietHealthCheck;
  start(config_yaml(s));
  for (int i = 0; i < 4; ++i) {
    UniqueFd c = client();
    ASSERT_TRUE(echo_roundtrip(c.get())) << "connection " << i;
  }
  EXPECT_EQ(echo->data_connections(), 4u);
  const std::string page = metrics();
  EXPECT_GE(
      metric_value(page, "seamless_backend_connect_failures_total", "backend=\"198.18.0.1:7101\"")
          .value_or(0),
      1.0)
      << page;
  EXPECT_EQ(
      metric_value(page, "seamless_backend_connect_failures_total", "backend=\"198.18.0.1:7102\""),
      0.0);
  EXPECT_NE(proxy->log().find("backend 198.18.0.1:7101: connect: connection refused"),
            std::string::npos)
      << proxy->log();
}

TEST_F(ProxyTest, NoBackendLeftClosesTheClient) {
  ServiceSpec s;
  s.backends = {"198.18.0.1:7101", "198.18.0.1:7102"};
  s.extra = kQuietHealthCheck;
  start(config_yaml(s));
  UniqueFd c = client();
  const ReadResult r = read_to_end(c.get());
  EXPECT_FALSE(r.timed_out);
  EXPECT_TRUE(r.eof || r.error == ECONNRESET) << r.error;
  EXPECT_TRUE(proxy->wait_for_log("no backend available (2 of 2 failed"));
  const std::string page = metrics();
  EXPECT_EQ(metric_value(page, "seamless_connections_rejected_total", "reason=\"no_backend\"",
                         "service=\"pg\""),
            1.0)
      << page;
  EXPECT_EQ(metric_value(page, "seamless_connections_rejected_total", "reason=\"max_connections\"",
                         "service=\"pg\""),
            0.0);
  for (const char* b : {"backend=\"198.18.0.1:7101\"", "backend=\"198.18.0.1:7102\""}) {
    EXPECT_GE(metric_value(page, "seamless_backend_connect_failures_total", b).value_or(0), 1.0);
  }
}

TEST_F(ProxyTest, ConnectTimeoutMovesOnToTheNextBackend) {
  // SYNs to 198.18.0.1:7109 vanish: the connect can only time out.
  seamless::testing::must_sh(hosts.peer.exec(
      "nft 'add table inet t; add chain inet t in { type filter hook input priority 0; }; "
      "add rule inet t in tcp dport 7109 drop'"));
  auto echo = backend(7102);
  ServiceSpec s;
  s.backends = {"198.18.0.1:7109", "198.18.0.1:7102"};
  s.extra = std::string(kQuietHealthCheck) + "    connect_timeout: 200ms\n";
  start(config_yaml(s));
  for (int i = 0; i < 2; ++i) {
    UniqueFd c = client();
    ASSERT_TRUE(echo_roundtrip(c.get())) << "connection " << i;
  }
  EXPECT_TRUE(proxy->wait_for_log("backend 198.18.0.1:7109: connect: connection timed out"));
}

TEST_F(ProxyTest, HealthChecksTakeABackendOutAndBackIn) {
  auto a = backend(7101);
  auto b = backend(7102);
  ServiceSpec s;
  s.backends = {"198.18.0.1:7101", "198.18.0.1:7102"};
  s.extra =
      "    health_check:\n      interval: 100ms\n      timeout: 50ms\n      rise: 2\n"
      "      fall: 2\n";
  start(config_yaml(s));
  const auto a_up = [&] {
    return metric_value(metrics(), "seamless_backend_up", "backend=\"198.18.0.1:7101\"");
  };
  ASSERT_TRUE(wait_until([&] { return a_up() == 1.0; }));

  a->close_listener();
  ASSERT_TRUE(wait_until([&] { return a_up() == 0.0; })) << metrics();
  EXPECT_TRUE(proxy->wait_for_log("backend 198.18.0.1:7101 is down"));
  // While it is down, every new connection goes to the other one, without a failed try.
  for (int i = 0; i < 4; ++i) {
    UniqueFd c = client();
    ASSERT_TRUE(echo_roundtrip(c.get()));
  }
  EXPECT_EQ(b->data_connections(), 4u);
  EXPECT_EQ(metric_value(metrics(), "seamless_backend_connect_failures_total",
                         "backend=\"198.18.0.1:7101\""),
            0.0);

  a->reopen_listener();
  ASSERT_TRUE(wait_until([&] { return a_up() == 1.0; })) << metrics();
  EXPECT_TRUE(proxy->wait_for_log("backend 198.18.0.1:7101 is up"));
}

TEST_F(ProxyTest, MaxConnectionsClosesTheExcessAtOnce) {
  auto echo = backend(7101);
  ServiceSpec s;
  s.extra = "    max_connections: 2\n";
  start(config_yaml(s));
  UniqueFd c1 = client();
  UniqueFd c2 = client();
  ASSERT_TRUE(echo_roundtrip(c1.get()));
  ASSERT_TRUE(echo_roundtrip(c2.get()));
  UniqueFd c3 = client();  // the kernel completes the handshake; seamless closes it
  const ReadResult r = read_to_end(c3.get());
  EXPECT_FALSE(r.timed_out);
  EXPECT_TRUE(r.data.empty());
  EXPECT_TRUE(proxy->wait_for_log("service pg: max_connections 2 reached"));
  const auto rejected = [&](const char* reason) {
    return metric_value(metrics(), "seamless_connections_rejected_total",
                        std::string("reason=\"") + reason + "\"", "service=\"pg\"");
  };
  // Counted before the close that c3 saw; a backend was there, so none for no_backend.
  EXPECT_EQ(rejected("max_connections"), 1.0) << metrics();
  EXPECT_EQ(rejected("no_backend"), 0.0);

  c1.reset();  // FIN: the pair finishes and frees a slot
  ASSERT_TRUE(wait_until([&] {
    return metric_value(metrics(), "seamless_connections_active", "service=\"pg\"") == 1.0;
  }));
  UniqueFd c4 = client();
  EXPECT_TRUE(echo_roundtrip(c4.get()));
  EXPECT_TRUE(echo_roundtrip(c2.get()));
  // Served connections are not rejections; the excess is not an accepted connection.
  const std::string page = metrics();
  EXPECT_EQ(rejected("max_connections"), 1.0) << page;
  EXPECT_EQ(metric_value(page, "seamless_connections_total", "service=\"pg\""), 3.0) << page;
}

TEST_F(ProxyTest, IdleTimeoutClosesWithFinBothWays) {
  auto echo = backend(7101);
  ServiceSpec s;
  s.extra = "    idle_timeout: 300ms\n";
  start(config_yaml(s));
  UniqueFd c = client();
  ASSERT_TRUE(echo_roundtrip(c.get()));
  const ReadResult r = read_to_end(c.get());
  EXPECT_TRUE(r.eof) << "error " << r.error << " timed_out " << r.timed_out;
  EXPECT_TRUE(wait_until([&] { return echo->eofs() == 1; }));
  EXPECT_EQ(echo->resets(), 0u);
}

TEST_F(ProxyTest, OutOfFdsPausesAcceptingAndRecovers) {
  auto echo = backend(7101);
  // Few fds and no metrics server (it would take some of them).
  start(config_yaml(ServiceSpec{}, "", /*with_metrics=*/false), "prlimit --nofile=40:40");
  std::vector<UniqueFd> clients;
  for (int i = 0; i < 30; ++i) clients.push_back(client());
  ASSERT_TRUE(
      proxy->wait_for_log("accept: too many open files (limit 40); pausing accepts on service pg"));
  clients.clear();  // FINs: their pairs finish and free fds
  // Once fds are free again, accepting resumes by itself.
  ASSERT_TRUE(wait_until(
      [&] {
        UniqueFd c = client();
        return echo_roundtrip(c.get());
      },
      std::chrono::seconds(20)));
  // One line per episode, not one per attempt.
  const std::string log = proxy->log();
  size_t lines = 0;
  for (size_t at = log.find("accept: too many open files"); at != std::string::npos;
       at = log.find("accept: too many open files", at + 1)) {
    ++lines;
  }
  EXPECT_LE(lines, 2u) << log;
}

}  // namespace
}  // namespace seamless::proxy::testing
