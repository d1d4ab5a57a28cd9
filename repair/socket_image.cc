// Checkpoint side of SocketImage: reads a live socket's complete TCP state.
#include "repair/socket_image.h"

#include <linux/sockios.h>
#include <netinet/tcp.h>
#include <sys/ioctl.h>

#include <algorithm>

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

// The three queue lengths. Repair mode stops the socket from sending, not from
// receiving: segments that passed the flow lock before it committed (or all of them,
// without a lock) still land, and ACKs still shrink the send queue.
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

Result<uint32_t> selected_queue_seq(Sys& sys, int fd) {
  uint32_t seq = 0;
  socklen_t len = sizeof(seq);
  if (sys.getsockopt(fd, IPPROTO_TCP, TCP_QUEUE_SEQ, &seq, &len) != 0) {
    return sys_error("queue sequence");
  }
  return seq;
}

// Selects a queue, reads its sequence number and peeks exactly `expected` bytes,
// asking for one more to prove there is no more.
Result<uint32_t> read_queue(Sys& sys, int fd, int queue, size_t expected, std::string* bytes) {
  const char* name = queue == TCP_RECV_QUEUE ? "receive queue" : "send queue";
  if (sys.set_int(fd, IPPROTO_TCP, TCP_REPAIR_QUEUE, queue) != 0) {
    return sys_error(std::string("select ") + name);
  }
  auto seq = selected_queue_seq(sys, fd);
  if (!seq) return seq.error();
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
  return *seq;
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

struct IntOption {
  int level, name;
  const char* what;
};

Result<int> read_int(Sys& sys, int fd, const IntOption& opt) {
  int v = 0;
  if (sys.get_int(fd, opt.level, opt.name, &v) != 0) return sys_error(std::string("get ") + opt.what);
  return v;
}

// Keepalive timings only matter (and are only read) when keepalive is on.
Result<SocketOptions> read_options(Sys& sys, int fd, int family) {
  SocketOptions o;
  const std::pair<IntOption, bool*> flags[] = {
      {{IPPROTO_TCP, TCP_NODELAY, "TCP_NODELAY"}, &o.nodelay},
      {{SOL_SOCKET, SO_OOBINLINE, "SO_OOBINLINE"}, &o.oobinline},
      {{SOL_SOCKET, SO_KEEPALIVE, "SO_KEEPALIVE"}, &o.keepalive},
      {{IPPROTO_IPV6, IPV6_V6ONLY, "IPV6_V6ONLY"}, family == AF_INET6 ? &o.v6only : nullptr}};
  for (const auto& [opt, out] : flags) {
    if (!out) continue;
    auto v = read_int(sys, fd, opt);
    if (!v) return v.error();
    *out = *v != 0;
  }
  const std::pair<IntOption, uint32_t*> values[] = {
      {{IPPROTO_TCP, TCP_NOTSENT_LOWAT, "TCP_NOTSENT_LOWAT"}, &o.notsent_lowat},
      {{SOL_SOCKET, SO_MARK, "SO_MARK"}, &o.mark}};
  for (const auto& [opt, out] : values) {
    auto v = read_int(sys, fd, opt);
    if (!v) return v.error();
    *out = static_cast<uint32_t>(*v);
  }
  if (!o.keepalive) return o;
  const std::pair<IntOption, int32_t*> timings[] = {
      {{IPPROTO_TCP, TCP_KEEPIDLE, "TCP_KEEPIDLE"}, &o.keepidle},
      {{IPPROTO_TCP, TCP_KEEPINTVL, "TCP_KEEPINTVL"}, &o.keepintvl},
      {{IPPROTO_TCP, TCP_KEEPCNT, "TCP_KEEPCNT"}, &o.keepcnt}};
  for (const auto& [opt, out] : timings) {
    auto v = read_int(sys, fd, opt);
    if (!v) return v.error();
    *out = *v;
  }
  return o;
}

// Turns the raw counters read in repair mode into the image's data-only view
// (shared/TCP_REPAIR.md "Sequence accounting"). Reads the receive queue first and the
// send queue last, so that the send queue stays selected: see dump_socket().
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

  auto rcv_nxt = read_queue(sys, fd, TCP_RECV_QUEUE, static_cast<size_t>(q.inq),
                            &image->recv_queue);
  if (!rcv_nxt) return rcv_nxt.error();
  image->recv_seq = *rcv_nxt - fin_in - static_cast<uint32_t>(q.inq);

  auto write_seq = read_queue(sys, fd, TCP_SEND_QUEUE, data_outq, &image->send_queue);
  if (!write_seq) return write_seq.error();
  image->send_seq = *write_seq - fin_out - data_outq;
  image->send_unsent = data_notsent;
  return {};
}

// After the queues were read: did anything land, get acknowledged or leave the
// send queue meanwhile? (A received FIN changes the state; data changes SIOCINQ.)
Result<bool> queues_moved(Sys& sys, int fd, const QueueLengths& read, uint8_t state) {
  auto now = read_queue_lengths(sys, fd);
  if (!now) return now.error();
  TcpInfo info;
  if (sys.tcp_info(fd, &info) != 0) return sys_error("TCP_INFO");
  return now->inq != read.inq || now->outq != read.outq || now->notsent != read.notsent ||
         info.state != state;
}

constexpr int kDumpAttempts = 8;

Status read_state(Sys& sys, int fd, TcpInfo* info, SocketImage* image) {
  if (sys.tcp_info(fd, info) != 0) return sys_error("TCP_INFO");
  if (!is_migratable_state(info->state)) {
    return Error::logic("TCP state " + std::to_string(info->state) + " cannot be migrated");
  }
  image->state = static_cast<TcpState>(info->state);
  return {};
}

// Everything read while in repair mode; any failure leaves the caller to undo it.
// The queues are read again until nothing moved while they were read.
Status dump_in_repair(Sys& sys, int fd, SocketImage* image) {
  TcpInfo info;
  for (int attempt = 0;; ++attempt) {
    if (attempt == kDumpAttempts) {
      return Error::logic("queues kept changing during dump (is the flow locked?)");
    }
    if (auto st = read_state(sys, fd, &info, image); !st) return st;
    auto lengths = read_queue_lengths(sys, fd);
    if (!lengths) return lengths.error();
    const Status filled = fill_queues(sys, fd, *lengths, image);
    if (!filled && filled.error().code != 0) return filled;  // a syscall failed
    // Also when a peek disagreed with the lengths: new bytes, or a real inconsistency.
    auto moved = queues_moved(sys, fd, *lengths, info.state);
    if (!moved) return moved.error();
    if (*moved) continue;
    if (!filled) return filled;
    break;
  }
  if (auto st = read_negotiated(sys, fd, info, &image->tcp); !st) return st;
  auto window = read_window(sys, fd);
  if (!window) return window.error();
  image->window = *window;
  auto options = read_options(sys, fd, image->local.family);
  if (!options) return options.error();
  image->options = *options;
  return {};
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

void count_sendable_bytes_as_sent(SocketImage& image) {
  const uint64_t queued = image.send_queue.size();
  const uint64_t window = image.window.snd_wnd;  // from send_seq (snd_una) on
  const uint64_t sent = queued - image.send_unsent;
  const uint64_t sendable = std::max(sent, std::min(queued, window));
  image.send_unsent = static_cast<uint32_t>(queued - sendable);
  // The FIN takes one sequence number of window too.
  if (image.fin_unsent && image.send_unsent == 0 && queued < window) image.fin_unsent = false;
}

std::string SocketImage::describe() const {
  return local.to_string() + " -> " + peer.to_string() + " " + to_string(state);
}

Result<SocketImage> dump_socket(Sys& sys, int fd) {
  auto local = read_name(sys, fd, false);
  if (!local) return local.error().context("dump fd " + std::to_string(fd));
  auto peer = read_name(sys, fd, true);
  if (!peer) return peer.error().context("dump fd " + std::to_string(fd));
  return dump_socket(sys, fd, *local, *peer);
}

Result<SocketImage> dump_socket(Sys& sys, int fd, const Endpoint& local, const Endpoint& peer) {
  SocketImage image;
  image.local = local;
  image.peer = peer;
  auto where = [&] { return "dump " + image.local.to_string() + " -> " + image.peer.to_string(); };

  if (sys.set_int(fd, IPPROTO_TCP, TCP_REPAIR, 1) != 0) {
    const int err = errno;
    Error e = Error::from_errno("enter repair mode", err);
    if (err == EPERM) e.message += " (needs CAP_NET_ADMIN)";
    return e.context(where());
  }
  // Repair mode does not stop every transmission: a timer or a late ACK makes the
  // socket push unsent data, unless the send queue is selected, in which case the
  // kernel marks it sent without transmitting it. The dump ends with the send queue
  // selected and leaves it so, for as long as the dumped socket lives: otherwise the
  // peer could receive (and acknowledge) bytes the image restores as never sent, and
  // the restored socket would drop that acknowledgement as one for unsent data.
  if (auto st = dump_in_repair(sys, fd, &image); !st) {
    sys.set_int(fd, IPPROTO_TCP, TCP_REPAIR, 0);
    return st.error().context(where());
  }
  return image;
}

}  // namespace seamless::repair
