// The common setup of proxy integration tests: two test hosts (TwoHosts: clients and
// backends on "peer" 198.18.0.1 / 2001:db8::1, seamless on "host" 198.18.0.2 /
// 2001:db8::2), a config builder, a `seamless run` child, and client connections.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "base/unique_fd.h"
#include "tests/integration/proxy/client_io.h"
#include "tests/integration/proxy/seamless_process.h"
#include "tests/integration/proxy/test_backend.h"
#include "tests/integration/support/netns.h"
#include "tests/integration/support/streams.h"
#include "tests/integration/support/tcp.h"

namespace seamless::proxy::testing {

using seamless::testing::Endpoints;
using seamless::testing::InNetns;
using seamless::testing::StreamPump;
using seamless::testing::TwoHosts;
using seamless::testing::wait_until;

inline constexpr uint16_t kProxyPort = 7000;
inline constexpr uint16_t kMetricsPort = 9100;

struct ServiceSpec {
  std::string name = "pg";
  std::string listen = "198.18.0.2:7000";
  std::vector<std::string> backends = {"198.18.0.1:7101"};
  std::string extra;  // more "    key: value\n" lines for the service
};

// A whole config: the services, metrics on 127.0.0.1:9100 (unless `with_metrics` is
// false), and `extra` top-level lines.
std::string config_yaml(const std::vector<ServiceSpec>& services, const std::string& extra = "",
                        bool with_metrics = true);
inline std::string config_yaml(const ServiceSpec& service, const std::string& extra = "",
                               bool with_metrics = true) {
  return config_yaml(std::vector<ServiceSpec>{service}, extra, with_metrics);
}

class ProxyTest : public ::testing::Test {
 protected:
  // Starts seamless in the host namespace and waits until it is ready. `wrapper` goes
  // between `ip netns exec NS` and the binary (e.g. "prlimit --nofile=40:40").
  void start(const std::string& yaml, const std::string& wrapper = "");
  // A connect from the peer namespace that may fail: the fd, or -errno.
  int try_client(const std::string& host = TwoHosts::kHost4, uint16_t port = kProxyPort);
  // A connected, non-blocking client socket from the peer namespace.
  UniqueFd client(const std::string& host = TwoHosts::kHost4, uint16_t port = kProxyPort);
  // A backend in the peer namespace.
  std::unique_ptr<TestBackend> backend(uint16_t port, BackendBehaviour b = {},
                                       const std::string& host = TwoHosts::kPeer4);
  std::string metrics() { return scrape(hosts.host, kMetricsPort); }
  // Runs `count` echo streams of `bytes` each way through the proxy; expects them intact.
  void echo_streams(size_t count, uint64_t bytes, const std::string& host = TwoHosts::kHost4);

  TwoHosts hosts;  // declared first: destroyed last
  std::unique_ptr<SeamlessProcess> proxy;
};

}  // namespace seamless::proxy::testing
