// Traffic for the handoff bench: N proxied connections, each busy in both directions
// with small paced writes of a deterministic stream (tests/integration/support/streams.h),
// every byte verified by the receiver.
//
// Two sides, each one thread with its own epoll:
//   client side  — the connections the bench opened to seamless (index = open order);
//   backend side — the connections seamless opened to the bench's backend, identified by
//                  a 4-byte index the client writes before its stream.
// Direction kUp (client -> backend) is sent by the client side and received by the
// backend side; kDown the other way round.
//
// Pacing: every connection writes one `chunk` per direction every `interval_ms`, the
// connections spread evenly over the interval (1 ms ticks). Probe connections (a few
// more, spread over the open order) write every `probe_interval_ms` instead: the
// machine cannot carry a fine interval on every connection, and a few fine ones resolve
// the stall to a few ms where the bulk ones resolve it only to `interval_ms`. A sender pauses while
// `ring - 2` of its chunks are still undelivered, so queues stay small and a long stall
// cannot grow them without bound.
//
// What a receiver measures, per connection and per phase (the phase that is current
// when a delivery happens):
//   gap     — time since the previous delivery on this direction: the stall as the
//             application sees it, up to one `interval` longer than the time the
//             handoff held the connection (the last delivery before may be that early);
//   latency — time since the oldest byte of this delivery was written by its sender:
//             how long a byte was held. Its maximum per connection is up to one
//             `interval` shorter than the hold (the first write into it may come that
//             late), and it also counts time a byte waited in a queue before the hold.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "base/unique_fd.h"
#include "tests/integration/support/streams.h"

namespace seamless::bench {

// kHandoff: from the signal (SIGUSR2 or the SIGKILL) until every direction delivered again.
enum Phase : int { kWarmup = 0, kBaseline = 1, kHandoff = 2, kAfter = 3, kPhaseCount = 4 };
enum Direction : int { kUp = 0, kDown = 1 };

// CLOCK_MONOTONIC in nanoseconds.
int64_t now_ns();

struct TrafficOptions {
  size_t connections = 100;
  int interval_ms = 5;
  size_t chunk = 64;
  size_t ring = 256;
  // TCP_NODELAY on every bench socket. Off by default: with Nagle a sender whose last
  // segment is unacknowledged holds its next small writes instead of sending them.
  bool nodelay = false;
  // Extra connections writing every `probe_interval_ms` (0 = none); measured apart.
  size_t probes = 0;
  int probe_interval_ms = 5;

  // Every connection, bulk and probes; indices run 0 .. total() - 1.
  size_t total() const { return connections + probes; }
  // Probes are every (total / probes)-th index from 0, so that they are opened (and
  // perhaps checkpointed and restored) spread among the bulk ones, not all last.
  bool is_probe(size_t index) const {
    if (probes == 0) return false;
    const size_t stride = total() / probes;
    return index % stride == 0 && index / stride < probes;
  }
};

struct DirectionStats {
  int64_t max_gap_ns[kPhaseCount] = {};
  int64_t max_gap_end_ns[kPhaseCount] = {};  // when the largest gap ended
  int64_t max_latency_ns[kPhaseCount] = {};
  uint64_t deliveries[kPhaseCount] = {};
  uint64_t bytes = 0;
};

// Written by senders, read by receivers (and the bench's main thread).
class TrafficState {
 public:
  explicit TrafficState(const TrafficOptions& options);

  const TrafficOptions& options() const { return options_; }
  std::atomic<int64_t>& sent_at(Direction d, size_t conn, uint64_t chunk_index);
  std::atomic<uint64_t>& delivered(Direction d, size_t conn) { return delivered_[slot(d, conn)]; }
  std::atomic<int64_t>& last_delivery(Direction d, size_t conn) { return last_rx_[slot(d, conn)]; }

  std::atomic<int> phase{kWarmup};
  std::atomic<int64_t> start_ns{0};  // pacing starts here; 0 = not yet
  std::atomic<bool> stop{false};

 private:
  size_t slot(Direction d, size_t conn) const { return size_t(d) * options_.total() + conn; }
  TrafficOptions options_;
  std::unique_ptr<std::atomic<int64_t>[]> sent_at_;
  std::unique_ptr<std::atomic<uint64_t>[]> delivered_;
  std::unique_ptr<std::atomic<int64_t>[]> last_rx_;
};

class TrafficSide {
 public:
  enum class Role { kClient, kBackend };
  TrafficSide(Role role, TrafficState& state);
  ~TrafficSide();
  TrafficSide(const TrafficSide&) = delete;
  TrafficSide& operator=(const TrafficSide&) = delete;

  // Client: a connected socket whose index header was written. Before start().
  void add_connection(UniqueFd fd, size_t index);
  // Backend: the listener to accept from. Before start().
  void set_listener(UniqueFd fd);
  void start();
  void join();

  // Connections identified so far (backend: header read).
  size_t identified() const { return identified_.load(); }
  // After join().
  const std::vector<DirectionStats>& stats() const { return stats_; }
  std::vector<std::string> errors();
  size_t error_count() const { return error_count_.load(); }

 private:
  struct Conn {
    UniqueFd fd;
    int64_t index = -1;  // -1 until the header was read (backend)
    uint8_t header[4] = {};
    size_t header_got = 0;
    testing::StreamState out;
    testing::StreamState in;
    uint64_t out_target = 0;
    int64_t last_rx = 0;
    bool dead = false;
  };

  void run();
  void accept_all();
  void read_header(Conn& c);
  void on_readable(Conn& c);
  void send_slot(size_t slot, int64_t now);
  void send_probes(uint64_t tick, int64_t now);
  void send_one(size_t index, int64_t now);
  void fail(Conn& c, const std::string& what);
  void set_nodelay(int fd) const;
  Direction in_dir() const { return role_ == Role::kClient ? kDown : kUp; }
  Direction out_dir() const { return role_ == Role::kClient ? kUp : kDown; }

  Role role_;
  TrafficState& state_;
  UniqueFd epoll_;
  UniqueFd listener_;
  std::vector<std::unique_ptr<Conn>> pending_;  // backend: accepted, header not yet read
  std::vector<std::unique_ptr<Conn>> conns_;    // by index
  std::vector<DirectionStats> stats_;
  std::vector<size_t> probes_;  // indices of the probe connections
  std::atomic<size_t> identified_{0};
  std::atomic<size_t> error_count_{0};
  std::mutex errors_mu_;
  std::vector<std::string> errors_;
  std::thread thread_;
};

// The seeds of connection `index`'s two streams.
inline uint32_t stream_seed(size_t index, Direction d) {
  return uint32_t(2 * index + 1 + size_t(d));
}

}  // namespace seamless::bench
