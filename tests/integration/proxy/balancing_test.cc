// Backend choice in `seamless run`: failover, no backend, connect timeout, health checks
// in /metrics, least_conn and source_hash end to end, max_connections, idle timeout,
// running out of fds.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <string>
#include <vector>

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

// Which of `backends` took the connections made since `before` (their data_connections
// then); -1 unless exactly one backend took exactly one.
int landed_on(const std::vector<TestBackend*>& backends, std::vector<size_t>& before) {
  int index = -1;
  size_t moved = 0;
  for (size_t i = 0; i < backends.size(); ++i) {
    const size_t now = backends[i]->data_connections();
    if (now != before[i]) index = static_cast<int>(i);
    moved += now - before[i];
    before[i] = now;
  }
  return moved == 1 ? index : -1;
}

TEST_F(ProxyTest, LeastConnSendsNewConnectionsToTheLessLoadedBackend) {
  auto a = backend(7101);
  auto b = backend(7102);
  ServiceSpec s;
  s.backends = {"198.18.0.1:7101", "198.18.0.1:7102"};
  s.extra = std::string(kQuietHealthCheck) + "    balance: least_conn\n";
  start(config_yaml(s));
  const std::vector<TestBackend*> backends = {a.get(), b.get()};
  std::vector<size_t> before(2, 0);
  UniqueFd held = client();
  ASSERT_TRUE(echo_roundtrip(held.get()));
  const int busy = landed_on(backends, before);
  ASSERT_NE(busy, -1);
  // While `held` stays open on one backend, every short connection (closed before the
  // next one opens) finds the other one less loaded. Round robin would alternate.
  for (int i = 0; i < 4; ++i) {
    UniqueFd c = client();
    ASSERT_TRUE(echo_roundtrip(c.get())) << "connection " << i;
    EXPECT_EQ(landed_on(backends, before), 1 - busy) << "connection " << i;
    c.reset();
    ASSERT_TRUE(wait_until([&] {
      return metric_value(metrics(), "seamless_connections_active", "service=\"pg\"") == 1.0;
    }));
  }
  // One more, held: it evens the load.
  UniqueFd second = client();
  ASSERT_TRUE(echo_roundtrip(second.get()));
  EXPECT_EQ(landed_on(backends, before), 1 - busy);
  EXPECT_TRUE(echo_roundtrip(held.get()));
}

// A client connecting from `source` (an address of the peer namespace).
UniqueFd client_from(const TwoHosts& hosts, const std::string& source) {
  InNetns in(hosts.peer);
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in local{};
  local.sin_family = AF_INET;
  ::inet_pton(AF_INET, source.c_str(), &local.sin_addr);
  sockaddr_in proxy = local;
  proxy.sin_port = htons(kProxyPort);
  ::inet_pton(AF_INET, TwoHosts::kHost4, &proxy.sin_addr);
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&local), sizeof(local)) != 0 ||
      ::connect(fd.get(), reinterpret_cast<sockaddr*>(&proxy), sizeof(proxy)) != 0) {
    ADD_FAILURE() << "connect from " << source << ": " << std::strerror(errno);
    return UniqueFd();
  }
  seamless::testing::set_nonblocking(fd.get());
  return fd;
}

TEST_F(ProxyTest, SourceHashKeepsClientsAndMovesOnlyThoseOfADownBackend) {
  std::vector<std::string> sources;
  for (int i = 11; i <= 22; ++i) {
    sources.push_back("198.18.0." + std::to_string(i));
    seamless::testing::must_sh(hosts.peer.exec("ip addr add " + sources.back() + "/32 dev lo"));
  }
  auto a = backend(7101);
  auto b = backend(7102);
  auto c = backend(7103);
  ServiceSpec s;
  s.backends = {"198.18.0.1:7101", "198.18.0.1:7102", "198.18.0.1:7103"};
  s.extra =
      "    balance: source_hash\n    health_check:\n      interval: 100ms\n"
      "      timeout: 50ms\n      rise: 1\n      fall: 1\n";
  start(config_yaml(s));
  const std::vector<TestBackend*> backends = {a.get(), b.get(), c.get()};
  std::vector<size_t> before(3, 0);
  // Where a source lands now; each connection is checked and closed.
  const auto land = [&](const std::string& source) {
    UniqueFd fd = client_from(hosts, source);
    if (!fd.valid() || !echo_roundtrip(fd.get())) return -1;
    return landed_on(backends, before);
  };

  std::map<std::string, int> home;
  std::vector<size_t> per_backend(3, 0);
  for (const std::string& source : sources) {
    home[source] = land(source);
    ASSERT_NE(home[source], -1) << source;
    per_backend[static_cast<size_t>(home[source])]++;
    for (int again = 0; again < 2; ++again) EXPECT_EQ(land(source), home[source]) << source;
  }
  // The address hash spreads these twelve clients over all three backends.
  for (size_t i = 0; i < 3; ++i) ASSERT_GT(per_backend[i], 0u) << "backend " << i;

  const auto a_up = [&] {
    return metric_value(metrics(), "seamless_backend_up", "backend=\"198.18.0.1:7101\"");
  };
  a->close_listener();
  ASSERT_TRUE(wait_until([&] { return a_up() == 0.0; })) << metrics();
  for (const std::string& source : sources) {
    const int now = land(source);
    if (home[source] == 0) {
      EXPECT_NE(now, 0) << source << " still sent to the down backend";
      EXPECT_NE(now, -1) << source;
    } else {
      EXPECT_EQ(now, home[source]) << source << " moved although its backend is up";
    }
  }

  a->reopen_listener();
  ASSERT_TRUE(wait_until([&] { return a_up() == 1.0; })) << metrics();
  for (const std::string& source : sources) EXPECT_EQ(land(source), home[source]) << source;
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
  // The keeper's cap ((40 - 20) / 2 = 10 pairs) or, should its own fds run out first,
  // the accept's EMFILE: either way it says so, with the limit, and stops accepting.
  const std::string cap = "the most the open-files limit 40 allows";
  const std::string emfile = "accept: too many open files (limit 40); pausing accepts on service pg";
  ASSERT_TRUE(wait_until([&] {
    const std::string log = proxy->log();
    return log.find(cap) != std::string::npos || log.find(emfile) != std::string::npos;
  }));
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
  for (const std::string& line : {cap, emfile}) {
    for (size_t at = log.find(line); at != std::string::npos; at = log.find(line, at + 1)) {
      ++lines;
    }
  }
  EXPECT_LE(lines, 2u) << log;
}

}  // namespace
}  // namespace seamless::proxy::testing
