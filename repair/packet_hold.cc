#include "repair/packet_hold.h"

// clang-format off
// First: <linux/netfilter.h> pulls in <linux/in.h>, which clashes with glibc's
// definitions unless glibc's come first.
#include <netinet/in.h>
// clang-format on

#include <arpa/inet.h>
#include <fcntl.h>
#include <libmnl/libmnl.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_queue.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <optional>
#include <string>
#include <tuple>
#include <utility>

#include "repair/nft_ruleset.h"

namespace seamless::repair {

namespace {

// What tells a peer's retransmission from a new segment: the same sequence range,
// acknowledging the same, with the same flags.
struct SegmentId {
  uint32_t seq = 0;
  uint32_t ack = 0;
  uint32_t payload = 0;
  uint8_t flags = 0;
  bool operator==(const SegmentId&) const = default;
};

struct QueuedPacket {
  uint32_t id = 0;
  // None: not a TCP packet we can name (not TCP, truncated, IPv6 extension headers:
  // packets the lock's rules never match either); released at once.
  std::optional<nft::Key> key;
  SegmentId segment;
};

// The flow key (laid out as nft::key_of lays out a Flow's: saddr, sport, daddr, dport,
// each port in a 4-byte slot) and the segment of a received packet's first bytes.
bool parse_headers(std::span<const uint8_t> packet, QueuedPacket* out) {
  if (packet.empty()) return false;
  size_t addr_len = 0, saddr_at = 0, daddr_at = 0, transport_at = 0, ip_end = 0;
  if (const uint8_t version = packet[0] >> 4; version == 4 && packet.size() >= 20) {
    if (packet[9] != IPPROTO_TCP) return false;
    addr_len = 4, saddr_at = 12, daddr_at = 16;
    transport_at = size_t{packet[0] & 0x0fu} * 4;
    ip_end = size_t{packet[2]} << 8 | packet[3];
  } else if (version == 6 && packet.size() >= 40) {
    if (packet[6] != IPPROTO_TCP) return false;
    addr_len = 16, saddr_at = 8, daddr_at = 24, transport_at = 40;
    ip_end = 40 + (size_t{packet[4]} << 8 | packet[5]);
  } else {
    return false;
  }
  if (transport_at < 20 || packet.size() < transport_at + 14) return false;
  const uint8_t* tcp = packet.data() + transport_at;
  nft::Key key;
  uint8_t* at = key.bytes.data();
  for (auto [from, len, slot] : {std::tuple{packet.data() + saddr_at, addr_len, addr_len},
                                 std::tuple{tcp, size_t{2}, size_t{4}},
                                 std::tuple{packet.data() + daddr_at, addr_len, addr_len},
                                 std::tuple{tcp + 2, size_t{2}, size_t{4}}}) {
    std::memcpy(at, from, len);
    at += slot;
  }
  key.len = static_cast<uint8_t>(at - key.bytes.data());
  out->key = key;
  auto u32 = [](const uint8_t* p) {
    return uint32_t{p[0]} << 24 | uint32_t{p[1]} << 16 | uint32_t{p[2]} << 8 | p[3];
  };
  const size_t headers = transport_at + size_t{tcp[12]} / 16 * 4;
  out->segment = {u32(tcp + 4), u32(tcp + 8),
                  static_cast<uint32_t>(ip_end > headers ? ip_end - headers : 0), tcp[13]};
  return true;
}

// A key's bytes, to look held packets up by flow.
std::string key_text(const nft::Key& key) {
  return {reinterpret_cast<const char*>(key.bytes.data()), key.len};
}

constexpr uint16_t kConfigType = NFNL_SUBSYS_QUEUE << 8 | NFQNL_MSG_CONFIG;
constexpr uint16_t kPacketType = NFNL_SUBSYS_QUEUE << 8 | NFQNL_MSG_PACKET;
constexpr uint16_t kVerdictType = NFNL_SUBSYS_QUEUE << 8 | NFQNL_MSG_VERDICT;
// Enough of each packet for key_of_packet: an IPv4 header with options or an IPv6
// header, then the TCP ports.
constexpr uint32_t kCopyBytes = 96;
// The kernel charges a queued packet's message at its skb's true size (about 1 KiB):
// room for tens of thousands, taken only while they wait.
constexpr int kReceiveBufferBytes = 32 << 20;
constexpr size_t kReadBufferBytes = size_t{256} * 1024;
constexpr int kAckTimeoutMs = 5000;
constexpr uint8_t kTcpFin = 0x01;

nlmsghdr* start_message(uint8_t* buffer, uint16_t type, uint16_t flags, uint16_t queue) {
  nlmsghdr* nlh = mnl_nlmsg_put_header(buffer);
  nlh->nlmsg_type = type;
  nlh->nlmsg_flags = NLM_F_REQUEST | flags;
  auto* gen = static_cast<nfgenmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(nfgenmsg)));
  gen->nfgen_family = AF_UNSPEC;
  gen->version = NFNETLINK_V0;
  gen->res_id = htons(queue);
  return nlh;
}

Status send_to_kernel(int fd, const void* data, size_t len) {
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  for (;;) {
    const ssize_t n =
        ::sendto(fd, data, len, 0, reinterpret_cast<sockaddr*>(&kernel), sizeof(kernel));
    if (n >= 0) return {};
    if (errno != EINTR) return Error::from_errno("send to nfnetlink_queue");
  }
}

// Binds `queue` and configures it; the kernel's answer (EBUSY: someone else's).
Status bind_queue(int fd, uint16_t queue, uint32_t max_held) {
  std::vector<uint8_t> buffer(MNL_SOCKET_BUFFER_SIZE);
  nlmsghdr* nlh = start_message(buffer.data(), kConfigType, NLM_F_ACK, queue);
  const nfqnl_msg_config_cmd bind{NFQNL_CFG_CMD_BIND, 0, 0};
  mnl_attr_put(nlh, NFQA_CFG_CMD, sizeof(bind), &bind);
  nfqnl_msg_config_params params{};
  params.copy_range = htonl(kCopyBytes);
  params.copy_mode = NFQNL_COPY_PACKET;
  mnl_attr_put(nlh, NFQA_CFG_PARAMS, sizeof(params), &params);
  mnl_attr_put_u32(nlh, NFQA_CFG_QUEUE_MAXLEN, htonl(max_held));
  // GSO: queue large received segments whole instead of cutting them up for us.
  mnl_attr_put_u32(nlh, NFQA_CFG_MASK, htonl(NFQA_CFG_F_GSO));
  mnl_attr_put_u32(nlh, NFQA_CFG_FLAGS, htonl(NFQA_CFG_F_GSO));
  nlh->nlmsg_seq = queue;
  if (Status s = send_to_kernel(fd, nlh, nlh->nlmsg_len); !s) return s;
  for (;;) {
    pollfd pfd{fd, POLLIN, 0};
    if (::poll(&pfd, 1, kAckTimeoutMs) <= 0) return Error{ETIMEDOUT, "nfnetlink_queue: no answer"};
    const ssize_t n = ::recv(fd, buffer.data(), buffer.size(), 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Error::from_errno("nfnetlink_queue");
    }
    int left = static_cast<int>(n);
    for (auto* reply = reinterpret_cast<const nlmsghdr*>(buffer.data()); mnl_nlmsg_ok(reply, left);
         reply = mnl_nlmsg_next(reply, &left)) {
      if (reply->nlmsg_type != NLMSG_ERROR || reply->nlmsg_seq != queue) continue;
      const auto* err = static_cast<const nlmsgerr*>(mnl_nlmsg_get_payload(reply));
      if (err->error == 0) return {};
      errno = -err->error;
      return Error::from_errno("bind queue " + std::to_string(queue));
    }
  }
}

Result<UniqueFd> open_socket(bool keep_on_exec) {
  UniqueFd fd(
      ::socket(AF_NETLINK, SOCK_RAW | (keep_on_exec ? 0 : SOCK_CLOEXEC), NETLINK_NETFILTER));
  if (!fd.valid()) return Error::from_errno("nfnetlink_queue socket");
  sockaddr_nl local{};
  local.nl_family = AF_NETLINK;
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&local), sizeof(local)) != 0) {
    return Error::from_errno("bind nfnetlink_queue socket");
  }
  // Without FORCE the size is capped by net.core.rmem_max (we have CAP_NET_ADMIN).
  int size = kReceiveBufferBytes;
  if (::setsockopt(fd.get(), SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof(size)) != 0) {
    ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
  }
  // A full buffer drops the packet it could not queue (as the drop lock would); we
  // need no ENOBUFS error on the next read to learn that.
  int on = 1;
  ::setsockopt(fd.get(), SOL_NETLINK, NETLINK_NO_ENOBUFS, &on, sizeof(on));
  return fd;
}

std::optional<QueuedPacket> parse_packet(const nlmsghdr* nlh) {
  if (nlh->nlmsg_type != kPacketType) return std::nullopt;
  const nfqnl_msg_packet_hdr* header = nullptr;
  std::span<const uint8_t> payload;
  const auto* attr =
      static_cast<const nlattr*>(mnl_nlmsg_get_payload_offset(nlh, sizeof(nfgenmsg)));
  const auto* tail = static_cast<const char*>(mnl_nlmsg_get_payload_tail(nlh));
  for (; mnl_attr_ok(attr, static_cast<int>(tail - reinterpret_cast<const char*>(attr)));
       attr = mnl_attr_next(attr)) {
    const uint16_t type = mnl_attr_get_type(attr);
    if (type == NFQA_PACKET_HDR && mnl_attr_get_payload_len(attr) >= sizeof(*header)) {
      header = static_cast<const nfqnl_msg_packet_hdr*>(mnl_attr_get_payload(attr));
    } else if (type == NFQA_PAYLOAD) {
      payload = {static_cast<const uint8_t*>(mnl_attr_get_payload(attr)),
                 mnl_attr_get_payload_len(attr)};
    }
  }
  if (header == nullptr) return std::nullopt;
  QueuedPacket packet;
  packet.id = ntohl(header->packet_id);
  if (!parse_headers(payload, &packet)) packet.key.reset();
  return packet;
}

}  // namespace

PacketHold::PacketHold(UniqueFd fd, uint16_t queue)
    : fd_(std::move(fd)),
      queue_(queue),
      buffer_(kReadBufferBytes),
      mutex_(std::make_unique<std::mutex>()) {}
PacketHold::PacketHold(PacketHold&&) noexcept = default;
PacketHold& PacketHold::operator=(PacketHold&&) noexcept = default;
PacketHold::~PacketHold() = default;

Result<PacketHold> PacketHold::open(PacketHoldOptions options) {
  Result<UniqueFd> fd = open_socket(options.keep_on_exec);
  if (!fd) return fd.error();
  // A queue bound by another socket answers EPERM, like a missing capability: try
  // the next number either way.
  Error last{EBUSY, "no queue to try"};
  for (uint32_t i = 0; i < options.queues_to_try; ++i) {
    const auto queue = static_cast<uint16_t>(options.first_queue + i);
    Status bound = bind_queue(fd->get(), queue, options.max_held);
    if (bound) return PacketHold(std::move(*fd), queue);
    last = bound.error();
    if (last.code != EPERM && last.code != EBUSY) break;  // e.g. no nfnetlink_queue
  }
  if (last.code == EPERM || last.code == EBUSY) {
    const uint32_t end = options.first_queue + options.queues_to_try - 1u;
    return Error{EBUSY, "packet hold: needs CAP_NET_ADMIN, or queues " +
                            std::to_string(options.first_queue) + " to " + std::to_string(end) +
                            " are all bound by other programs"};
  }
  return last.context("packet hold");
}

Result<PacketHold> PacketHold::adopt(UniqueFd fd, uint16_t queue) {
  if (!fd.valid()) return Error{EBADF, "packet hold: no socket to adopt"};
  return PacketHold(std::move(fd), queue);
}

std::string PacketHold::describe_for_child() const {
  return std::to_string(fd_.get()) + ":" + std::to_string(queue_);
}

Result<std::pair<int, uint16_t>> PacketHold::parse_child_description(const std::string& text) {
  const size_t colon = text.find(':');
  int fd = -1;
  uint16_t queue = 0;
  const char* end = text.data() + text.size();
  if (colon == std::string::npos ||
      std::from_chars(text.data(), text.data() + colon, fd).ptr != text.data() + colon ||
      std::from_chars(text.data() + colon + 1, end, queue).ptr != end || fd < 0) {
    return Error{EINVAL, "packet hold: expected <fd>:<queue>, got '" + text + "'"};
  }
  return std::pair{fd, queue};
}

Status PacketHold::read_queued() {
  for (;;) {
    const ssize_t n = ::recv(fd_.get(), buffer_.data(), buffer_.size(), MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return {};
      return Error::from_errno("packet hold: read");
    }
    int left = static_cast<int>(n);
    // NLMSG_ERROR replies (a verdict for a packet that is gone) tell us nothing to do.
    for (auto* nlh = reinterpret_cast<const nlmsghdr*>(buffer_.data()); mnl_nlmsg_ok(nlh, left);
         nlh = mnl_nlmsg_next(nlh, &left)) {
      std::optional<QueuedPacket> packet = parse_packet(nlh);
      if (!packet) continue;
      if (!packet->key) {
        unnamed_.push_back(packet->id);
        continue;
      }
      const SegmentId& s = packet->segment;
      std::vector<Held>& flow = held_by_flow_[key_text(*packet->key)];
      const bool carries_data = s.payload > 0 || (s.flags & kTcpFin) != 0;
      // Pure ACKs are never dropped: an identical one can still mean something
      // (duplicate ACKs are how a sender learns of a loss).
      auto same = [&](const Held& h) { return SegmentId{h.seq, h.ack, h.payload, h.flags} == s; };
      if (carries_data && std::any_of(flow.begin(), flow.end(), same)) {
        duplicates_.push_back(packet->id);
        continue;
      }
      flow.push_back({packet->id, s.seq, s.ack, s.payload, s.flags});
      ++held_count_;
    }
  }
}

Status PacketHold::send_verdicts(const std::vector<uint32_t>& ids, uint32_t verdict_code) {
  constexpr size_t kMessageBytes = NLMSG_ALIGN(sizeof(nlmsghdr)) + NLMSG_ALIGN(sizeof(nfgenmsg)) +
                                   NLA_ALIGN(NLA_HDRLEN + sizeof(nfqnl_msg_verdict_hdr));
  std::vector<uint8_t> out(size_t{64} * 1024);
  size_t used = 0;
  for (size_t i = 0; i <= ids.size(); ++i) {
    if (i == ids.size() || used + kMessageBytes > out.size()) {
      if (used > 0) {
        if (Status s = send_to_kernel(fd_.get(), out.data(), used); !s) return s;
      }
      used = 0;
      if (i == ids.size()) break;
    }
    nlmsghdr* nlh = start_message(out.data() + used, kVerdictType, 0, queue_);
    const nfqnl_msg_verdict_hdr verdict{htonl(verdict_code), htonl(ids[i])};
    mnl_attr_put(nlh, NFQA_VERDICT_HDR, sizeof(verdict), &verdict);
    used += NLMSG_ALIGN(nlh->nlmsg_len);
  }
  return {};
}

Result<ReleaseCounts> PacketHold::release_matching(std::span<const Flow> flows, bool all) {
  std::lock_guard guard(*mutex_);
  if (Status s = read_queued(); !s) return s.error();
  std::vector<uint32_t> ids = std::move(unnamed_);
  unnamed_.clear();
  auto take = [&](decltype(held_by_flow_)::iterator it) {
    for (const Held& held : it->second) ids.push_back(held.id);
    held_count_ -= it->second.size();
    return held_by_flow_.erase(it);
  };
  if (all) {
    for (auto it = held_by_flow_.begin(); it != held_by_flow_.end();) it = take(it);
  } else {
    for (const Flow& flow : flows) {
      Result<nft::Key> key = nft::key_of(flow);
      if (!key) continue;
      if (auto it = held_by_flow_.find(key_text(*key)); it != held_by_flow_.end()) take(it);
    }
  }
  // Not NF_ACCEPT: the lock's chain decides again (see the header).
  if (Status sent = send_verdicts(ids, NF_REPEAT); !sent) {
    unnamed_ = std::move(ids);  // whatever their flow: the next call releases them
    return sent.error();
  }
  released_total_ += ids.size();
  const size_t dropped = duplicates_.size();
  if (Status sent = send_verdicts(duplicates_, NF_DROP); !sent) return sent.error();
  duplicates_.clear();
  dropped_total_ += dropped;
  return ReleaseCounts{ids.size(), dropped, held_count_};
}

Result<ReleaseCounts> PacketHold::release(std::span<const Flow> flows) {
  return release_matching(flows, false);
}

Result<ReleaseCounts> PacketHold::release_all() { return release_matching({}, true); }

}  // namespace seamless::repair
