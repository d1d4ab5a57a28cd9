#include "proxy/balancer.h"

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

namespace seamless::proxy {
namespace {

using config::Balance;

std::vector<Candidate> weighted(std::vector<uint32_t> weights) {
  std::vector<Candidate> out;
  for (size_t i = 0; i < weights.size(); ++i) {
    out.push_back(Candidate{.weight = weights[i],
                            .eligible = true,
                            .active = 0,
                            .identity = hash_bytes(std::vector<uint8_t>{uint8_t(i), 7})});
  }
  return out;
}

uint64_t client(uint32_t n) {
  const std::vector<uint8_t> ip = {198, 18, uint8_t(n >> 8), uint8_t(n)};
  return hash_bytes(ip);
}

TEST(ProxyRoundRobin, SmoothWeightedOrder) {
  Balancer b(Balance::kRoundRobin, 3);
  const std::vector<Candidate> c = weighted({5, 1, 1});
  std::string order;
  for (int i = 0; i < 7; ++i) order += static_cast<char>('a' + *b.pick(c, 0));
  EXPECT_EQ(order, "aabacaa");  // interleaved, not "aaaaabc"
}

TEST(ProxyRoundRobin, DistributionFollowsWeightsExactly) {
  Balancer b(Balance::kRoundRobin, 3);
  const std::vector<Candidate> c = weighted({3, 2, 5});
  std::map<size_t, int> counts;
  for (int i = 0; i < 1000; ++i) counts[*b.pick(c, 0)]++;
  EXPECT_EQ(counts[0], 300);
  EXPECT_EQ(counts[1], 200);
  EXPECT_EQ(counts[2], 500);
}

TEST(ProxyRoundRobin, SkipsIneligible) {
  Balancer b(Balance::kRoundRobin, 3);
  std::vector<Candidate> c = weighted({1, 1, 1});
  c[1].eligible = false;
  std::map<size_t, int> counts;
  for (int i = 0; i < 100; ++i) counts[*b.pick(c, 0)]++;
  EXPECT_EQ(counts[0], 50);
  EXPECT_EQ(counts[1], 0);
  EXPECT_EQ(counts[2], 50);
}

TEST(ProxyLeastConn, PicksFewestActivePerWeight) {
  Balancer b(Balance::kLeastConn, 3);
  std::vector<Candidate> c = weighted({1, 1, 1});
  c[0].active = 3;
  c[1].active = 1;
  c[2].active = 2;
  EXPECT_EQ(b.pick(c, 0), 1u);
  // Weight counts: 3 active on weight 4 (0.75 each) beats 1 active on weight 1.
  std::vector<Candidate> w = weighted({1, 4});
  w[0].active = 1;
  w[1].active = 3;
  Balancer b2(Balance::kLeastConn, 2);
  EXPECT_EQ(b2.pick(w, 0), 1u);
  w[1].active = 5;
  EXPECT_EQ(b2.pick(w, 0), 0u);
}

TEST(ProxyLeastConn, TiesGoAround) {
  Balancer b(Balance::kLeastConn, 3);
  const std::vector<Candidate> c = weighted({1, 1, 1});
  EXPECT_EQ(b.pick(c, 0), 0u);
  EXPECT_EQ(b.pick(c, 0), 1u);
  EXPECT_EQ(b.pick(c, 0), 2u);
  EXPECT_EQ(b.pick(c, 0), 0u);
}

TEST(ProxyLeastConn, SkipsIneligible) {
  Balancer b(Balance::kLeastConn, 2);
  std::vector<Candidate> c = weighted({1, 1});
  c[0].eligible = false;
  c[1].active = 100;
  EXPECT_EQ(b.pick(c, 0), 1u);
}

TEST(ProxySourceHash, SameClientSameBackend) {
  Balancer b(Balance::kSourceHash, 4);
  const std::vector<Candidate> c = weighted({1, 1, 1, 1});
  for (uint32_t n = 0; n < 200; ++n) {
    const size_t first = *b.pick(c, client(n));
    for (int i = 0; i < 5; ++i) EXPECT_EQ(b.pick(c, client(n)), first);
  }
}

TEST(ProxySourceHash, SpreadsByWeight) {
  const std::vector<Candidate> c = weighted({1, 1, 2});
  std::map<size_t, int> counts;
  for (uint32_t n = 0; n < 20000; ++n) counts[*pick_source_hash(c, client(n))]++;
  // Shares 25/25/50 %, within a few percent (the hash is fixed: this is deterministic).
  EXPECT_NEAR(counts[0], 5000, 500);
  EXPECT_NEAR(counts[1], 5000, 500);
  EXPECT_NEAR(counts[2], 10000, 700);
}

TEST(ProxySourceHash, OnlyTheClientsOfAnUnhealthyBackendMove) {
  std::vector<Candidate> c = weighted({1, 1, 1, 1});
  std::vector<size_t> before;
  for (uint32_t n = 0; n < 2000; ++n) before.push_back(*pick_source_hash(c, client(n)));
  c[2].eligible = false;
  int moved = 0;
  for (uint32_t n = 0; n < 2000; ++n) {
    const size_t now = *pick_source_hash(c, client(n));
    EXPECT_NE(now, 2u);
    if (before[n] != 2) {
      EXPECT_EQ(now, before[n]) << "client " << n << " moved although its backend is up";
    } else {
      ++moved;
    }
  }
  EXPECT_GT(moved, 0);
  // And back: when it recovers, its clients return to it.
  c[2].eligible = true;
  for (uint32_t n = 0; n < 2000; ++n) EXPECT_EQ(*pick_source_hash(c, client(n)), before[n]);
}

TEST(ProxyBalancer, NoneEligible) {
  for (Balance policy : {Balance::kRoundRobin, Balance::kLeastConn, Balance::kSourceHash}) {
    Balancer b(policy, 2);
    std::vector<Candidate> c = weighted({1, 1});
    c[0].eligible = false;
    c[1].eligible = false;
    EXPECT_FALSE(b.pick(c, client(1)).has_value()) << config::to_string(policy);
    EXPECT_FALSE(b.pick({}, client(1)).has_value()) << config::to_string(policy);
  }
}

TEST(ProxyHashBytes, StableAcrossRuns) {
  // Fixed values: a change here would remap every source_hash client after an upgrade.
  EXPECT_EQ(hash_bytes(std::vector<uint8_t>{}), hash_bytes(std::vector<uint8_t>{}));
  EXPECT_NE(hash_bytes(std::vector<uint8_t>{1, 2, 3, 4}),
            hash_bytes(std::vector<uint8_t>{1, 2, 3, 5}));
}

}  // namespace
}  // namespace seamless::proxy
