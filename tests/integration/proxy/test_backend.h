// TestBackend: a TCP server for proxy tests, on its own thread, in a test namespace.
// By default it echoes (and answers the client's FIN with its own once the echo is out,
// so half-close is visible end to end). It can also greet first and half-close, parse
// a PROXY v1/v2 header before the payload, verify a deterministic stream instead of
// echoing, and die abruptly (as a killed process would).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "base/unique_fd.h"
#include "tests/integration/support/netns.h"

namespace seamless::proxy::testing {

struct BackendBehaviour {
  bool echo = true;  // otherwise verify the incoming stream (verify_seed)
  uint32_t verify_seed = 0;
  uint64_t greeting_bytes = 0;  // stream bytes (greeting_seed) sent at once on accept
  uint32_t greeting_seed = 0;
  bool close_after_greeting = false;  // shutdown(SHUT_WR) once the greeting is out
  bool expect_proxy_header = false;   // a PROXY v1 or v2 header precedes the payload
};

class TestBackend {
 public:
  // Listens on host:port inside `ns` (the calling thread's namespace if null).
  TestBackend(const seamless::testing::NetNamespace* ns, const std::string& host, uint16_t port,
              BackendBehaviour behaviour = {});
  ~TestBackend();
  TestBackend(const TestBackend&) = delete;
  TestBackend& operator=(const TestBackend&) = delete;

  // Closes the listener and every connection at once, as the kernel does when a process
  // dies (RST where data was unread, else FIN). `abortive` forces RST on every one.
  void kill(bool abortive = false);
  // Stops/starts listening (health check tests); connections are left alone.
  void close_listener();
  void reopen_listener();

  // Every accepted connection, health check probes included.
  size_t accepted() const { return accepted_; }
  // Connections that carried at least one byte (so: not health check probes).
  size_t data_connections() const { return data_connections_; }
  size_t eofs() const { return eofs_; }      // connections whose peer sent FIN
  size_t resets() const { return resets_; }  // data connections that ended in a reset
  uint64_t bytes_received() const { return bytes_received_; }
  size_t open_connections() const { return open_; }
  // Parsed PROXY headers, as "PROXY TCP4 src dst sport dport" (v2 decoded to that form),
  // prefixed "v1 " or "v2 ".
  std::vector<std::string> headers() const;
  // Stream verification failures (non-echo mode).
  std::vector<std::string> errors() const;

 private:
  struct Connection;
  void run();
  void serve(Connection& c, short revents);
  void on_data(Connection& c, const char* data, size_t n);
  bool parse_header(Connection& c);
  UniqueFd make_listener() const;

  const seamless::testing::NetNamespace* ns_;
  std::string host_;
  uint16_t port_;
  BackendBehaviour behaviour_;
  mutable std::mutex mu_;
  UniqueFd listener_;
  std::vector<std::unique_ptr<Connection>> connections_;
  std::vector<std::string> headers_;
  std::vector<std::string> errors_;
  std::atomic<size_t> accepted_{0}, data_connections_{0}, eofs_{0}, resets_{0}, open_{0};
  std::atomic<uint64_t> bytes_received_{0};
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace seamless::proxy::testing
