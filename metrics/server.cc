#include "metrics/server.h"

#include <prometheus/exposer.h>

#include <atomic>
#include <cctype>
#include <chrono>
#include <cstring>
#include <exception>
#include <thread>
#include <utility>

#include "metrics/collector.h"

#ifndef SEAMLESS_METRICS_VERSION
#error "metrics/CMakeLists.txt defines SEAMLESS_METRICS_VERSION"
#endif

namespace seamless::metrics {
namespace {

std::string lowercase_first(std::string text) {
  if (!text.empty()) text[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(text[0])));
  return text;
}

// civetweb only says "null context ... Possible problem binding to port", so after it fails
// we bind the same address ourselves to learn the errno an operator can act on.
Error bind_error(const std::string& listen, const ListenAddress& address, const char* what) {
  const int err = probe_bind_errno(address);
  if (err != 0) {
    return Error{err, "metrics listen " + listen + ": " + lowercase_first(std::strerror(err))};
  }
  return Error::logic("metrics listen " + listen + ": " + what);
}

std::uint16_t first_port(const prometheus::Exposer& exposer) {
  const std::vector<int> ports = exposer.GetListeningPorts();
  return ports.empty() ? 0 : static_cast<std::uint16_t>(ports.front());
}

}  // namespace

std::string_view build_version() { return SEAMLESS_METRICS_VERSION; }

MetricsServer::MetricsServer(std::shared_ptr<SegmentCollector> collector,
                             std::unique_ptr<prometheus::Exposer> exposer,
                             const ListenAddress& bound)
    : collector_(std::move(collector)),
      exposer_(std::move(exposer)),
      wake_(local_destination(bound, first_port(*exposer_))) {}

// civetweb's master thread polls its listeners in 2-second quanta and checks its stop flag
// only between them, so a plain stop takes up to 2 s: too long for a worker that is being
// replaced. While the exposer stops, a helper thread pokes the listener with connections,
// each of which ends the master's poll at once.
MetricsServer::~MetricsServer() {
  std::atomic<bool> stopped = false;
  std::thread waker([this, &stopped] {
    while (!stopped.load()) {
      poke(wake_);
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  });
  exposer_.reset();
  stopped.store(true);
  waker.join();
}

std::uint16_t MetricsServer::port() const { return first_port(*exposer_); }

Result<std::unique_ptr<MetricsServer>> start_metrics_server(const std::string& listen,
                                                            MetricsSegment& segment,
                                                            std::string version) {
  Result<ListenAddress> address = parse_listen_address(listen);
  if (!address) return address.error().context("metrics listen " + listen);
  auto collector = std::make_shared<SegmentCollector>(segment, std::move(version));
  std::unique_ptr<prometheus::Exposer> exposer;
  try {
    exposer = std::make_unique<prometheus::Exposer>(listen);
    exposer->RegisterCollectable(collector);
  } catch (const std::exception& e) {
    return bind_error(listen, *address, e.what());
  }
  return std::make_unique<MetricsServer>(std::move(collector), std::move(exposer), *address);
}

}  // namespace seamless::metrics
