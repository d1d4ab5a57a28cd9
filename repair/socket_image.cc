// Checkpoint side of SocketImage: reads a live socket's complete TCP state.
#include "repair/socket_image.h"

#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <netinet/tcp.h>

#include "repair/sys.h"

namespace seamless::repair {
namespace {

constexpr uint8_t kOptTimestamps = 1;
constexpr uint8_t kOptSack = 2;
constexpr uint8_t kOptWscale = 4;

Error sys_error(const std::string& what) { return Error::from_errno(what); }

Result<Endpoint> read_name(Sys& sys, int fd, bool peer) {
  sockaddr_storage storage{};
  socklen_t len = sizeof(storage);
  auto* sa = reinterpret_cast<sockaddr*>(&storage);
  const int rc = peer ? sys.getpeername(fd, sa, &len) : sys.getsockname(fd, sa, &len);
  if (rc != 0) return sys_error(peer ? "getpeername" : "getsockname");
  return Endpoint::from_sockaddr(sa, len);
}

// The three queue lengths; in repair mode they cannot change under us.
struct QueueLengths {
  int inq = 0;
  int outq = 0;
  int notsent = 0;
};

Result<QueueLengths> read_queue_lengths(Sys& sys, int fd) {
  QueueLengths q;
  if (sys.ioctl_int(fd, SIOCINQ, &q.inq) != 0) return sys_error("ioctl SIOCINQ");
  if (sys.ioctl_int(fd, SIOCOUTQ, &q.outq) != 0) return sys_error("ioctl SIOCOUTQ");
  if (sys.ioctl_int(fd, SIOCOUTQNSD, &q.notsent) != 0) return sys_error("ioctl SIOCOUTQNSD");
  return q;
}

// Selects a queue, reads its sequence number and peeks exactly `expected` bytes,
// asking for one more to prove there is no more.
Result<uint32_t> read_queue(Sys& sys, int fd, int queue, size_t expected, std::string* bytes) {
  const char* name = queue == TCP_RECV_QUEUE ? "receive queue" : "send queue";
  if (sys.set_int(fd, IPPROTO_TCP, TCP_REPAIR_QUEUE, queue) != 0) {
    return sys_error(std::string("select ") + name);
  }
  uint32_t seq = 0;
  socklen_t len = sizeof(seq);
  if (sys.getsockopt(fd, IPPROTO_TCP, TCP_QUEUE_SEQ, &seq, &len) != 0) {
    return sys_error(std::string(name) + " sequence");
  }
  bytes->assign(expected + 1, '\0');
  size_t got = 0;
  if (expected > 0) {
    const ssize_t n = sys.recv(fd, bytes->data(), bytes->size(), MSG_PEEK | MSG_DONTWAIT);
    if (n < 0) return sys_error(std::string("peek ") + name);
    got = static_cast<size_t>(n);
  }
  if (got != expected) {
    return Error::logic(std::string(name) + " holds " + std::to_string(got) + " bytes, expected " +
                        std::to_string(expected));
  }
  bytes->resize(expected);
  return seq;
}

Status read_negotiated(Sys& sys, int fd, const TcpInfo& info, NegotiatedOptions* tcp) {
  tcp->sack = info.options & kOptSack;
  tcp->timestamps = info.options & kOptTimestamps;
  tcp->window_scaling = info.options & kOptWscale;
  tcp->snd_wscale = tcp->window_scaling ? info.snd_wscale : 0;
  tcp->rcv_wscale = tcp->window_scaling ? info.rcv_wscale : 0;
  int mss = 0;  // in repair mode TCP_MAXSEG reports the MSS clamp
  if (sys.get_int(fd, IPPROTO_TCP, TCP_MAXSEG, &mss) != 0) return sys_error("get TCP_MAXSEG");
  tcp->mss = static_cast<uint32_t>(mss);
  if (tcp->timestamps) {
    uint32_t ts = 0;
    socklen_t len = sizeof(ts);
    if (sys.getsockopt(fd, IPPROTO_TCP, TCP_TIMESTAMP, &ts, &len) != 0) {
      return sys_error("get TCP_TIMESTAMP");
    }
    tcp->timestamp = ts;
  }
  return {};
}

Result<RepairWindow> read_window(Sys& sys, int fd) {
  tcp_repair_window raw{};
  socklen_t len = sizeof(raw);
  if (sys.getsockopt(fd, IPPROTO_TCP, TCP_REPAIR_WINDOW, &raw, &len) != 0) {
    return sys_error("get TCP_REPAIR_WINDOW");
  }
  return RepairWindow{raw.snd_wl1, raw.snd_wnd, raw.max_window, raw.rcv_wnd, raw.rcv_wup};
}

Result<SocketOptions> read_options(Sys& sys, int fd, int family) {
  SocketOptions o;
  int v = 0;
  struct Flag {
    int level, name;
    bool* out;
    const char* what;
  };
  for (const Flag& f : {Flag{IPPROTO_TCP, TCP_NODELAY, &o.nodelay, "TCP_NODELAY"},
                        Flag{SOL_SOCKET, SO_OOBINLINE, &o.oobinline, "SO_OOBINLINE"},
                        Flag{SOL_SOCKET, SO_KEEPALIVE, &o.keepalive, "SO_KEEPALIVE"}}) {
    if (sys.get_int(fd, f.level, f.name, &v) != 0) return sys_error(std::string("get ") + f.what);
    *f.out = v != 0;
  }
  struct Number {
    int level, name;
    int32_t* out;
    const char* what;
  };
  for (const Number& n : {Number{IPPROTO_TCP, TCP_KEEPIDLE, &o.keepidle, "TCP_KEEPIDLE"},
                          Number{IPPROTO_TCP, TCP_KEEPINTVL, &o.keepintvl, "TCP_KEEPINTVL"},
                          Number{IPPROTO_TCP, TCP_KEEPCNT, &o.keepcnt, "TCP_KEEPCNT"}}) {
    if (sys.get_int(fd, n.level, n.name, n.out) != 0) return sys_error(std::string("get ") + n.what);
  }
  if (sys.get_int(fd, IPPROTO_TCP, TCP_NOTSENT_LOWAT, &v) != 0) {
    return sys_error("get TCP_NOTSENT_LOWAT");
  }
  o.notsent_lowat = static_cast<uint32_t>(v);
  if (sys.get_int(fd, SOL_SOCKET, SO_MARK, &v) != 0) return sys_error("get SO_MARK");
  o.mark = static_cast<uint32_t>(v);
  if (family == AF_INET6) {
    if (sys.get_int(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v) != 0) return sys_error("get IPV6_V6ONLY");
    o.v6only = v != 0;
  }
  return o;
}

// Turns the raw counters read in repair mode into the image's data-only view
// (shared/TCP_REPAIR.md "Sequence accounting").
Status fill_queues(Sys& sys, int fd, const QueueLengths& q, SocketImage* image) {
  const uint32_t fin_out = fin_sent(image->state) ? 1 : 0;
  const uint32_t fin_in = fin_received(image->state) ? 1 : 0;
  const uint32_t fin_in_outq = fin_out && image->state != TcpState::kFinWait2 ? 1 : 0;
  if (q.inq < 0 || q.outq < static_cast<int>(fin_in_outq) || q.notsent < 0) {
    return Error::logic("inconsistent queue lengths");
  }
  image->fin_unsent = fin_out && q.notsent > 0;
  const uint32_t data_outq = static_cast<uint32_t>(q.outq) - fin_in_outq;
  const uint32_t data_notsent = static_cast<uint32_t>(q.notsent) - (image->fin_unsent ? 1 : 0);
  if (data_notsent > data_outq) return Error::logic("more unsent bytes than queued");

  auto write_seq = read_queue(sys, fd, TCP_SEND_QUEUE, data_outq, &image->send_queue);
  if (!write_seq) return write_seq.error();
  image->send_seq = *write_seq - fin_out - data_outq;
  image->send_unsent = data_notsent;

  auto rcv_nxt = read_queue(sys, fd, TCP_RECV_QUEUE, static_cast<size_t>(q.inq),
                            &image->recv_queue);
  if (!rcv_nxt) return rcv_nxt.error();
  image->recv_seq = *rcv_nxt - fin_in - static_cast<uint32_t>(q.inq);
  return {};
}

// What moves if a segment is still processed while we read: repair mode stops the
// socket from sending, not from receiving what passed the flow lock before it
// committed (or everything, when there is no lock).
struct Snapshot {
  QueueLengths lengths;
  uint32_t rcv_nxt = 0;
  uint32_t write_seq = 0;
  uint8_t state = 0;
  bool operator==(const Snapshot& o) const {
    return lengths.inq == o.lengths.inq && lengths.outq == o.lengths.outq &&
           lengths.notsent == o.lengths.notsent && rcv_nxt == o.rcv_nxt &&
           write_seq == o.write_seq && state == o.state;
  }
};

Result<uint32_t> queue_seq(Sys& sys, int fd, int queue) {
  if (sys.set_int(fd, IPPROTO_TCP, TCP_REPAIR_QUEUE, queue) != 0) {
    return sys_error("select queue");
  }
  uint32_t seq = 0;
  socklen_t len = sizeof(seq);
  if (sys.getsockopt(fd, IPPROTO_TCP, TCP_QUEUE_SEQ, &seq, &len) != 0) {
    return sys_error("queue sequence");
  }
  return seq;
}

Result<Snapshot> snapshot(Sys& sys, int fd) {
  Snapshot snap;
  auto lengths = read_queue_lengths(sys, fd);
  if (!lengths) return lengths.error();
  snap.lengths = *lengths;
  auto rcv = queue_seq(sys, fd, TCP_RECV_QUEUE);
  if (!rcv) return rcv.error();
  auto snd = queue_seq(sys, fd, TCP_SEND_QUEUE);
  if (!snd) return snd.error();
  snap.rcv_nxt = *rcv;
  snap.write_seq = *snd;
  TcpInfo info;
  if (sys.tcp_info(fd, &info) != 0) return sys_error("TCP_INFO");
  snap.state = info.state;
  return snap;
}

constexpr int kDumpAttempts = 8;

// Everything read while in repair mode; any failure leaves the caller to undo it.
// Reads the queues until two snapshots around the read agree.
Status dump_in_repair(Sys& sys, int fd, SocketImage* image, const TcpInfo& info) {
  for (int attempt = 0; attempt < kDumpAttempts; ++attempt) {
    auto before = snapshot(sys, fd);
    if (!before) return before.error();
    if (!is_migratable_state(before->state)) {
      return Error::logic("TCP state " + std::to_string(before->state) + " cannot be migrated");
    }
    image->state = static_cast<TcpState>(before->state);
    const Status filled = fill_queues(sys, fd, before->lengths, image);
    auto after = snapshot(sys, fd);
    if (!after) return after.error();
    if (!(*before == *after)) continue;  // a peek may have seen the extra bytes too
    if (!filled) return filled;
    if (auto st = read_negotiated(sys, fd, info, &image->tcp); !st) return st;
    auto window = read_window(sys, fd);
    if (!window) return window.error();
    image->window = *window;
    auto options = read_options(sys, fd, image->local.family);
    if (!options) return options.error();
    image->options = *options;
    return {};
  }
  return Error::logic("queues kept changing during dump (is the flow locked?)");
}

}  // namespace

const char* to_string(TcpState state) {
  switch (state) {
    case TcpState::kEstablished: return "ESTABLISHED";
    case TcpState::kFinWait1: return "FIN_WAIT1";
    case TcpState::kFinWait2: return "FIN_WAIT2";
    case TcpState::kCloseWait: return "CLOSE_WAIT";
    case TcpState::kLastAck: return "LAST_ACK";
    case TcpState::kClosing: return "CLOSING";
  }
  return "UNKNOWN";
}

bool is_migratable_state(int kernel_state) {
  switch (kernel_state) {
    case 1: case 4: case 5: case 8: case 9: case 11: return true;
    default: return false;
  }
}

bool fin_sent(TcpState s) {
  return s == TcpState::kFinWait1 || s == TcpState::kFinWait2 || s == TcpState::kClosing ||
         s == TcpState::kLastAck;
}

bool fin_received(TcpState s) {
  return s == TcpState::kCloseWait || s == TcpState::kLastAck || s == TcpState::kClosing;
}

std::string SocketImage::describe() const {
  return local.to_string() + " -> " + peer.to_string() + " " + to_string(state);
}

Result<SocketImage> dump_socket(Sys& sys, int fd) {
  SocketImage image;
  auto local = read_name(sys, fd, false);
  if (!local) return local.error().context("dump fd " + std::to_string(fd));
  auto peer = read_name(sys, fd, true);
  if (!peer) return peer.error().context("dump fd " + std::to_string(fd));
  image.local = *local;
  image.peer = *peer;
  const std::string where = "dump " + image.local.to_string() + " -> " + image.peer.to_string();

  if (sys.set_int(fd, IPPROTO_TCP, TCP_REPAIR, 1) != 0) {
    const int err = errno;
    Error e = Error::from_errno("enter repair mode", err);
    if (err == EPERM) e.message += " (needs CAP_NET_ADMIN)";
    return e.context(where);
  }
  // Negotiated options cannot change after the handshake; read them once.
  TcpInfo info;
  if (sys.tcp_info(fd, &info) != 0) {
    Error e = sys_error("TCP_INFO");
    sys.set_int(fd, IPPROTO_TCP, TCP_REPAIR, 0);
    return e.context(where);
  }
  if (auto st = dump_in_repair(sys, fd, &image, info); !st) {
    sys.set_int(fd, IPPROTO_TCP, TCP_REPAIR, 0);
    return st.error().context(where);
  }
  return image;
}

}  // namespace seamless::repair
