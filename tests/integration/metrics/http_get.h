// A minimal HTTP/1.0 GET over loopback TCP, enough to scrape /metrics in tests.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "base/result.h"

namespace seamless::metrics::testing {

struct HttpResponse {
  int status = 0;
  std::string body;
};

// GETs http://127.0.0.1:port/path; the whole exchange is bounded by `timeout`.
Result<HttpResponse> http_get(std::uint16_t port, const std::string& path,
                              std::chrono::milliseconds timeout = std::chrono::seconds(10));

}  // namespace seamless::metrics::testing
