// SocketImage: everything needed to recreate a live TCP socket so that its peer
// cannot tell, as a plain, copyable, comparable value (the unit that the handoff
// file stores and tests compare).
//
// Protocol (see shared/TCP_REPAIR.md):
//   checkpoint:  lock the flow (flow_lock.h) -> dump_socket(fd) -> close every
//                reference to fd while it is still in repair mode (silent).
//   restore:     SocketRestorer::restore(image) -> socket in repair mode, in the
//                dumped state, all queues back -> caller hands it on ->
//                finish(fd, image) leaves repair mode and sends unsent data ->
//                unlock the flow -> probe(fd, image) draws the peer's ACK at once.
//   The caller owns every fd passed in or returned. dump_socket leaves the socket in
//   repair mode on success (it must then only be closed) and takes it out again on
//   failure, so a failed dump leaves the connection as it was.
#pragma once

#include <cstdint>
#include <string>

#include "base/result.h"
#include "base/unique_fd.h"
#include "repair/endpoint.h"
#include "repair/packet_injector.h"

namespace seamless::repair {

class Sys;

// Kernel TCP state numbers (include/net/tcp_states.h); only these are migratable.
enum class TcpState : uint8_t {
  kEstablished = 1,
  kFinWait1 = 4,
  kFinWait2 = 5,
  kCloseWait = 8,
  kLastAck = 9,
  kClosing = 11,
};
const char* to_string(TcpState state);
bool is_migratable_state(int kernel_state);
// Our FIN is in the sequence space (queued or sent).
bool fin_sent(TcpState state);
// The peer's FIN has been received (rcv_nxt counts it).
bool fin_received(TcpState state);

// TCP_REPAIR_WINDOW (linux/tcp.h struct tcp_repair_window).
struct RepairWindow {
  uint32_t snd_wl1 = 0;
  uint32_t snd_wnd = 0;
  uint32_t max_window = 0;
  uint32_t rcv_wnd = 0;
  uint32_t rcv_wup = 0;
  bool operator==(const RepairWindow&) const = default;
};

// Options negotiated with the peer at handshake time.
struct NegotiatedOptions {
  uint32_t mss = 0;            // TCP_MAXSEG while in repair mode = snd_mss clamp
  bool sack = false;
  bool timestamps = false;
  bool window_scaling = false;
  uint8_t snd_wscale = 0;      // the peer's shift, applied to windows it sends
  uint8_t rcv_wscale = 0;      // our shift
  uint32_t timestamp = 0;      // TCP_TIMESTAMP: our current TSval base
  bool operator==(const NegotiatedOptions&) const = default;
};

// Options a proxy sets on its sockets; restored as they were.
struct SocketOptions {
  bool nodelay = false;
  bool oobinline = false;
  uint32_t notsent_lowat = 0;  // 0 = kernel default (unset)
  bool keepalive = false;
  int32_t keepidle = 0;
  int32_t keepintvl = 0;
  int32_t keepcnt = 0;
  bool v6only = false;         // AF_INET6 only
  uint32_t mark = 0;
  bool operator==(const SocketOptions&) const = default;
};

struct SocketImage {
  Endpoint local;
  Endpoint peer;
  TcpState state = TcpState::kEstablished;

  // Send side. send_queue holds data bytes only, from snd_una on: the first
  // (size - send_unsent) bytes were transmitted and await ACK, the rest are unsent.
  uint32_t send_seq = 0;       // snd_una: sequence number of send_queue[0]
  std::string send_queue;
  uint32_t send_unsent = 0;
  bool fin_unsent = false;     // fin_sent(state) but the FIN was never transmitted

  // Receive side. recv_queue holds data the application has not read yet.
  uint32_t recv_seq = 0;       // sequence number of recv_queue[0]
  std::string recv_queue;

  NegotiatedOptions tcp;
  RepairWindow window;
  SocketOptions options;

  bool operator==(const SocketImage&) const = default;

  // Derived sequence numbers (u32, wrapping).
  uint32_t send_end() const { return send_seq + static_cast<uint32_t>(send_queue.size()); }
  uint32_t recv_end() const { return recv_seq + static_cast<uint32_t>(recv_queue.size()); }
  std::string describe() const;  // "198.18.0.1:41000 -> 198.18.1.1:7000 ESTABLISHED"
};

// Dumps a connected TCP socket. On success the socket is left in repair mode.
Result<SocketImage> dump_socket(Sys& sys, int fd);
// The same for a socket whose addresses were read already: they do not change while
// it is connected, and reading them again cost two syscalls of each socket's ~28.
Result<SocketImage> dump_socket(Sys& sys, int fd, const Endpoint& local, const Endpoint& peer);

// For the image of a socket that stays in repair mode with no queue selected after
// its dump (CheckpointOptions::sockets_live_on): a timer may still push its unsent
// bytes, as far as the peer's last window lets it (no ACK gets through the lock to
// open it further), and the FIN behind them. Those bytes become "sent": restored from
// the file, the socket must accept the peer's ACK for them, as one beyond snd_nxt is
// dropped, for good. Any of them that did not go out are retransmitted.
void count_sendable_bytes_as_sent(SocketImage& image);

struct RestoredSocket {
  UniqueFd fd;
  // The peer's FIN could not be put back: the socket is ESTABLISHED and will never
  // see EOF from the peer. Clean on the wire; the caller must not wait for EOF
  // (counted as a degraded handoff).
  bool peer_fin_missing = false;
};

// Recreates sockets from images; see the protocol at the top. Needs CAP_NET_ADMIN,
// and CAP_NET_RAW for images whose peer had sent a FIN (it is injected as a packet
// carrying `mark`, which the flow lock lets through).
class SocketRestorer {
 public:
  static constexpr uint32_t kDefaultMark = 0x5ea1;
  explicit SocketRestorer(Sys& sys, uint32_t mark = kDefaultMark)
      : sys_(sys), injector_(sys, mark) {}

  // A socket in the image's connection, still in repair mode, queues refilled, its
  // FINs (ours transmitted, the peer's) in place. CLOEXEC and non-blocking.
  Result<RestoredSocket> restore(const SocketImage& image);
  // Leaves repair mode without a window probe (its answer would hit the lock), then
  // sends the never-transmitted bytes and a FIN that had not gone out yet.
  Status finish(int fd, const SocketImage& image);
  // After unlock: draws the peer's ACK at once (a restored socket has no RTT
  // sample and would otherwise wait ~1 s for it).
  Status probe(int fd, const SocketImage& image);

 private:
  Status restore_queues(int fd, const SocketImage& image);
  Status restore_fins(int fd, const SocketImage& image, RestoredSocket* restored);
  Status inject_peer_fin(int fd, const SocketImage& image, RestoredSocket* restored);

  Sys& sys_;
  PacketInjector injector_;
};

// Sequence-number comparisons with wrap-around.
inline bool seq_before(uint32_t a, uint32_t b) { return static_cast<int32_t>(a - b) < 0; }
inline bool seq_after(uint32_t a, uint32_t b) { return seq_before(b, a); }

}  // namespace seamless::repair
