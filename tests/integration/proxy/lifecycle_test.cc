// `seamless run` as an operator drives it: SIGTERM drains, errors exit with the
// documented codes and messages.
#include <sys/socket.h>

#include <cerrno>
#include <csignal>

#include "tests/integration/proxy/proxy_fixture.h"

namespace seamless::proxy::testing {
namespace {

TEST_F(ProxyTest, SigtermDrainsInFlightStreamsThenExitsZero) {
  auto echo = backend(7101);
  start(config_yaml(ServiceSpec{}));
  constexpr uint64_t kTarget = 16 << 20;
  std::vector<UniqueFd> fds;
  std::vector<Endpoints> ends;
  for (uint32_t i = 0; i < 20; ++i) {
    fds.push_back(client());
    ends.push_back(Endpoints{fds.back().get(), {i, 0, 0}, {i, 0, 0}});
  }
  StreamPump pump(std::move(ends), kTarget);
  ASSERT_TRUE(wait_until([&] {
    for (const Endpoints& e : pump.progress()) {
      if (e.in.received == 0) return false;
    }
    return true;
  }));
  proxy->signal(SIGTERM);
  ASSERT_TRUE(proxy->wait_for_log("listeners closed"));
  EXPECT_EQ(try_client(), -ECONNREFUSED);  // no new connections while draining

  // Every stream in flight completes, byte for byte.
  ASSERT_TRUE(wait_until(
      [&] {
        if (!pump.errors().empty()) return true;
        for (const Endpoints& e : pump.progress()) {
          if (e.in.received < kTarget) return false;
        }
        return true;
      },
      std::chrono::seconds(120)));
  pump.stop();
  EXPECT_EQ(pump.errors(), std::vector<std::string>{});
  EXPECT_FALSE(proxy->wait_exit(std::chrono::milliseconds(0)).has_value())
      << "exited while connections were open";
  fds.clear();  // FIN from the clients: the pairs finish, and so does the drain
  EXPECT_EQ(proxy->wait_exit(), 0) << proxy->log();
  EXPECT_EQ(proxy->log().find("drain timeout"), std::string::npos);
}

TEST_F(ProxyTest, DrainTimeoutClosesTheRestWithFin) {
  auto echo = backend(7101);
  start(config_yaml(ServiceSpec{}, "drain_timeout: 300ms\n"));
  UniqueFd c = client();
  ASSERT_TRUE(echo_roundtrip(c.get()));
  proxy->signal(SIGTERM);
  const ReadResult r = read_to_end(c.get());
  EXPECT_TRUE(r.eof) << "error " << r.error;
  EXPECT_TRUE(wait_until([&] { return echo->eofs() == 1; }));
  EXPECT_EQ(proxy->wait_exit(), 0) << proxy->log();
  EXPECT_NE(proxy->log().find("drain timeout: closing 1 remaining connections with FIN"),
            std::string::npos);
}

TEST_F(ProxyTest, SigintAlsoDrains) {
  start(config_yaml(ServiceSpec{}));
  proxy->signal(SIGINT);
  EXPECT_EQ(proxy->wait_exit(), 0) << proxy->log();
}

TEST_F(ProxyTest, PortInUseExitsOneWithAClearMessage) {
  UniqueFd squatter;
  {
    InNetns in(hosts.host);
    squatter = seamless::testing::listen_on(TwoHosts::kHost4, kProxyPort);
  }
  proxy = std::make_unique<SeamlessProcess>(hosts.host.name(), config_yaml(ServiceSpec{}));
  EXPECT_EQ(proxy->wait_exit(), 1);
  EXPECT_NE(proxy->log().find("service pg: listen 198.18.0.2:7000: address already in use"),
            std::string::npos)
      << proxy->log();
}

TEST_F(ProxyTest, BadConfigExitsTwoWithTheErrors) {
  proxy = std::make_unique<SeamlessProcess>(hosts.host.name(),
                                            config_yaml(ServiceSpec{}, "no_such_key: 1\n"));
  EXPECT_EQ(proxy->wait_exit(), 2);
  EXPECT_NE(proxy->log().find("no_such_key"), std::string::npos) << proxy->log();
}

TEST_F(ProxyTest, JsonLogLines) {
  start(config_yaml(ServiceSpec{}, "log:\n  format: json\n"));
  EXPECT_TRUE(proxy->wait_for_log("{\"time\":\""));
  EXPECT_TRUE(proxy->wait_for_log("\"level\":\"info\",\"msg\":\"worker ready"));
}

}  // namespace
}  // namespace seamless::proxy::testing
