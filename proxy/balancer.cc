#include "proxy/balancer.h"

#include <cmath>

namespace seamless::proxy {
namespace {

uint64_t mix(uint64_t x) {  // splitmix64's finalizer
  x ^= x >> 30;
  x *= 0xBF58476D1CE4E5B9ull;
  x ^= x >> 27;
  x *= 0x94D049BB133111EBull;
  x ^= x >> 31;
  return x;
}

// (0, 1], from the top 53 bits: never 0, so log() below stays finite.
double unit_interval(uint64_t x) {
  return (static_cast<double>(x >> 11) + 1.0) / 9007199254740992.0;  // 2^53
}

}  // namespace

Balancer::Balancer(config::Balance policy, size_t backend_count)
    : policy_(policy), current_(backend_count, 0) {}

std::optional<size_t> Balancer::pick(std::span<const Candidate> candidates, uint64_t client_hash) {
  if (current_.size() != candidates.size()) current_.assign(candidates.size(), 0);
  switch (policy_) {
    case config::Balance::kRoundRobin:
      return pick_round_robin(candidates);
    case config::Balance::kLeastConn:
      return pick_least_conn(candidates);
    case config::Balance::kSourceHash:
      return pick_source_hash(candidates, client_hash);
  }
  return std::nullopt;
}

std::optional<size_t> Balancer::pick_round_robin(std::span<const Candidate> candidates) {
  std::optional<size_t> best;
  int64_t total = 0;
  for (size_t i = 0; i < candidates.size(); ++i) {
    if (!candidates[i].eligible) continue;
    current_[i] += candidates[i].weight;
    total += candidates[i].weight;
    if (!best || current_[i] > current_[*best]) best = i;
  }
  if (best) current_[*best] -= total;
  return best;
}

std::optional<size_t> Balancer::pick_least_conn(std::span<const Candidate> candidates) {
  std::optional<size_t> best;
  const size_t n = candidates.size();
  for (size_t step = 0; step < n; ++step) {
    const size_t i = (cursor_ + step) % n;
    const Candidate& c = candidates[i];
    if (!c.eligible) continue;
    // active_i / weight_i < active_b / weight_b, without division.
    if (!best || uint64_t{c.active} * candidates[*best].weight <
                     uint64_t{candidates[*best].active} * c.weight) {
      best = i;
    }
  }
  if (best) cursor_ = (*best + 1) % n;
  return best;
}

std::optional<size_t> pick_source_hash(std::span<const Candidate> candidates,
                                       uint64_t client_hash) {
  std::optional<size_t> best;
  double best_score = 0;
  for (size_t i = 0; i < candidates.size(); ++i) {
    if (!candidates[i].eligible) continue;
    // Weighted rendezvous: score = -weight / ln(u), u uniform in (0, 1] per
    // (client, backend). The highest score wins; P(win) is proportional to weight.
    const double u = unit_interval(mix(client_hash ^ mix(candidates[i].identity)));
    const double score =
        u >= 1.0 ? INFINITY : -static_cast<double>(candidates[i].weight) / std::log(u);
    if (!best || score > best_score) {
      best = i;
      best_score = score;
    }
  }
  return best;
}

uint64_t hash_bytes(std::span<const uint8_t> bytes) {
  uint64_t h = 0xCBF29CE484222325ull;  // FNV-1a offset basis
  for (uint8_t b : bytes) {
    h ^= b;
    h *= 0x100000001B3ull;  // FNV prime
  }
  return mix(h);
}

}  // namespace seamless::proxy
