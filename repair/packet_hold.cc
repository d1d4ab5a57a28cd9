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

#include <cerrno>
#include <charconv>
#include <optional>
#include <string>
#include <unordered_set>
#include <utility>

#include "repair/nft_ruleset.h"

namespace seamless::repair {

namespace {

struct QueuedPacket {
  uint32_t id = 0;
  std::optional<nft::Key> key;  // none: not a TCP packet we can name, released at once
};

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
  return QueuedPacket{ntohl(header->packet_id), nft::key_of_packet(payload)};
}

}  // namespace

struct PacketHold::Held : QueuedPacket {};

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
      if (std::optional<QueuedPacket> packet = parse_packet(nlh)) held_.push_back({*packet});
    }
  }
}

Status PacketHold::send_verdicts(const std::vector<uint32_t>& ids) {
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
    // Not NF_ACCEPT: the lock's chain decides again (see the header).
    const nfqnl_msg_verdict_hdr verdict{htonl(NF_REPEAT), htonl(ids[i])};
    mnl_attr_put(nlh, NFQA_VERDICT_HDR, sizeof(verdict), &verdict);
    used += NLMSG_ALIGN(nlh->nlmsg_len);
  }
  return {};
}

Result<ReleaseCounts> PacketHold::release_matching(std::span<const Flow> flows, bool all) {
  std::lock_guard guard(*mutex_);
  if (Status s = read_queued(); !s) return s.error();
  std::unordered_set<std::string> wanted;
  for (const Flow& flow : flows) {
    if (Result<nft::Key> key = nft::key_of(flow)) wanted.insert(key_text(*key));
  }
  std::vector<uint32_t> ids;
  std::vector<Held> kept;
  for (const Held& held : held_) {
    if (all || !held.key || wanted.contains(key_text(*held.key))) {
      ids.push_back(held.id);
    } else {
      kept.push_back(held);
    }
  }
  Status sent = send_verdicts(ids);
  if (!sent) return sent.error();
  held_ = std::move(kept);
  released_total_ += ids.size();
  return ReleaseCounts{ids.size(), held_.size()};
}

Result<ReleaseCounts> PacketHold::release(std::span<const Flow> flows) {
  return release_matching(flows, false);
}

Result<ReleaseCounts> PacketHold::release_all() { return release_matching({}, true); }

}  // namespace seamless::repair
