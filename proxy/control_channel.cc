#include "proxy/control_channel.h"

#include <poll.h>
#include <sys/socket.h>

#include <cstring>

#include "repair/handoff_codec.h"

namespace seamless::proxy {
namespace {

// Packet layout (host byte order: both ends are the same binary on the same host, or
// a binary and its successor of the same build family; the version byte guards it).
struct Header {
  uint16_t magic;
  uint8_t version;
  uint8_t type;
  uint8_t fd_count;
  uint8_t has_record;
  uint16_t reserved;
  uint64_t pair_id;
  uint32_t record_len;
  uint32_t text_len;
};
static_assert(sizeof(Header) == 24);

constexpr uint16_t kMagic = 0x5343;  // "SC"
constexpr uint8_t kVersion = 1;
constexpr int kSendTimeoutMs = 5000;

bool known_type(uint8_t t) {
  return (t >= static_cast<uint8_t>(MessageType::kClientAccepted) &&
          t <= static_cast<uint8_t>(MessageType::kPairRecords)) ||
         (t >= static_cast<uint8_t>(MessageType::kQuiesce) &&
          t <= static_cast<uint8_t>(MessageType::kAdoptBatch));
}

}  // namespace

const char* to_string(MessageType type) {
  switch (type) {
    case MessageType::kClientAccepted: return "client-accepted";
    case MessageType::kBackendConnected: return "backend-connected";
    case MessageType::kPairClosed: return "pair-closed";
    case MessageType::kPairRecord: return "pair-record";
    case MessageType::kQuiesced: return "quiesced";
    case MessageType::kRestored: return "restored";
    case MessageType::kSync: return "sync";
    case MessageType::kReady: return "ready";
    case MessageType::kRestoreFailed: return "restore-failed";
    case MessageType::kStarted: return "started";
    case MessageType::kQuiesce: return "quiesce";
    case MessageType::kDrain: return "drain";
    case MessageType::kAdopt: return "adopt";
    case MessageType::kPairRecords:
      return "pair-records";
    case MessageType::kAdoptEnd: return "adopt-end";
    case MessageType::kAck: return "ack";
    case MessageType::kAdoptBatch:
      return "adopt-batch";
  }
  return "unknown";
}

repair::PairRecord metadata_only(repair::PairRecord record) {
  record.client.reset();
  record.backend_socket.reset();
  record.client_unread.clear();
  record.backend_unread.clear();
  return record;
}

Result<std::string> encode_message(const Message& message, size_t fd_count) {
  if (fd_count > kMaxFds) return Error::logic("control message: too many fds");
  std::string record;
  if (message.record) {
    Result<std::string> encoded =
        repair::handoff::encode_record(metadata_only(*message.record));
    if (!encoded) return encoded.error().context("control message");
    record = std::move(*encoded);
  }
  // A batch: each record behind its 32-bit length and its 8-bit fd count, where a
  // single record would be.
  if (message.records.size() > kMaxBatchRecords) {
    return Error::logic("control message: too many records");
  }
  const bool owns_fds = message.type == MessageType::kAdoptBatch;
  if (owns_fds ? message.record_fds.size() != message.records.size()
               : !message.record_fds.empty()) {
    return Error::logic("control message: fd counts do not match the records");
  }
  size_t counted_fds = 0;
  for (size_t i = 0; i < message.records.size(); ++i) {
    Result<std::string> encoded = repair::handoff::encode_record(metadata_only(message.records[i]));
    if (!encoded) return encoded.error().context("control message");
    const auto length = static_cast<uint32_t>(encoded->size());
    const uint8_t fds = owns_fds ? message.record_fds[i] : 0;
    if (owns_fds && (fds == 0 || fds > 2)) {
      return Error::logic("control message: a pair owns 1 or 2 fds");
    }
    counted_fds += fds;
    record.append(reinterpret_cast<const char*>(&length), sizeof(length));
    record.push_back(static_cast<char>(fds));
    record += *encoded;
  }
  if (owns_fds && counted_fds != fd_count) {
    return Error::logic("control message: the records own " + std::to_string(counted_fds) +
                        " fds, the message carries " + std::to_string(fd_count));
  }
  Header h{};
  h.magic = kMagic;
  h.version = kVersion;
  h.type = static_cast<uint8_t>(message.type);
  h.fd_count = static_cast<uint8_t>(fd_count);
  h.has_record = message.record ? 1 : 0;
  h.pair_id = message.pair_id;
  h.record_len = static_cast<uint32_t>(record.size());
  h.text_len = static_cast<uint32_t>(message.text.size());
  const size_t total = sizeof(h) + record.size() + message.text.size();
  if (total > kMaxMessageBytes) {
    return Error::logic("control message: " + std::to_string(total) + " bytes is too large");
  }
  std::string packet(reinterpret_cast<const char*>(&h), sizeof(h));
  packet += record;
  packet += message.text;
  return packet;
}

Result<Message> decode_message(std::string_view packet) {
  Header h{};
  if (packet.size() < sizeof(h)) return Error::logic("control message: short packet");
  std::memcpy(&h, packet.data(), sizeof(h));
  if (h.magic != kMagic || h.version != kVersion) {
    return Error::logic("control message: bad magic or version");
  }
  if (!known_type(h.type)) {
    return Error::logic("control message: unknown type " + std::to_string(h.type));
  }
  if (sizeof(h) + uint64_t{h.record_len} + h.text_len != packet.size()) {
    return Error::logic("control message: lengths do not match the packet");
  }
  Message m;
  m.type = static_cast<MessageType>(h.type);
  m.pair_id = h.pair_id;
  std::string_view record = packet.substr(sizeof(h), h.record_len);
  if (m.type == MessageType::kPairRecords || m.type == MessageType::kAdoptBatch) {
    size_t counted_fds = 0;
    while (!record.empty()) {
      uint32_t length = 0;
      if (record.size() < sizeof(length) + 1) return Error::logic("control message: short record");
      std::memcpy(&length, record.data(), sizeof(length));
      const auto fds = static_cast<uint8_t>(record[sizeof(length)]);
      record.remove_prefix(sizeof(length) + 1);
      if (length > record.size() || m.records.size() == kMaxBatchRecords) {
        return Error::logic("control message: bad record batch");
      }
      if (m.type == MessageType::kAdoptBatch) {
        if (fds == 0 || fds > 2) return Error::logic("control message: a pair owns 1 or 2 fds");
        m.record_fds.push_back(fds);
        counted_fds += fds;
      } else if (fds != 0) {
        return Error::logic("control message: a record without fds owns some");
      }
      Result<repair::handoff::DecodedRecord> decoded =
          repair::handoff::decode_record(record.substr(0, length));
      if (!decoded) return decoded.error().context("control message");
      if (decoded->data_len != 0) return Error::logic("control message: record carries payload");
      m.records.push_back(std::move(decoded->record));
      record.remove_prefix(length);
    }
    if (counted_fds != h.fd_count) {
      return Error::logic("control message: the records own " + std::to_string(counted_fds) +
                          " fds, the header says " + std::to_string(h.fd_count));
    }
  } else if (h.has_record != 0) {
    Result<repair::handoff::DecodedRecord> decoded = repair::handoff::decode_record(record);
    if (!decoded) return decoded.error().context("control message");
    if (decoded->data_len != 0) return Error::logic("control message: record carries payload");
    m.record = std::move(decoded->record);
  } else if (h.record_len != 0) {
    return Error::logic("control message: record bytes without a record");
  }
  m.text = std::string(packet.substr(sizeof(h) + h.record_len));
  return m;
}

Result<std::pair<ControlChannel, ControlChannel>> ControlChannel::make_pair() {
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds) != 0) {
    return Error::from_errno("control channel: socketpair");
  }
  return std::pair{ControlChannel(UniqueFd(fds[0])), ControlChannel(UniqueFd(fds[1]))};
}

Status ControlChannel::send(const Message& message, std::span<const int> fds) {
  return send_packet(message, fds, /*wait=*/true);
}

Status ControlChannel::try_send(const Message& message, std::span<const int> fds) {
  return send_packet(message, fds, /*wait=*/false);
}

Status ControlChannel::send_packet(const Message& message, std::span<const int> fds, bool wait) {
  Result<std::string> packet = encode_message(message, fds.size());
  if (!packet) return packet.error();
  iovec iov{packet->data(), packet->size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFds)] = {};
  if (!fds.empty()) {
    const size_t bytes = sizeof(int) * fds.size();
    msg.msg_control = control;
    msg.msg_controllen = CMSG_SPACE(bytes);
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(bytes);
    int* out = reinterpret_cast<int*>(CMSG_DATA(c));
    std::memcpy(out, fds.data(), bytes);
  }
  for (;;) {
    const ssize_t n = ::sendmsg(fd_.get(), &msg, MSG_NOSIGNAL | (wait ? 0 : MSG_DONTWAIT));
    if (n >= 0) return {};
    if (errno == EINTR) continue;
    // libuv made the fd non-blocking when it began to watch it, and a unix socket queues
    // only net.unix.max_dgram_qlen packets (10): wait for the peer to catch up, bounded,
    // so that a hung peer cannot hang us.
    if (errno == EAGAIN && wait) {
      pollfd p{fd_.get(), POLLOUT, 0};
      const int ready = ::poll(&p, 1, kSendTimeoutMs);
      if (ready > 0 || (ready < 0 && errno == EINTR)) continue;
      if (ready == 0) errno = ETIMEDOUT;
    }
    return Error::from_errno(std::string("control channel: send ") + to_string(message.type));
  }
}

Result<std::optional<Message>> ControlChannel::receive(bool wait) {
  buffer_.resize(kMaxMessageBytes);
  std::string& buffer = buffer_;
  iovec iov{buffer.data(), buffer.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFds)] = {};
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  ssize_t n;
  for (;;) {
    n = ::recvmsg(fd_.get(), &msg, MSG_CMSG_CLOEXEC | (wait ? 0 : MSG_DONTWAIT));
    if (n >= 0) break;
    if (errno == EINTR) continue;
    // An event loop watching the fd made it O_NONBLOCK: waiting is then up to us.
    if (errno != EAGAIN || !wait) break;
    pollfd p{fd_.get(), POLLIN, 0};
    if (::poll(&p, 1, -1) < 0 && errno != EINTR) break;
  }
  if (n < 0) return Error::from_errno("control channel: receive");
  // Own every fd that arrived before looking at anything else, so none can leak.
  std::vector<UniqueFd> fds;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    const size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    const int* in = reinterpret_cast<const int*>(CMSG_DATA(c));
    for (size_t i = 0; i < count; ++i) fds.emplace_back(in[i]);
  }
  if ((msg.msg_flags & MSG_CTRUNC) != 0) {
    return Error::logic("control channel: fds were dropped (MSG_CTRUNC; out of fds?)");
  }
  if ((msg.msg_flags & MSG_TRUNC) != 0) return Error::logic("control channel: packet truncated");
  if (n == 0 && fds.empty()) return std::optional<Message>{};
  Result<Message> message = decode_message(std::string_view(buffer.data(), size_t(n)));
  if (!message) return message.error();
  Header h{};
  std::memcpy(&h, buffer.data(), sizeof(h));
  if (h.fd_count != fds.size()) {
    return Error::logic(std::string("control channel: ") + to_string(message->type) + " carried " +
                        std::to_string(fds.size()) + " fds, expected " +
                        std::to_string(h.fd_count));
  }
  message->fds = std::move(fds);
  return std::optional<Message>(std::move(*message));
}

}  // namespace seamless::proxy
