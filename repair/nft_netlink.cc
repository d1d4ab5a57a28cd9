#include "repair/nft_netlink.h"

#include <libmnl/libmnl.h>
#include <libnftnl/common.h>
#include <linux/netfilter/nfnetlink.h>
#include <poll.h>
#include <sys/socket.h>

#include <cstdlib>
#include <cstring>
#include <optional>

namespace seamless::repair::nft {
namespace {

// nfnetlink answers inside our sendmsg, so replies are queued by the time we read;
// the timeout only guards against a kernel that never answers.
constexpr int kReplyTimeoutMs = 5000;
// Dump replies come in skbs of at most 32 KiB; acks are small (NETLINK_CAP_ACK).
constexpr size_t kReceiveBufferBytes = size_t{64} * 1024;

// One NLMSG_ERROR reply: code 0 is an ACK.
struct Ack {
  uint32_t seq = 0;
  int code = 0;                        // errno
  std::optional<uint32_t> bad_offset;  // NLMSGERR_ATTR_OFFS, from the message start
  std::string kernel_message;          // NLMSGERR_ATTR_MSG
};

// Reads the extended-ack TLVs that follow the error header (NETLINK_EXT_ACK).
void parse_ext_ack(const nlmsghdr* nlh, const nlmsgerr* err, Ack* ack) {
  if (!(nlh->nlmsg_flags & NLM_F_ACK_TLVS)) return;
  size_t header = sizeof(nlmsgerr);
  if (!(nlh->nlmsg_flags & NLM_F_CAPPED)) header += err->msg.nlmsg_len - sizeof(nlmsghdr);
  const size_t payload = mnl_nlmsg_get_payload_len(nlh);
  if (payload <= header) return;
  const auto* base = static_cast<const uint8_t*>(mnl_nlmsg_get_payload(nlh)) + header;
  int left = static_cast<int>(payload - header);
  for (auto* attr = reinterpret_cast<const nlattr*>(base); mnl_attr_ok(attr, left);) {
    const uint16_t type = mnl_attr_get_type(attr);
    if (type == NLMSGERR_ATTR_MSG && mnl_attr_validate(attr, MNL_TYPE_NUL_STRING) == 0) {
      ack->kernel_message = mnl_attr_get_str(attr);
    } else if (type == NLMSGERR_ATTR_OFFS && mnl_attr_validate(attr, MNL_TYPE_U32) == 0) {
      ack->bad_offset = mnl_attr_get_u32(attr);
    }
    left -= static_cast<int>(NLA_ALIGN(attr->nla_len));
    attr = mnl_attr_next(attr);
  }
}

std::optional<Ack> parse_ack(const nlmsghdr* nlh) {
  if (nlh->nlmsg_type != NLMSG_ERROR) return std::nullopt;
  if (mnl_nlmsg_get_payload_len(nlh) < sizeof(nlmsgerr)) return std::nullopt;
  const auto* err = static_cast<const nlmsgerr*>(mnl_nlmsg_get_payload(nlh));
  Ack ack{nlh->nlmsg_seq, -err->error, std::nullopt, {}};
  if (ack.code != 0) parse_ext_ack(nlh, err, &ack);
  return ack;
}

// Calls fn for every netlink message in a received datagram.
template <typename Fn>
void for_each_message(const uint8_t* data, size_t len, Fn fn) {
  int left = static_cast<int>(len);
  for (auto* nlh = reinterpret_cast<const nlmsghdr*>(data); mnl_nlmsg_ok(nlh, left);
       nlh = mnl_nlmsg_next(nlh, &left)) {
    fn(nlh);
  }
}

std::string describe_failure(const Batch& batch, const Ack& ack, const Reporter& reporter) {
  const Batch::Record* record = batch.find(ack.seq);
  std::string text = record ? record->what : "message " + std::to_string(ack.seq);
  if (record && ack.bad_offset && reporter.item) {
    // Items are noted in ascending offset order: the failed one starts at or before
    // the attribute the kernel points at.
    const auto& items = record->items;
    for (size_t i = items.size(); i-- > 0;) {
      if (items[i].first <= *ack.bad_offset) {
        text += " (" + reporter.item(items[i].second) + ")";
        break;
      }
    }
  }
  text += std::string(": ") + std::strerror(ack.code);
  if (!ack.kernel_message.empty()) text += " (" + ack.kernel_message + ")";
  if (reporter.advice) {
    const std::string advice = reporter.advice(record ? record->type : 0, ack.code);
    if (!advice.empty()) text += ": " + advice;
  }
  return text;
}

}  // namespace

// ---- Batch ----

Batch::Batch(uint32_t first_seq) : first_seq_(first_seq), next_seq_(first_seq) {
  buffer_.reserve(4096);
  buffer_.resize(NLMSG_SPACE(sizeof(nfgenmsg)));
  const nlmsghdr* nlh = nftnl_batch_begin(reinterpret_cast<char*>(buffer_.data()), next_seq_);
  buffer_.resize(NLMSG_ALIGN(nlh->nlmsg_len));
  records_.push_back({next_seq_++, 0, "transaction", {}});
}

nlmsghdr* Batch::open(uint16_t type, uint16_t family, uint16_t flags, std::string what) {
  if (open_at_ != kNone) std::abort();  // a programming error: one message at a time
  open_at_ = buffer_.size();
  buffer_.resize(open_at_ + kMaxMessageBytes);
  nftnl_nlmsg_build_hdr(reinterpret_cast<char*>(buffer_.data() + open_at_), type, family,
                        flags | NLM_F_ACK, next_seq_);
  records_.push_back({next_seq_++, type, std::move(what), {}});
  ++messages_;
  return current();
}

size_t Batch::room() const { return kMaxMessageBytes - current()->nlmsg_len; }

void Batch::note_item(const nlattr* attr, size_t index) {
  const auto offset = reinterpret_cast<const uint8_t*>(attr) - buffer_.data() - open_at_;
  records_.back().items.emplace_back(static_cast<uint32_t>(offset), index);
}

void Batch::close() {
  const size_t len = NLMSG_ALIGN(current()->nlmsg_len);
  // libnftnl writes without bounds checks; past this point memory is already gone.
  if (len > kMaxMessageBytes) std::abort();
  buffer_.resize(open_at_ + len);
  open_at_ = kNone;
}

void Batch::seal() {
  const size_t at = buffer_.size();
  buffer_.resize(at + NLMSG_SPACE(sizeof(nfgenmsg)));
  const nlmsghdr* nlh = nftnl_batch_end(reinterpret_cast<char*>(buffer_.data() + at), next_seq_);
  buffer_.resize(at + NLMSG_ALIGN(nlh->nlmsg_len));
  records_.push_back({next_seq_++, 0, "transaction", {}});
}

const Batch::Record* Batch::find(uint32_t seq) const {
  const uint32_t index = seq - first_seq_;
  return index < records_.size() ? &records_[index] : nullptr;
}

// ---- Socket ----

void Socket::Closer::operator()(mnl_socket* nl) const { mnl_socket_close(nl); }

Socket::Socket(std::unique_ptr<mnl_socket, Closer> nl)
    : nl_(std::move(nl)), receive_buffer_(kReceiveBufferBytes) {}
Socket::Socket(Socket&&) noexcept = default;
Socket& Socket::operator=(Socket&&) noexcept = default;
Socket::~Socket() = default;

int Socket::fd() const { return mnl_socket_get_fd(nl_.get()); }

Result<Socket> Socket::open(bool close_on_exec) {
  std::unique_ptr<mnl_socket, Closer> nl(
      mnl_socket_open2(NETLINK_NETFILTER, close_on_exec ? SOCK_CLOEXEC : 0));
  if (!nl) return Error::from_errno("socket(NETLINK_NETFILTER)");
  if (mnl_socket_bind(nl.get(), 0, MNL_SOCKET_AUTOPID) < 0) {
    return Error::from_errno("bind netlink socket");
  }
  Socket socket(std::move(nl));
  if (Status s = socket.prepare(); !s) return s.error();
  return socket;
}

Result<Socket> Socket::adopt(UniqueFd fd) {
  int domain = 0, protocol = 0;
  socklen_t len = sizeof(int);
  if (::getsockopt(fd.get(), SOL_SOCKET, SO_DOMAIN, &domain, &len) != 0) {
    return Error::from_errno("adopt fd " + std::to_string(fd.get()));
  }
  len = sizeof(int);
  if (::getsockopt(fd.get(), SOL_SOCKET, SO_PROTOCOL, &protocol, &len) != 0) {
    return Error::from_errno("adopt fd " + std::to_string(fd.get()));
  }
  if (domain != AF_NETLINK || protocol != NETLINK_NETFILTER) {
    return Error{EINVAL,
                 "adopt fd " + std::to_string(fd.get()) + ": not a NETLINK_NETFILTER socket"};
  }
  std::unique_ptr<mnl_socket, Closer> nl(mnl_socket_fdopen(fd.get()));
  if (!nl) return Error::from_errno("adopt fd " + std::to_string(fd.get()));
  fd.release();  // libmnl closes it from now on
  // A socket that never sent or bound has no port id yet.
  if (mnl_socket_get_portid(nl.get()) == 0 &&
      mnl_socket_bind(nl.get(), 0, MNL_SOCKET_AUTOPID) < 0) {
    return Error::from_errno("bind netlink socket");
  }
  Socket socket(std::move(nl));
  if (Status s = socket.prepare(); !s) return s.error();
  return socket;
}

Status Socket::prepare() {
  portid_ = mnl_socket_get_portid(nl_.get());
  int on = 1;  // libmnl takes a non-const pointer
  // Error replies must not echo our (up to 48 KiB) messages back.
  if (mnl_socket_setsockopt(nl_.get(), NETLINK_CAP_ACK, &on, sizeof(on)) < 0) {
    return Error::from_errno("setsockopt(NETLINK_CAP_ACK)");
  }
  // Extended acks say which attribute (which flow) the kernel rejected; optional.
  mnl_socket_setsockopt(nl_.get(), NETLINK_EXT_ACK, &on, sizeof(on));
  return {};
}

Status Socket::grow_send_buffer(size_t bytes) {
  int current = 0;
  socklen_t len = sizeof(current);
  if (::getsockopt(fd(), SOL_SOCKET, SO_SNDBUF, &current, &len) != 0) {
    return Error::from_errno("getsockopt(SO_SNDBUF)");
  }
  // netlink_sendmsg() refuses a datagram larger than the send buffer minus 32.
  if (bytes + 1024 <= static_cast<size_t>(current)) return {};
  const int wanted = static_cast<int>(bytes + 4096);
  // FORCE needs CAP_NET_ADMIN, which every nf_tables change needs anyway; plain
  // SO_SNDBUF is capped by net.core.wmem_max. If both fall short, sendmsg says so.
  if (::setsockopt(fd(), SOL_SOCKET, SO_SNDBUFFORCE, &wanted, sizeof(wanted)) != 0) {
    ::setsockopt(fd(), SOL_SOCKET, SO_SNDBUF, &wanted, sizeof(wanted));
  }
  return {};
}

Status Socket::send(const void* data, size_t len) {
  if (Status s = grow_send_buffer(len); !s) return s;
  if (mnl_socket_sendto(nl_.get(), data, len) < 0) {
    const int err = errno;
    if (err == EMSGSIZE) {
      return Error{err, "send " + std::to_string(len) +
                            " bytes: larger than the netlink send buffer allows"};
    }
    return Error::from_errno("send", err);
  }
  return {};
}

Result<size_t> Socket::receive(bool wait) {
  pollfd pfd{fd(), POLLIN, 0};
  const int ready = ::poll(&pfd, 1, wait ? kReplyTimeoutMs : 0);
  if (ready < 0) return Error::from_errno("poll netlink socket");
  if (ready == 0) {
    if (!wait) return size_t{0};
    return Error{ETIMEDOUT,
                 "no reply from nf_tables within " + std::to_string(kReplyTimeoutMs) + " ms"};
  }
  const ssize_t n = mnl_socket_recvfrom(nl_.get(), receive_buffer_.data(), receive_buffer_.size());
  if (n < 0) {
    const int err = errno;
    if (err == ENOBUFS) return Error{err, "receive: replies were lost (socket overrun)"};
    return Error::from_errno("receive", err);
  }
  return static_cast<size_t>(n);
}

void Socket::drain() {
  for (;;) {
    Result<size_t> n = receive(false);
    if (!n || *n == 0) return;
  }
}

Status Socket::commit(const Batch& batch, const Reporter& reporter) {
  drain();  // replies left by an earlier, abandoned exchange
  const auto& bytes = batch.bytes();
  if (Status s = send(bytes.data(), bytes.size()); !s) return s;
  seq_ = batch.last_seq() + 1;
  return read_acks(batch, reporter);
}

Status Socket::read_acks(const Batch& batch, const Reporter& reporter) {
  std::vector<bool> answered(batch.last_seq() - batch.first_seq() + 1, false);
  size_t pending = batch.message_count();
  std::optional<Ack> failure;
  bool whole_batch = false;  // an error on BEGIN/END: no per-message replies follow
  while (pending > 0 && !whole_batch) {
    Result<size_t> n = receive(true);
    if (!n) return n.error();
    for_each_message(receive_buffer_.data(), *n, [&](const nlmsghdr* nlh) {
      const std::optional<Ack> ack = parse_ack(nlh);
      if (!ack || !batch.find(ack->seq)) return;  // not ours, or from an earlier batch
      const uint32_t index = ack->seq - batch.first_seq();
      if (ack->seq == batch.first_seq() || ack->seq == batch.last_seq()) {
        // EPERM, nf_tables missing, or a failed commit: the verdict on everything.
        whole_batch = true;
        if (ack->code != 0) failure = ack;
        return;
      }
      if (answered[index]) return;
      answered[index] = true;
      --pending;
      if (ack->code != 0 && (!failure || ack->seq < failure->seq)) failure = ack;
    });
  }
  if (whole_batch) drain();  // a failed commit is followed by the per-message acks
  if (failure) return Error{failure->code, describe_failure(batch, *failure, reporter)};
  return {};
}

Status Socket::dump(uint16_t type, uint16_t family, const std::function<void(nlmsghdr*)>& build,
                    const std::function<void(const nlmsghdr*)>& on_reply) {
  drain();
  std::vector<uint8_t> request(MNL_SOCKET_BUFFER_SIZE);
  const uint32_t seq = seq_++;
  nlmsghdr* nlh =
      nftnl_nlmsg_build_hdr(reinterpret_cast<char*>(request.data()), type, family, NLM_F_DUMP, seq);
  build(nlh);
  if (Status s = send(nlh, nlh->nlmsg_len); !s) return s;
  bool done = false, interrupted = false;
  std::optional<int> error;
  while (!done && !error) {
    Result<size_t> n = receive(true);
    if (!n) return n.error();
    for_each_message(receive_buffer_.data(), *n, [&](const nlmsghdr* reply) {
      if (reply->nlmsg_seq != seq || done || error) return;
      if (reply->nlmsg_flags & NLM_F_DUMP_INTR) interrupted = true;
      if (reply->nlmsg_type == NLMSG_DONE) {
        done = true;
        // A dump that fails midway reports its errno in the DONE message.
        if (mnl_nlmsg_get_payload_len(reply) >= sizeof(int)) {
          const int code = *static_cast<const int*>(mnl_nlmsg_get_payload(reply));
          if (code < 0) error = -code;
        }
      } else if (const std::optional<Ack> ack = parse_ack(reply)) {
        if (ack->code != 0) error = ack->code;
      } else {
        on_reply(reply);
      }
    });
  }
  if (error) return Error::from_errno("dump", *error);
  if (interrupted) return Error{EINTR, "dump: interrupted by a concurrent ruleset change"};
  return {};
}

}  // namespace seamless::repair::nft
