// PacketHold: the other end of a flow lock that holds packets instead of dropping
// them (FlowLockOptions::hold_queue). It binds an NFQUEUE number; the kernel queues
// every packet of a locked flow to it and keeps the packet until a verdict. Once the
// flow is unlocked and its socket restored, release() gives the verdict NF_REPEAT:
// the packet runs through the lock's chain again, passes it, and reaches the
// restored socket. A dropped packet would be sent again only when its sender's
// retransmission timer or tail-loss probe fires (200 ms and more: the stall the
// handoff exists to avoid).
//
// Why REPEAT and not ACCEPT: a packet whose flow is still locked is simply queued
// again (with a new id), so a release can never let a packet through to a socket in
// the middle of its handoff, whoever calls it and whenever.
//
// Held ids exist only in the kernel and in this object: an object that goes away
// (or a process about to exec) with ids it read but did not release strands those
// packets until the socket closes. release_all() first.
//
// The socket is shared by the keeper and its workers (the queue is bound to the
// socket, not to a process); only the one handing sockets over reads from it. If
// nobody has it open, the kernel drops the queued packets: the lock then works as a
// plain drop lock, and the flow lock's timeout still bounds everything.
//
// Thread-safe: the restore's threads release their own batches through one hold.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"
#include "repair/flow_lock.h"

namespace seamless::repair {

// How a keeper hands the hold to the image it execs and to its workers: "<fd>:<queue>"
// (describe_for_child / parse_child_description).
inline constexpr char kPacketHoldEnvVar[] = "SEAMLESS_PACKET_HOLD";

struct PacketHoldOptions {
  // Queue numbers tried in turn until one is free (queues are per network namespace;
  // another program, or another instance of ours, may have bound one).
  uint16_t first_queue = 0x5ea1;
  uint16_t queues_to_try = 64;
  // Packets the kernel keeps for us at most; beyond it, they are dropped.
  uint32_t max_held = 1 << 16;
  bool keep_on_exec = false;  // as FlowLockOptions::keep_on_exec
};

struct ReleaseCounts {
  size_t released = 0;  // packets let through
  size_t dropped = 0;   // retransmissions of a segment held already
  size_t kept = 0;      // read, of flows not in the call: still held
};

class PacketHold {
 public:
  // Opens a netfilter netlink socket and binds the first free queue. Needs
  // CAP_NET_ADMIN; fails on a kernel without nfnetlink_queue.
  static Result<PacketHold> open(PacketHoldOptions options = {});
  // A bound socket inherited across exec or from the keeper, and its queue number.
  static Result<PacketHold> adopt(UniqueFd fd, uint16_t queue);

  PacketHold(PacketHold&&) noexcept;
  PacketHold& operator=(PacketHold&&) noexcept;
  ~PacketHold();

  // Reads what the kernel has queued since, then releases the packets of `flows`
  // (read now or kept earlier); others stay held.
  Result<ReleaseCounts> release(std::span<const Flow> flows);
  // Reads what is queued and releases every packet.
  Result<ReleaseCounts> release_all();

  int fd() const { return fd_.get(); }
  uint16_t queue() const { return queue_; }
  // Packets let through, and duplicates dropped, since the hold was opened or adopted.
  size_t released_total() const { return released_total_; }
  size_t dropped_total() const { return dropped_total_; }
  // "<fd>:<queue>" for kPacketHoldEnvVar, and its inverse.
  std::string describe_for_child() const;
  static Result<std::pair<int, uint16_t>> parse_child_description(const std::string& text);

 private:
  PacketHold(UniqueFd fd, uint16_t queue);
  Status read_queued();
  Status send_verdicts(const std::vector<uint32_t>& ids, uint32_t verdict);
  Result<ReleaseCounts> release_matching(std::span<const Flow> flows, bool all);

  UniqueFd fd_;
  uint16_t queue_ = 0;
  // The ids read and not yet released, by the key bytes of their flow (nft::Key):
  // a batch's release looks up its own flows, whatever else is held.
  // A peer's retransmission of a segment already held is dropped at once: at 5,000
  // connections a lock of a second or more holds 2 to 3 copies of every segment
  // (RTO 200, 400, 800 ms), and each copy released costs the restore a pass through
  // TCP's receive path and a duplicate ACK.
  struct Held {
    uint32_t id = 0;
    uint32_t seq = 0, ack = 0, payload = 0;
    uint8_t flags = 0;
  };
  std::unordered_map<std::string, std::vector<Held>> held_by_flow_;
  size_t held_count_ = 0;
  std::vector<uint32_t> unnamed_;     // not TCP over IPv4/IPv6: released on the next call
  std::vector<uint32_t> duplicates_;  // dropped on the next call
  std::vector<uint8_t> buffer_;
  size_t released_total_ = 0;
  size_t dropped_total_ = 0;
  std::unique_ptr<std::mutex> mutex_;
};

}  // namespace seamless::repair
