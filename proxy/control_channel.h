// ControlChannel: the worker <-> keeper link of DESIGN §2, one end of a SOCK_SEQPACKET
// socketpair. One message per packet: a fixed header, an optional pair record (the
// pair's metadata as repair/handoff_codec encodes it, never socket images or
// payload), and up to two fds by SCM_RIGHTS.
//
// Worker -> keeper, in the order things happen to a pair:
//   kBackendConnected id, record, backend fd   the connect completed
//   kPairClosed      id                        finished or aborted: drop the duplicates
//   kPairRecord      id, record                the latest record (sent while restoring)
//   kPairRecords     records                   the latest records of many pairs (sent
//                                              while quiescing: one message per batch)
//   kQuiesced                                  every kPairRecord is sent; exiting 0
//   kRestored        id, record, client (+backend) fd, still in repair mode (§4 step 7)
//   kSync                                      asks for kAck once all of the above applied
//   kReady           text                      serving (after any restore); text = summary
//   kRestoreFailed   text                      the handoff file could not be read at all
// Keeper -> worker:
//   kClientAccepted  id, record, client fd     the keeper accepted it (and holds it): serve
//                                              it, or answer kPairClosed to turn it away
//   kQuiesce / kDrain                          stop for a handoff / for SIGTERM
//   kAdoptBatch      records, fds              live pairs for a new worker, each record
//                                              owning the next record_fds[i] fds
//   kAdoptEnd        text                      no more kAdoptBatch; restore the handoff
//                                              file `text` names (if any), then serve
//   kAck                                       answers kSync
//
// kAdopt (id, record, fds: one pair) is not sent on the channel: it is the entry of the
// kept-sockets memfd (kept_sockets.h) that HeldPairs::apply takes after an exec.
//
// Receiving: MSG_CMSG_CLOEXEC, and a truncated packet or control block (MSG_TRUNC,
// MSG_CTRUNC) is an error, never a silently dropped fd. Sending always uses
// MSG_NOSIGNAL; whether it blocks follows the fd's O_NONBLOCK.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"
#include "repair/pair_record.h"

namespace seamless::proxy {

enum class MessageType : uint8_t {
  kClientAccepted = 1,
  kBackendConnected = 2,
  kPairClosed = 3,
  kPairRecord = 4,
  kQuiesced = 5,
  kRestored = 6,
  kSync = 7,
  kReady = 8,
  kRestoreFailed = 9,
  kStarted = 10,  // the worker's loop is about to run
  kPairRecords = 11,
  kQuiesce = 20,
  kDrain = 21,
  kAdopt = 22,
  kAdoptEnd = 23,
  kAck = 24,
  kAdoptBatch = 25,
};

const char* to_string(MessageType type);

struct Message {
  MessageType type = MessageType::kSync;
  uint64_t pair_id = 0;
  std::optional<repair::PairRecord> record;  // metadata only: images and payload dropped
  std::vector<repair::PairRecord> records;   // kPairRecords, kAdoptBatch: likewise
  std::vector<uint8_t> record_fds;           // kAdoptBatch: how many of `fds` each record owns
  std::string text;                          // kReady / kRestoreFailed / kAdoptEnd
  std::vector<UniqueFd> fds;                 // received fds (sending takes borrowed ones)
};

inline Message make_message(MessageType type, uint64_t pair_id = 0,
                            std::optional<repair::PairRecord> record = std::nullopt,
                            std::string text = {}) {
  Message m;
  m.type = type;
  m.pair_id = pair_id;
  m.record = std::move(record);
  m.text = std::move(text);
  return m;
}

// A record without images is a few hundred bytes; this bounds a hostile or broken peer.
inline constexpr size_t kMaxMessageBytes = 64 * 1024;
// Records in one kPairRecords or kAdoptBatch: well inside kMaxMessageBytes (a record's
// strings are a service name, a backend address and at most one PROXY header).
inline constexpr size_t kMaxBatchRecords = 64;
// A pair has at most two sockets; a batch's stay below the kernel's SCM_MAX_FD (253).
inline constexpr size_t kMaxFds = 2 * kMaxBatchRecords;

// The record as the channel carries it: no socket images, no unread payload.
repair::PairRecord metadata_only(repair::PairRecord record);

// Builds the packet; fails on a record the codec refuses or a message too large.
Result<std::string> encode_message(const Message& message, size_t fd_count);
// Parses a packet's bytes (the fds come separately).
Result<Message> decode_message(std::string_view packet);

class ControlChannel {
 public:
  // A connected SOCK_SEQPACKET pair, both ends close-on-exec.
  static Result<std::pair<ControlChannel, ControlChannel>> make_pair();

  ControlChannel() = default;
  explicit ControlChannel(UniqueFd fd) : fd_(std::move(fd)) {}

  // `fds` are borrowed: the receiver gets duplicates, the sender keeps its own. A full
  // channel is waited on (bounded: a hung peer fails the send with ETIMEDOUT).
  Status send(const Message& message, std::span<const int> fds = {});
  // Never waits: a full channel is an error with code EAGAIN (nothing was sent).
  Status try_send(const Message& message, std::span<const int> fds = {});
  // nullopt on EOF (the peer closed its end). Without `wait`, an empty channel is an
  // error with code EAGAIN.
  Result<std::optional<Message>> receive(bool wait = true);

  int fd() const { return fd_.get(); }
  bool valid() const { return fd_.valid(); }
  UniqueFd release() { return UniqueFd(fd_.release()); }

 private:
  Status send_packet(const Message& message, std::span<const int> fds, bool wait);

  UniqueFd fd_;
  std::string buffer_;  // receive buffer, kMaxMessageBytes once used
};

}  // namespace seamless::proxy
