// Stands in for the keeper's new image after exec: adopts the metrics segment whose fd
// number is in SEAMLESS_METRICS_FD, prints what it finds, then updates it as a new image
// would (bytes from argv[1], and one more restart generation).
#include <cstdio>
#include <cstdlib>
#include <string>

#include "metrics/metrics.h"
#include "metrics/segment.h"

using seamless::UniqueFd;
using namespace seamless::metrics;

int main(int argc, char** argv) {
  const char* fd_text = std::getenv(kFdEnvVar);
  seamless::Result<int> fd = parse_fd_number(fd_text != nullptr ? fd_text : "");
  if (!fd) {
    std::printf("error: %s\n", fd.error().message.c_str());
    return 3;
  }
  seamless::Result<MetricsSegment> segment = MetricsSegment::adopt(UniqueFd(*fd));
  if (!segment) {
    std::printf("error: %s\n", segment.error().message.c_str());
    return 3;
  }
  Metrics metrics(*segment);
  const std::optional<ServiceMetrics> svc = metrics.find_service("svc");
  const std::optional<bool> up = metrics.backend_up("svc", "127.0.0.1:7001");
  std::printf("bytes_in=%llu generation=%llu backend_up=%s\n",
              static_cast<unsigned long long>(svc ? svc->bytes(Direction::kIn) : 0),
              static_cast<unsigned long long>(metrics.generation()),
              up ? (*up ? "1" : "0") : "unknown");
  const std::uint64_t add = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 0;
  if (!metrics.add_bytes("svc", Direction::kIn, add).ok()) return 4;
  metrics.bump_generation();
  return 0;
}
