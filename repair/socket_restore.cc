// Restore side of SocketImage, in the order shared/TCP_REPAIR.md found to work.
#include <netinet/tcp.h>
#include <sched.h>

#include <fstream>
#include <vector>

#include "repair/socket_image.h"
#include "repair/sys.h"

namespace seamless::repair {
namespace {

// TCP_MAXSEG refuses more than this; loopback MSS (65495) goes in TCP_REPAIR_OPTIONS.
constexpr int kMaxSegLimit = 32767;
constexpr uint32_t kTcpOptMss = 2;
constexpr uint32_t kTcpOptWindow = 3;
constexpr uint32_t kTcpOptSackPerm = 4;
constexpr uint32_t kTcpOptTimestamp = 8;

Error sys_error(const std::string& what) { return Error::from_errno(what); }

Status set_or_fail(Sys& sys, int fd, int level, int name, int value, const char* what) {
  if (sys.set_int(fd, level, name, value) != 0) return sys_error(std::string("set ") + what);
  return {};
}

// The third field of a tcp_[rw]mem sysctl: what autotuning could grow a buffer to.
int sysctl_buffer_max(const char* path, int fallback) {
  std::ifstream in(path);
  int min = 0, def = 0, max = 0;
  return in >> min >> def >> max ? max : fallback;
}

// A set buffer size disables autotuning for the connection's life, so touch it only
// when the queue would not fit, and then allow at least what autotuning could reach.
Status size_buffer(Sys& sys, int fd, bool send_side, size_t queue) {
  if (queue == 0) return {};
  const int get_name = send_side ? SO_SNDBUF : SO_RCVBUF;
  int current = 0;
  if (sys.get_int(fd, SOL_SOCKET, get_name, &current) != 0) return sys_error("get buffer size");
  if (queue <= static_cast<size_t>(current) / 2) return {};
  const int sysctl_max = send_side ? sysctl_buffer_max("/proc/sys/net/ipv4/tcp_wmem", 4 << 20)
                                   : sysctl_buffer_max("/proc/sys/net/ipv4/tcp_rmem", 6 << 20);
  // The kernel doubles the value to cover bookkeeping overhead.
  const size_t wanted = std::max(static_cast<size_t>(sysctl_max), queue + (queue >> 2));
  const int value = static_cast<int>(std::min<size_t>(wanted, 1u << 30));
  return set_or_fail(sys, fd, SOL_SOCKET, send_side ? SO_SNDBUFFORCE : SO_RCVBUFFORCE, value,
                     send_side ? "SO_SNDBUFFORCE" : "SO_RCVBUFFORCE");
}

Status set_queue_seq(Sys& sys, int fd, int queue, uint32_t seq) {
  if (auto st = set_or_fail(sys, fd, IPPROTO_TCP, TCP_REPAIR_QUEUE, queue, "TCP_REPAIR_QUEUE"); !st)
    return st;
  if (sys.setsockopt(fd, IPPROTO_TCP, TCP_QUEUE_SEQ, &seq, sizeof(seq)) != 0) {
    return sys_error("set TCP_QUEUE_SEQ");
  }
  return {};
}

// Options that shape the connection but not its sequence space; before connect.
// A fresh socket has every one of them off, so only those that are on are set.
Status set_socket_options(Sys& sys, int fd, const SocketImage& image) {
  const SocketOptions& o = image.options;
  if (image.local.family == AF_INET6) {
    if (auto st = set_or_fail(sys, fd, IPPROTO_IPV6, IPV6_V6ONLY, o.v6only, "IPV6_V6ONLY"); !st)
      return st;
  }
  struct Option {
    bool wanted;
    int level, name, value;
    const char* what;
  };
  const Option options[] = {
      {o.nodelay, IPPROTO_TCP, TCP_NODELAY, 1, "TCP_NODELAY"},
      {o.oobinline, SOL_SOCKET, SO_OOBINLINE, 1, "SO_OOBINLINE"},
      {o.mark != 0, SOL_SOCKET, SO_MARK, static_cast<int>(o.mark), "SO_MARK"},
      {o.keepalive, SOL_SOCKET, SO_KEEPALIVE, 1, "SO_KEEPALIVE"},
      {o.keepalive, IPPROTO_TCP, TCP_KEEPIDLE, o.keepidle, "TCP_KEEPIDLE"},
      {o.keepalive, IPPROTO_TCP, TCP_KEEPINTVL, o.keepintvl, "TCP_KEEPINTVL"},
      {o.keepalive, IPPROTO_TCP, TCP_KEEPCNT, o.keepcnt, "TCP_KEEPCNT"},
  };
  for (const Option& opt : options) {
    if (!opt.wanted) continue;
    if (auto st = set_or_fail(sys, fd, opt.level, opt.name, opt.value, opt.what); !st) return st;
  }
  return {};
}

Status set_negotiated_options(Sys& sys, int fd, const NegotiatedOptions& tcp) {
  std::vector<tcp_repair_opt> opts;
  opts.push_back({kTcpOptMss, tcp.mss});
  if (tcp.window_scaling) {
    opts.push_back({kTcpOptWindow, static_cast<uint32_t>(tcp.snd_wscale) |
                                       static_cast<uint32_t>(tcp.rcv_wscale) << 16});
  }
  if (tcp.sack) opts.push_back({kTcpOptSackPerm, 0});
  if (tcp.timestamps) opts.push_back({kTcpOptTimestamp, 0});
  if (sys.setsockopt(fd, IPPROTO_TCP, TCP_REPAIR_OPTIONS, opts.data(),
                     static_cast<socklen_t>(opts.size() * sizeof(tcp_repair_opt))) != 0) {
    return sys_error("set TCP_REPAIR_OPTIONS");
  }
  if (tcp.timestamps) {
    if (sys.setsockopt(fd, IPPROTO_TCP, TCP_TIMESTAMP, &tcp.timestamp, sizeof(tcp.timestamp)) !=
        0) {
      return sys_error("set TCP_TIMESTAMP");
    }
  }
  return {};
}

// In repair mode a send() to the selected queue places bytes without transmitting.
Status send_all(Sys& sys, int fd, const char* data, size_t len, const char* what) {
  size_t done = 0;
  while (done < len) {
    const ssize_t n = sys.send(fd, data + done, len - done, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n <= 0) {
      if (n == 0) errno = EIO;
      return Error::from_errno(std::string("refill ") + what + " at byte " +
                               std::to_string(done) + " of " + std::to_string(len));
    }
    done += static_cast<size_t>(n);
  }
  return {};
}

Status set_window(Sys& sys, int fd, const SocketImage& image) {
  RepairWindow w = image.window;
  // A received FIN was counted in rcv_wup but is not restored as a byte; move the
  // window's left edge back to the restored rcv_nxt, or the kernel refuses it.
  const uint32_t rcv_nxt = image.recv_end();
  if (seq_after(w.rcv_wup, rcv_nxt)) {
    w.rcv_wnd += w.rcv_wup - rcv_nxt;
    w.rcv_wup = rcv_nxt;
  }
  tcp_repair_window raw{w.snd_wl1, w.snd_wnd, w.max_window, w.rcv_wnd, w.rcv_wup};
  if (sys.setsockopt(fd, IPPROTO_TCP, TCP_REPAIR_WINDOW, &raw, sizeof(raw)) != 0) {
    return sys_error("set TCP_REPAIR_WINDOW");
  }
  return {};
}

// The socket reacts to an injected segment in softirq context, usually before
// sendto() returns; allow it a bounded moment otherwise.
bool wait_for_state(Sys& sys, int fd, TcpState wanted) {
  for (int i = 0; i < 2000; ++i) {
    TcpInfo info;
    if (sys.tcp_info(fd, &info) != 0) return false;
    if (info.state == static_cast<uint8_t>(wanted)) return true;
    sched_yield();
  }
  return false;
}

uint16_t peer_window_field(const SocketImage& image) {
  const uint32_t scaled = image.window.snd_wnd >> image.tcp.snd_wscale;
  return static_cast<uint16_t>(std::min<uint32_t>(scaled, 0xffff));
}

}  // namespace

// Selects `queue` and, in repair mode, places `len` bytes in it without sending.
// The socket's buffer must already be large enough (size_buffer).
Status refill(Sys& sys, int fd, int queue, const char* data, size_t len) {
  if (len == 0) return {};
  const bool send_side = queue == TCP_SEND_QUEUE;
  if (auto st = set_or_fail(sys, fd, IPPROTO_TCP, TCP_REPAIR_QUEUE, queue, "TCP_REPAIR_QUEUE");
      !st)
    return st;
  return send_all(sys, fd, data, len, send_side ? "send queue" : "receive queue");
}

Status SocketRestorer::restore_queues(int fd, const SocketImage& image) {
  if (auto st = size_buffer(sys_, fd, false, image.recv_queue.size()); !st) return st;
  if (auto st = refill(sys_, fd, TCP_RECV_QUEUE, image.recv_queue.data(), image.recv_queue.size());
      !st)
    return st;
  // Only what had been transmitted goes in now; the unsent tail is sent live later,
  // by finish(), so the buffer is sized for the whole queue.
  if (auto st = size_buffer(sys_, fd, true, image.send_queue.size()); !st) return st;
  const size_t sent = image.send_queue.size() - image.send_unsent;
  return refill(sys_, fd, TCP_SEND_QUEUE, image.send_queue.data(), sent);
}

Status SocketRestorer::inject_peer_fin(int fd, const SocketImage& image,
                                       RestoredSocket* restored) {
  TcpSegment fin{image.peer, image.local, image.recv_end(), image.send_seq,
                 kTcpFin | kTcpAck, peer_window_field(image)};
  TcpInfo before;
  if (sys_.tcp_info(fd, &before) != 0) return sys_error("TCP_INFO");
  if (auto st = injector_.send(fin); !st) return st;
  const TcpState expected =
      before.state == static_cast<uint8_t>(TcpState::kFinWait1) ? TcpState::kClosing
                                                                 : TcpState::kCloseWait;
  if (!wait_for_state(sys_, fd, expected)) restored->peer_fin_missing = true;
  return {};
}

Status SocketRestorer::restore_fins(int fd, const SocketImage& image, RestoredSocket* restored) {
  const bool queue_our_fin = fin_sent(image.state) && !image.fin_unsent;
  // LAST_ACK came from CLOSE_WAIT: the peer's FIN first. CLOSING came from FIN_WAIT1:
  // ours first. Either way the injected FIN must not acknowledge our own.
  if (fin_received(image.state) && image.state != TcpState::kClosing) {
    if (auto st = inject_peer_fin(fd, image, restored); !st) return st;
  }
  if (queue_our_fin) {
    // With the send queue selected, the FIN is queued as already transmitted.
    if (auto st = set_or_fail(sys_, fd, IPPROTO_TCP, TCP_REPAIR_QUEUE, TCP_SEND_QUEUE, "queue");
        !st)
      return st;
    if (sys_.shutdown(fd, SHUT_WR) != 0) return sys_error("queue our FIN");
  }
  if (image.state == TcpState::kClosing) {
    if (auto st = inject_peer_fin(fd, image, restored); !st) return st;
  }
  if (image.state == TcpState::kFinWait2) {
    // Our FIN had been acknowledged: replay that ACK so the socket reaches FIN_WAIT2.
    TcpSegment ack{image.peer, image.local, image.recv_end(), image.send_end() + 1, kTcpAck,
                   peer_window_field(image)};
    if (auto st = injector_.send(ack); !st) return st;
    wait_for_state(sys_, fd, TcpState::kFinWait2);  // else the probe draws the ACK later
  }
  return {};
}

Result<RestoredSocket> SocketRestorer::restore(const SocketImage& image) {
  // Described only on failure: formatting it costs more than a syscall.
  auto where = [&] { return "restore " + image.describe(); };
  auto fail = [&](const Status& st) { return st.error().context(where()); };
  RestoredSocket restored;
  restored.fd.reset(sys_.socket(image.local.family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
                                IPPROTO_TCP));
  if (!restored.fd) return sys_error("socket").context(where());
  const int fd = restored.fd.get();
  if (sys_.set_int(fd, IPPROTO_TCP, TCP_REPAIR, 1) != 0) {
    Error e = sys_error("enter repair mode");
    if (e.code == EPERM) e.message += " (needs CAP_NET_ADMIN)";
    return e.context(where());
  }
  if (auto st = set_socket_options(sys_, fd, image); !st) return fail(st);
  // Before connect(), or connect() derives snd_mss from the 536-byte default clamp.
  const int maxseg = std::min(static_cast<int>(image.tcp.mss), kMaxSegLimit);
  if (auto st = set_or_fail(sys_, fd, IPPROTO_TCP, TCP_MAXSEG, maxseg, "TCP_MAXSEG"); !st)
    return fail(st);
  if (auto st = set_queue_seq(sys_, fd, TCP_RECV_QUEUE, image.recv_seq); !st) return fail(st);
  if (auto st = set_queue_seq(sys_, fd, TCP_SEND_QUEUE, image.send_seq); !st) return fail(st);

  socklen_t len = 0;
  sockaddr_storage local = image.local.to_sockaddr(&len);
  if (sys_.bind(fd, reinterpret_cast<sockaddr*>(&local), len) != 0) {
    return sys_error("bind").context(where());
  }
  sockaddr_storage peer = image.peer.to_sockaddr(&len);
  if (sys_.connect(fd, reinterpret_cast<sockaddr*>(&peer), len) != 0) {
    return sys_error("connect").context(where());
  }
  if (auto st = set_negotiated_options(sys_, fd, image.tcp); !st) return fail(st);
  if (auto st = restore_queues(fd, image); !st) return fail(st);
  if (auto st = set_window(sys_, fd, image); !st) return fail(st);
  if (auto st = restore_fins(fd, image, &restored); !st) return fail(st);
  return restored;
}

Status SocketRestorer::finish(int fd, const SocketImage& image) {
  auto where = [&] { return "finish restore " + image.describe(); };
  if (sys_.set_int(fd, IPPROTO_TCP, TCP_REPAIR, TCP_REPAIR_OFF_NO_WP) != 0) {
    return sys_error("leave repair mode").context(where());
  }
  const size_t sent = image.send_queue.size() - image.send_unsent;
  if (auto st = send_all(sys_, fd, image.send_queue.data() + sent, image.send_unsent,
                         "unsent bytes");
      !st)
    return st.error().context(where());
  // A FIN queued in repair mode would mark the unsent bytes before it as sent.
  if (image.fin_unsent && sys_.shutdown(fd, SHUT_WR) != 0) {
    return sys_error("send our FIN").context(where());
  }
  if (image.options.notsent_lowat != 0) {
    if (auto st = set_or_fail(sys_, fd, IPPROTO_TCP, TCP_NOTSENT_LOWAT,
                              static_cast<int>(image.options.notsent_lowat), "TCP_NOTSENT_LOWAT");
        !st)
      return st.error().context(where());
  }
  return {};
}

Status SocketRestorer::probe(int fd, const SocketImage& image) {
  const bool data_outstanding = !image.send_queue.empty() || fin_sent(image.state);
  if (!data_outstanding) return {};
  TcpInfo info;
  if (sys_.tcp_info(fd, &info) != 0) return sys_error("TCP_INFO");
  if (info.state == static_cast<uint8_t>(TcpState::kEstablished)) {
    // Entering and leaving repair mode makes the kernel send a window probe
    // (seq snd_una - 1), which the peer must answer with an ACK.
    if (sys_.set_int(fd, IPPROTO_TCP, TCP_REPAIR, 1) != 0 ||
        sys_.set_int(fd, IPPROTO_TCP, TCP_REPAIR, 0) != 0) {
      return sys_error("window probe");
    }
    return {};
  }
  // The kernel only probes ESTABLISHED sockets; send the same segment ourselves.
  const uint32_t rcv_nxt = image.recv_end() + (fin_received(image.state) ? 1 : 0);
  const uint32_t window = image.window.rcv_wnd >> image.tcp.rcv_wscale;
  TcpSegment probe{image.local, image.peer, image.send_seq - 1, rcv_nxt, kTcpAck,
                   static_cast<uint16_t>(std::min<uint32_t>(window, 0xffff))};
  return injector_.send(probe);
}

}  // namespace seamless::repair
