// The /metrics endpoint: prometheus-cpp's Exposer (civetweb) serving a SegmentCollector.
//
// The worker starts it after adopting the segment; it serves from civetweb's own threads,
// reading the shared segment at each scrape, so it needs nothing from the event loop.
// prometheus-cpp and civetweb report failures by throwing; everything is caught here and
// comes back as an Error naming the listen address and the cause.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "base/result.h"
#include "metrics/listen_address.h"
#include "metrics/segment.h"

namespace prometheus {
class Exposer;
}  // namespace prometheus

namespace seamless::metrics {

class SegmentCollector;

// The version this library was built as (the project version), for seamless_build_info.
std::string_view build_version();

class MetricsServer {
 public:
  // `bound` is the parsed listen address, used to wake civetweb when stopping.
  MetricsServer(std::shared_ptr<SegmentCollector> collector,
                std::unique_ptr<prometheus::Exposer> exposer, const ListenAddress& bound);
  // Stops serving: no scrape runs once this returns. Takes milliseconds (see server.cc).
  ~MetricsServer();
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  // The bound port; the real one when the listen address asked for port 0.
  std::uint16_t port() const;

 private:
  // Declared before the exposer, so destroyed after it: its threads read the collector.
  std::shared_ptr<SegmentCollector> collector_;
  std::unique_ptr<prometheus::Exposer> exposer_;
  ListenAddress wake_;  // where a local connection reaches the listener
};

// Serves /metrics on `listen` ("127.0.0.1:9100", "[::1]:9100"; port 0 picks a free port).
// Borrows the segment, which must outlive the server. Errors read like
// "metrics listen 127.0.0.1:9100: address already in use".
Result<std::unique_ptr<MetricsServer>> start_metrics_server(
    const std::string& listen, MetricsSegment& segment,
    std::string version = std::string(build_version()));

}  // namespace seamless::metrics
