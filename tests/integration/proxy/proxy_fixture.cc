#include "tests/integration/proxy/proxy_fixture.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

namespace seamless::proxy::testing {

std::string config_yaml(const std::vector<ServiceSpec>& services, const std::string& extra,
                        bool with_metrics) {
  std::string y = "services:\n";
  for (const ServiceSpec& s : services) {
    y += "  - name: " + s.name + "\n";
    y += "    listen: \"" + s.listen + "\"\n";
    y += "    backends:\n";
    for (const std::string& b : s.backends) y += "      - address: \"" + b + "\"\n";
    y += s.extra;
  }
  y += "metrics:\n  listen: \"";
  y += with_metrics ? "127.0.0.1:" + std::to_string(kMetricsPort) : "off";
  y += "\"\n";
  y += extra;
  return y;
}

void ProxyTest::start(const std::string& yaml, const std::string& wrapper) {
  proxy = std::make_unique<SeamlessProcess>(hosts.host.name(), yaml, wrapper);
  ASSERT_TRUE(proxy->wait_ready());
}

int ProxyTest::try_client(const std::string& host, uint16_t port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  inet_pton(AF_INET, host.c_str(), &addr.sin_addr);
  int fd = -1;
  {
    InNetns in(hosts.peer);
    fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  }
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    const int err = errno;
    ::close(fd);
    return -err;
  }
  seamless::testing::set_nonblocking(fd);
  return fd;
}

UniqueFd ProxyTest::client(const std::string& host, uint16_t port) {
  InNetns in(hosts.peer);
  return seamless::testing::connect_to(host, port);
}

std::unique_ptr<TestBackend> ProxyTest::backend(uint16_t port, BackendBehaviour b,
                                                const std::string& host) {
  return std::make_unique<TestBackend>(&hosts.peer, host, port, b);
}

void ProxyTest::echo_streams(size_t count, uint64_t bytes, const std::string& host) {
  std::vector<UniqueFd> fds;
  std::vector<Endpoints> ends;
  for (size_t i = 0; i < count; ++i) {
    fds.push_back(client(host));
    const uint32_t seed = static_cast<uint32_t>(1000 + i);
    ends.push_back(Endpoints{fds.back().get(), {seed, 0, 0}, {seed, 0, 0}});
  }
  StreamPump pump(std::move(ends), bytes);
  const bool done = wait_until(
      [&] {
        if (!pump.errors().empty()) return true;
        for (const Endpoints& e : pump.progress()) {
          if (e.in.received < bytes) return false;
        }
        return true;
      },
      std::chrono::seconds(300));
  pump.stop();
  EXPECT_TRUE(done) << "streams did not complete";
  EXPECT_EQ(pump.errors(), std::vector<std::string>{});
  for (const Endpoints& e : pump.progress()) {
    EXPECT_EQ(e.out.sent, bytes);
    EXPECT_EQ(e.in.received, bytes);
  }
}

}  // namespace seamless::proxy::testing
