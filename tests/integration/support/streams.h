// Deterministic byte streams for integration tests: every byte a test pushes is a
// function of (seed, offset), so the receiver verifies each one without keeping a
// copy, and a lost, duplicated or reordered byte is caught at its offset.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace seamless::testing {

inline uint8_t stream_byte(uint32_t seed, uint64_t offset) {
  uint64_t x = (offset / 8) * 0x9E3779B97F4A7C15ull ^ (uint64_t{seed} << 32 | seed);
  x ^= x >> 29;
  x *= 0xBF58476D1CE4E5B9ull;
  x ^= x >> 32;
  return static_cast<uint8_t>(x >> (8 * (offset % 8)));
}

// One direction of a connection: what was sent and what was verified so far.
struct StreamState {
  uint32_t seed = 0;
  uint64_t sent = 0;
  uint64_t received = 0;
};

// Sends up to `budget` more bytes of the stream without blocking; returns bytes sent
// or -errno (EAGAIN is 0 bytes).
long send_stream(int fd, StreamState& s, uint64_t target, size_t budget = 256 * 1024);

// Reads what is available without blocking and checks every byte. Returns bytes read,
// 0 on EAGAIN; sets *error to a description on EOF, reset or mismatch.
long receive_stream(int fd, StreamState& s, std::string* error);

// Both directions of one proxied or migrated connection, seen from one side.
struct Endpoints {
  int fd = -1;  // borrowed
  StreamState out;
  StreamState in;
};

// Pumps the given ends on the calling thread for a while: sends each `out` stream up
// to `target` and verifies each `in` stream. Ends with fd -1 are skipped. Stops early
// at the first error, which is appended to `errors` with the end's index.
void pump_for(std::vector<Endpoints>& ends, uint64_t target, std::chrono::milliseconds duration,
              std::vector<std::string>* errors);

// Pumps a set of sockets in a background thread: sends each one's `out` stream up
// to `target` bytes and verifies its `in` stream. Errors (EOF, reset, mismatch) are
// collected, never thrown.
class StreamPump {
 public:
  StreamPump(std::vector<Endpoints> ends, uint64_t target);
  ~StreamPump();
  void stop();
  std::vector<std::string> errors();
  // Snapshot of per-connection progress.
  std::vector<Endpoints> progress();

 private:
  void run();
  std::mutex mu_;
  std::vector<Endpoints> ends_;
  std::vector<std::string> errors_;
  uint64_t target_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace seamless::testing
