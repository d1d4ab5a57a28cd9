// Client-side helpers for proxy tests: blocking-with-deadline reads and writes on a
// non-blocking socket, a Prometheus scrape, and config text.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include "tests/integration/support/netns.h"

namespace seamless::proxy::testing {

// How a read ended.
struct ReadResult {
  std::string data;
  bool eof = false;  // the peer's FIN arrived
  int error = 0;     // errno (ECONNRESET for an RST), 0 if none
  bool timed_out = false;
};

// Reads until `bytes` arrived, EOF, an error or the timeout.
ReadResult read_some(int fd, size_t bytes,
                     std::chrono::milliseconds timeout = std::chrono::seconds(10));
// Reads until EOF, an error or the timeout.
ReadResult read_to_end(int fd, std::chrono::milliseconds timeout = std::chrono::seconds(10));
// Writes all of `data`, waiting for room; false on error or timeout.
bool write_all(int fd, const std::string& data,
               std::chrono::milliseconds timeout = std::chrono::seconds(10));
// Sends "ping" and expects "ping" back (an echo backend through the proxy).
bool echo_roundtrip(int fd, const std::string& text = "ping");

// GET http://127.0.0.1:port/metrics from inside `ns`; empty on failure.
std::string scrape(const seamless::testing::NetNamespace& ns, uint16_t port);
// The value of the sample whose line starts with `name{` and contains every label text
// (e.g. "backend=\"198.18.0.1:7101\""); nullopt if there is none.
std::optional<double> metric_value(const std::string& page, const std::string& name,
                                   const std::string& label_a, const std::string& label_b = "");

}  // namespace seamless::proxy::testing
