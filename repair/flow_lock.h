// FlowLock: keeps the peer's packets of chosen TCP flows from reaching any socket
// while their sockets are dumped and restored (DESIGN.md §6, TCP_REPAIR.md "Flow
// lock"). It owns `table inet <table>`: sets flows4/flows6 of
// saddr . sport . daddr . dport keys with per-element timeouts, and a chain on the
// prerouting hook (nft_ruleset.h says why there) that accepts packets carrying
// `mark` (our injected FIN/ACKs) and holds packets whose tuple is in a set: queued
// to a PacketHold (packet_hold.h) when FlowLockOptions::hold_queue is set, so they
// reach the restored socket right after the unlock, else dropped (the peer sends
// them again on its own timers).
//
// Protocol:
//   start:   open(table) creates whatever is missing and rewrites the chain's rules;
//            it never removes set elements. A keeper restarting mid-handoff sees
//            count_locked() > 0 and resumes instead of starting over.
//   handoff: lock(flows, t) -> dump_socket -> close old -> restore_socket ->
//            finish_restore -> unlock(flows) -> probe_peer. refresh(flows, t) renews
//            the deadline of a handoff that runs long. The timeout is the dead-man
//            switch: a keeper that dies mid-handoff stops dropping after t, and the
//            peer's retransmissions then meet whatever socket exists (or a RST).
//   exit:    destroy() on a clean exit (never while a handoff file exists).
//
// Each of lock, unlock and refresh is ONE nf_tables transaction however many flows
// it carries (thousands are fine): it applies to all flows or to none, and a
// failure names the operation, the table and, where the kernel says which, the flow.
// A Flow is keyed as the peer's packets carry it: (saddr, sport) = peer,
// (daddr, dport) = local; its set follows the address, not the socket, so a
// ::ffff:a.b.c.d client of a dual-stack listener goes to flows4 as a.b.c.d.
//
// Needs CAP_NET_ADMIN in the network namespace that was current at open(); the
// table lives in that namespace. One owner, one thread at a time. The table is not
// tied to the socket (no NFT_TABLE_F_OWNER): after exec, open() again or adopt()
// the inherited socket; both keep the locked flows.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>

#include "base/result.h"
#include "base/unique_fd.h"
#include "repair/endpoint.h"

namespace seamless::repair {

namespace nft {
class Socket;
}

struct Flow {
  Endpoint peer;   // the remote end: source of the packets we drop
  Endpoint local;  // our socket's address: their destination

  bool operator==(const Flow&) const = default;
  auto operator<=>(const Flow&) const = default;
};

// "198.18.0.1:5000 -> 198.18.0.2:80"
std::string to_string(const Flow& flow);

inline constexpr uint32_t kFlowLockMark = 0x5ea1;

struct FlowLockOptions {
  uint32_t mark = kFlowLockMark;  // packets with this skb mark pass a lock
  // The netlink socket is close-on-exec unless this is set; set it to hand the
  // socket to an exec'd successor (which then calls adopt()).
  bool keep_on_exec = false;
  // Off: trust that the table exists (a worker of the keeper that made it, or a keeper
  // right after its exec) and only open the socket. Making sure flushes and re-adds
  // the rules, a transaction that waits for an RCU grace period: measured 0.5 to 20 ms
  // here, all of it inside the clients' stall when it happens during a handoff.
  bool ensure_ruleset = true;
  // The PacketHold's queue for the rules to send locked flows' packets to; none: drop
  // them. The rules are only written when making sure of the ruleset; lock() needs
  // it set to switch between holding and dropping.
  std::optional<uint16_t> hold_queue;
  // With hold_queue: a lock() of at most this many flows holds their packets, a larger
  // one drops them. Holding saves each peer a retransmission timeout (200 ms and
  // more) when the lock is shorter than that. With many flows, the packets released
  // all at once make every socket readable at once and the worker serves them in turn,
  // while dropped ones come back spread over the peers' own timers. Upgrade bench,
  // probe stall / bulk latency max holding against dropping: 1,000 connections
  // 53-64 / 48-60 ms against 95 / 224 ms; 2,000: 116-120 / 113-119 against 130 / 225;
  // 3,000: 178 / 177 against 148 / 223; 5,000: 261-269 against 213-245 ms (probes).
  // 5,000 flows is 2,500 pairs.
  size_t hold_up_to_flows = 5000;
};

class PacketHold;

// What an unlock releases from an attached PacketHold.
enum class ReleaseOnUnlock {
  kTheirPackets,  // only the unlocked flows' (a restore unlocking batch by batch)
  kAllPackets,    // everything held; packets of flows still locked are queued again
};

class FlowLock {
 public:
  // Opens a netfilter netlink socket and makes sure the table, its sets and its
  // chain exist with the rules above, in one transaction. Idempotent; keeps the
  // elements of an existing table. A same-named table with different sets or a
  // different chain hook is an error, not silently replaced. (Unless
  // options.ensure_ruleset is off: then a missing table shows in the first lock or
  // unlock.)
  static Result<FlowLock> open(std::string table, FlowLockOptions options = {});
  // Like open() on a netlink socket inherited across exec (see keep_on_exec).
  static Result<FlowLock> adopt(UniqueFd netlink_fd, std::string table,
                                FlowLockOptions options = {});

  FlowLock(FlowLock&&) noexcept;
  FlowLock& operator=(FlowLock&&) noexcept;
  ~FlowLock();  // closes the socket; the table and its locks stay

  // Holds back the flows' incoming packets for `timeout` (> 0) or until unlock: queued
  // or dropped, see hold_up_to_flows; the switch applies to every locked flow. A flow
  // that is already locked fails the whole call with EEXIST and names the flow:
  // use refresh() to extend a lock.
  Status lock(std::span<const Flow> flows, std::chrono::milliseconds timeout);
  // Like lock(), for flows joining a lock already taken: holding or dropping stays as
  // that lock() switched it, whatever the number of flows here.
  Status lock_more(std::span<const Flow> flows, std::chrono::milliseconds timeout);
  // Lets the flows' packets through again. A flow that is not locked (never was,
  // or its lock expired) is fine and does not disturb the others: each element is
  // first added without timeout, then deleted, in the same transaction, which
  // works on every kernel (DELSETELEM alone fails the batch with ENOENT).
  Status unlock(std::span<const Flow> flows);
  // Unlocks every flow in one transaction that names none (so it costs the same for
  // 10,000 flows as for one), and releases everything an attached PacketHold holds.
  Status unlock_all();
  // From now on each successful unlock() releases packets from `hold` (borrowed; it
  // must outlive this lock or be detached with nullptr). destroy() releases all.
  void release_on_unlock(PacketHold* hold, ReleaseOnUnlock what);
  // Locks the flows with a fresh `timeout`, whether or not they still were locked.
  // In one transaction: ensure present, delete, add with the new timeout.
  Status refresh(std::span<const Flow> flows, std::chrono::milliseconds timeout);
  // Live elements in flows4 + flows6: the seamless_locked_flows gauge, and how a
  // restarting keeper sees a handoff in progress.
  Result<size_t> count_locked();
  // Removes the table with every lock in it. Succeeds if it is already gone.
  Status destroy();

  // The netfilter netlink socket (borrowed).
  int netlink_fd() const;
  const std::string& table() const { return table_; }
  uint32_t mark() const { return mark_; }

 private:
  FlowLock(std::string table, uint32_t mark, std::unique_ptr<nft::Socket> socket);
  static Result<FlowLock> start(std::string table, FlowLockOptions options,
                                Result<nft::Socket> socket);
  Status ensure_ruleset();
  Status release_held(std::span<const Flow> flows);
  Error failure(const char* op, const Error& cause) const;

  std::string table_;
  uint32_t mark_;
  std::unique_ptr<nft::Socket> socket_;  // pimpl: libmnl stays out of this header
  std::optional<uint16_t> hold_queue_;
  size_t hold_up_to_flows_ = 0;
  PacketHold* hold_ = nullptr;
  ReleaseOnUnlock release_ = ReleaseOnUnlock::kAllPackets;
};

}  // namespace seamless::repair
