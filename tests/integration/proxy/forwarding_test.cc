// Bytes through `seamless run`: intact, in order, both ways, with half-close and resets
// propagated as the endpoints would see them without a proxy in between.
#include <sys/socket.h>

#include <cerrno>

#include "tests/integration/proxy/proxy_fixture.h"

namespace seamless::proxy::testing {
namespace {

constexpr uint64_t kMiB = 1 << 20;

TEST_F(ProxyTest, Echo100MegabytesBothWays) {
  auto echo = backend(7101);
  start(config_yaml(ServiceSpec{}));
  echo_streams(1, 100 * kMiB);
  const std::string page = metrics();
  EXPECT_GE(metric_value(page, "seamless_bytes_total", "direction=\"in\"").value_or(0),
            100.0 * kMiB);
  EXPECT_GE(metric_value(page, "seamless_bytes_total", "direction=\"out\"").value_or(0),
            100.0 * kMiB);
  EXPECT_EQ(metric_value(page, "seamless_connections_total", "service=\"pg\""), 1.0);
}

TEST_F(ProxyTest, TwoHundredConcurrentStreams) {
  auto echo = backend(7101);
  start(config_yaml(ServiceSpec{}));
  echo_streams(200, 256 * 1024);
  EXPECT_EQ(echo->data_connections(), 200u);
}

TEST_F(ProxyTest, ClientHalfCloseReachesTheBackendAndTheReplyStillFlows) {
  auto echo = backend(7101);
  start(config_yaml(ServiceSpec{}));
  UniqueFd c = client();
  const std::string payload(3 * kMiB, 'x');
  ASSERT_TRUE(write_all(c.get(), payload));
  ASSERT_EQ(::shutdown(c.get(), SHUT_WR), 0);
  // The echo backend answers our FIN with its own only after it got the FIN and sent
  // every byte back: an EOF after all the bytes proves both directions.
  const ReadResult r = read_to_end(c.get());
  EXPECT_EQ(r.data.size(), payload.size());
  EXPECT_TRUE(r.eof);
  EXPECT_EQ(r.error, 0);
  EXPECT_TRUE(wait_until([&] { return echo->eofs() == 1; }));
}

TEST_F(ProxyTest, BackendHalfCloseReachesTheClientWhichCanStillSend) {
  BackendBehaviour greet;
  greet.echo = false;
  greet.verify_seed = 77;
  greet.greeting_bytes = 512 * 1024;
  greet.greeting_seed = 78;
  greet.close_after_greeting = true;
  auto b = backend(7101, greet);
  start(config_yaml(ServiceSpec{}, "log:\n  level: debug\n"));
  UniqueFd c = client();
  const ReadResult greeting = read_to_end(c.get());
  ASSERT_TRUE(greeting.eof) << "no FIN after the greeting";
  ASSERT_EQ(greeting.data.size(), greet.greeting_bytes);
  for (size_t i = 0; i < greeting.data.size(); ++i) {
    ASSERT_EQ(static_cast<uint8_t>(greeting.data[i]), seamless::testing::stream_byte(78, i)) << i;
  }
  // The backend only half-closed: our direction still carries bytes, then our FIN.
  seamless::testing::StreamState out{77, 0, 0};
  const uint64_t target = 2 * kMiB;
  ASSERT_TRUE(wait_until([&] {
    return seamless::testing::send_stream(c.get(), out, target) >= 0 && out.sent == target;
  }));
  ASSERT_EQ(::shutdown(c.get(), SHUT_WR), 0);
  EXPECT_TRUE(wait_until([&] { return b->eofs() == 1; }))
      << "eofs " << b->eofs() << " resets " << b->resets() << " open " << b->open_connections()
      << " data " << b->data_connections() << " accepted " << b->accepted() << "\n"
      << proxy->log();
  EXPECT_EQ(b->bytes_received(), target);
  EXPECT_EQ(b->errors(), std::vector<std::string>{});
}

TEST_F(ProxyTest, BackendKilledMidStreamEndsTheClient) {
  auto echo = backend(7101);
  start(config_yaml(ServiceSpec{}));
  UniqueFd c = client();
  StreamPump pump({Endpoints{c.get(), {5, 0, 0}, {5, 0, 0}}}, 1ull << 40);
  ASSERT_TRUE(wait_until([&] { return echo->bytes_received() > 4 * kMiB; }));
  echo->kill();
  // The client sees the end — an RST (the backend died with unread data) or a FIN —
  // instead of hanging.
  ASSERT_TRUE(wait_until([&] { return !pump.errors().empty(); }));
  pump.stop();
  const std::string error = pump.errors().front();
  // (A send after the RST reports it as EPIPE.)
  EXPECT_TRUE(error.find("reset") != std::string::npos || error.find("EOF") != std::string::npos ||
              error.find("Broken pipe") != std::string::npos)
      << error;
  EXPECT_TRUE(wait_until([&] {
    return metric_value(metrics(), "seamless_connections_active", "service=\"pg\"") == 0.0;
  }));
}

TEST_F(ProxyTest, BackendResetReachesTheClientAsReset) {
  auto echo = backend(7101);
  start(config_yaml(ServiceSpec{}));
  UniqueFd c = client();
  ASSERT_TRUE(echo_roundtrip(c.get()));
  echo->kill(/*abortive=*/true);
  const ReadResult r = read_to_end(c.get());
  EXPECT_EQ(r.error, ECONNRESET) << "eof=" << r.eof << " timed_out=" << r.timed_out;
}

TEST_F(ProxyTest, ClientResetReachesTheBackendAsReset) {
  auto echo = backend(7101);
  start(config_yaml(ServiceSpec{}));
  UniqueFd c = client();
  ASSERT_TRUE(echo_roundtrip(c.get()));
  const linger rst{1, 0};
  ASSERT_EQ(::setsockopt(c.get(), SOL_SOCKET, SO_LINGER, &rst, sizeof(rst)), 0);
  c.reset();
  EXPECT_TRUE(wait_until([&] { return echo->resets() == 1; }));
  EXPECT_EQ(echo->eofs(), 0u);
}

TEST_F(ProxyTest, Ipv6EndToEnd) {
  auto echo = backend(7101, {}, TwoHosts::kPeer6);
  ServiceSpec s;
  s.listen = "[2001:db8::2]:7000";
  s.backends = {"[2001:db8::1]:7101"};
  start(config_yaml(s));
  echo_streams(4, 4 * kMiB, TwoHosts::kHost6);
}

std::string local_port_text(int fd) { return std::to_string(seamless::testing::local_port(fd)); }

TEST_F(ProxyTest, ProxyV1HeaderOnDualStackListenerNamesTheIpv4Client) {
  BackendBehaviour b;
  b.expect_proxy_header = true;
  auto echo = backend(7101, b);
  ServiceSpec s;
  s.listen = "[::]:7000";
  s.extra = "    proxy_protocol: v1\n";
  start(config_yaml(s));
  UniqueFd c = client();
  ASSERT_TRUE(echo_roundtrip(c.get(), "after the header"));
  EXPECT_EQ(echo->headers(), std::vector<std::string>{"v1 PROXY TCP4 198.18.0.1 198.18.0.2 " +
                                                      local_port_text(c.get()) + " 7000"});
}

TEST_F(ProxyTest, ProxyV2HeaderIpv4) {
  BackendBehaviour b;
  b.expect_proxy_header = true;
  auto echo = backend(7101, b);
  ServiceSpec s;
  s.extra = "    proxy_protocol: v2\n";
  start(config_yaml(s));
  UniqueFd c = client();
  ASSERT_TRUE(echo_roundtrip(c.get()));
  EXPECT_EQ(echo->headers(), std::vector<std::string>{"v2 PROXY TCP4 198.18.0.1 198.18.0.2 " +
                                                      local_port_text(c.get()) + " 7000"});
}

TEST_F(ProxyTest, ProxyV2HeaderIpv6) {
  BackendBehaviour b;
  b.expect_proxy_header = true;
  auto echo = backend(7101, b, TwoHosts::kPeer6);
  ServiceSpec s;
  s.listen = "[2001:db8::2]:7000";
  s.backends = {"[2001:db8::1]:7101"};
  s.extra = "    proxy_protocol: v2\n";
  start(config_yaml(s));
  UniqueFd c = client(TwoHosts::kHost6);
  ASSERT_TRUE(echo_roundtrip(c.get()));
  EXPECT_EQ(echo->headers(), std::vector<std::string>{"v2 PROXY TCP6 2001:db8::1 2001:db8::2 " +
                                                      local_port_text(c.get()) + " 7000"});
}

}  // namespace
}  // namespace seamless::proxy::testing
