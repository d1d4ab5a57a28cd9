// Backend choice for a new connection. Pure logic: no sockets, no clock, no libuv.
//
// The caller describes each backend of a service as a Candidate, in config order, and
// marks as not eligible the ones that are down or already failed for this connection
// (so a retry after a failed connect picks the next one). pick() returns an index, or
// nullopt when no candidate is eligible.
//
//   round_robin  smooth weighted round robin (as nginx): over any window of sum(weights)
//                picks each backend gets its weight's share, interleaved, not in bursts.
//   least_conn   fewest active connections relative to weight (active / weight); ties
//                go round the backends so that an idle service still spreads load.
//   source_hash  weighted rendezvous hashing of the client address: the same client goes
//                to the same backend while it is eligible, and when one goes down only
//                its own clients move (the others keep their backend).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "config/config.h"

namespace seamless::proxy {

struct Candidate {
  uint32_t weight = 1;    // 1-256 from the config
  bool eligible = true;   // healthy and not yet tried for this connection
  uint32_t active = 0;    // connections currently assigned (least_conn)
  uint64_t identity = 0;  // stable hash of the backend's address (source_hash)
};

class Balancer {
 public:
  Balancer(config::Balance policy, size_t backend_count);

  // `client_hash` only matters for source_hash (see hash_bytes).
  std::optional<size_t> pick(std::span<const Candidate> candidates, uint64_t client_hash);

  config::Balance policy() const { return policy_; }

 private:
  std::optional<size_t> pick_round_robin(std::span<const Candidate> candidates);
  std::optional<size_t> pick_least_conn(std::span<const Candidate> candidates);

  config::Balance policy_;
  std::vector<int64_t> current_;  // smooth round robin: each backend's running weight
  size_t cursor_ = 0;             // least_conn: where the search for ties starts
};

// A stable 64-bit hash (FNV-1a, then a finalizer that spreads the bits): the same in
// every process and binary version, so a restarted worker keeps the client mapping.
uint64_t hash_bytes(std::span<const uint8_t> bytes);

// Weighted rendezvous choice among eligible candidates; nullopt when none is.
std::optional<size_t> pick_source_hash(std::span<const Candidate> candidates, uint64_t client_hash);

}  // namespace seamless::proxy
