// Private to repair/: the nf_tables objects of the flow lock, built with libnftnl
// into a Batch (TCP_REPAIR.md "Flow lock" shows the ruleset and its expressions):
//
//   table inet <table> {
//     set flows4 { type ipv4_addr . inet_service . ipv4_addr . inet_service; flags timeout; }
//     set flows6 { type ipv6_addr . inet_service . ipv6_addr . inet_service; flags timeout; }
//     chain lock { type filter hook prerouting priority dstnat + 10; policy accept;
//       meta mark <mark> accept
//       ip  saddr . tcp sport . ip  daddr . tcp dport @flows4 drop
//       ip6 saddr . tcp sport . ip6 daddr . tcp dport @flows6 drop } }
//
// Given a queue number, also `set holding { type inet_proto; }` and, before each drop
// rule, the same match followed by `meta l4proto @holding` and the xtables NFQUEUE
// target (revision 3, no bypass) through nft_compat: this kernel has no nft `queue`
// expression. While `holding` holds tcp, locked flows' packets are queued and wait
// for a verdict (repair/packet_hold.h; with no program bound to the queue the kernel
// drops them); otherwise they are dropped. One element switches all flows, in the
// lock's own transaction.
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>

#include "base/result.h"
#include "repair/flow_lock.h"
#include "repair/nft_netlink.h"

namespace seamless::repair::nft {

inline constexpr char kSet4[] = "flows4";
inline constexpr char kSet6[] = "flows6";
inline constexpr char kChain[] = "lock";
inline constexpr char kHoldingSet[] = "holding";
// Prerouting, so that a held packet has not been early-demultiplexed yet: on the input
// hook it would carry a reference to the socket it met first, the one the handoff
// closes, and meet that one again when released (a RST). After destination NAT
// (-100), so the tuple is the one our sockets see, as on the input hook.
inline constexpr int32_t kChainPriority = -90;

// A set element key: saddr . sport . daddr . dport, every field padded to 4 bytes,
// network byte order; 16 bytes for flows4, 40 for flows6.
inline constexpr size_t kKeyBytes4 = 16;
inline constexpr size_t kKeyBytes6 = 40;
struct Key {
  std::array<uint8_t, kKeyBytes6> bytes{};
  uint8_t len = 0;
  size_t item = 0;  // the caller's index, named in errors
};
// The key of a flow as its peer's packets carry it (peer = source); EINVAL when the
// two ends' wire families differ. The flows4 key when wire_family is AF_INET.
Result<Key> key_of(const Flow& flow, size_t item = 0);

// Creates what is missing of table, sets and chain, and rewrites the chain's rules.
// Existing set elements are kept: nothing here touches them.
// With hold_queue, matching packets go to that NFQUEUE number instead of being dropped.
Status append_ruleset(Batch& batch, const std::string& table, uint32_t mark,
                      std::optional<uint16_t> hold_queue);

enum class ElementOp {
  kAdd,     // new elements with a timeout; an element already present fails (EEXIST)
  kEnsure,  // elements without timeout; present ones are left as they are
  kDelete,  // an absent element fails (ENOENT)
};
// Appends as many messages as the keys need (each below kMaxMessageBytes).
Status append_elements(Batch& batch, const std::string& table, const char* set,
                       std::span<const Key> keys, ElementOp op,
                       std::chrono::milliseconds timeout = {});

// Deletes every element of the set (a DELSETELEM without a list of elements).
Status append_flush_set(Batch& batch, const std::string& table, const char* set);

Status append_delete_table(Batch& batch, const std::string& table);

// Puts tcp into the holding set (present: left as is), or takes it out (absent: fine).
Status append_holding_switch(Batch& batch, const std::string& table, bool hold);

// Number of live (not expired) elements of a set, by a dump.
Result<size_t> count_elements(Socket& socket, const std::string& table, const char* set);

}  // namespace seamless::repair::nft
