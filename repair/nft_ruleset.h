// Private to repair/: the nf_tables objects of the flow lock, built with libnftnl
// into a Batch (TCP_REPAIR.md "Flow lock" shows the ruleset and its expressions):
//
//   table inet <table> {
//     set flows4 { type ipv4_addr . inet_service . ipv4_addr . inet_service; flags timeout; }
//     set flows6 { type ipv6_addr . inet_service . ipv6_addr . inet_service; flags timeout; }
//     chain lock { type filter hook input priority -310; policy accept;
//       meta mark <mark> accept
//       ip  saddr . tcp sport . ip  daddr . tcp dport @flows4 drop
//       ip6 saddr . tcp sport . ip6 daddr . tcp dport @flows6 drop } }
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "base/result.h"
#include "repair/nft_netlink.h"

namespace seamless::repair::nft {

inline constexpr char kSet4[] = "flows4";
inline constexpr char kSet6[] = "flows6";
inline constexpr char kChain[] = "lock";
// Before conntrack (-200), so a dropped segment never touches its state.
inline constexpr int32_t kChainPriority = -310;

// A set element key: saddr . sport . daddr . dport, every field padded to 4 bytes,
// network byte order; 16 bytes for flows4, 40 for flows6.
inline constexpr size_t kKeyBytes4 = 16;
inline constexpr size_t kKeyBytes6 = 40;
struct Key {
  std::array<uint8_t, kKeyBytes6> bytes{};
  uint8_t len = 0;
  size_t item = 0;  // the caller's index, named in errors
};

// Creates what is missing of table, sets and chain, and rewrites the chain's rules.
// Existing set elements are kept: nothing here touches them.
Status append_ruleset(Batch& batch, const std::string& table, uint32_t mark);

enum class ElementOp {
  kAdd,     // new elements with a timeout; an element already present fails (EEXIST)
  kEnsure,  // elements without timeout; present ones are left as they are
  kDelete,  // an absent element fails (ENOENT)
};
// Appends as many messages as the keys need (each below kMaxMessageBytes).
Status append_elements(Batch& batch, const std::string& table, const char* set,
                       std::span<const Key> keys, ElementOp op,
                       std::chrono::milliseconds timeout = {});

Status append_delete_table(Batch& batch, const std::string& table);

// Number of live (not expired) elements of a set, by a dump.
Result<size_t> count_elements(Socket& socket, const std::string& table, const char* set);

}  // namespace seamless::repair::nft
