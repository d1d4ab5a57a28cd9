// A pair's record carries everything a next worker needs to continue it (DESIGN §4/§5).
#include "proxy/pair.h"

#include <gtest/gtest.h>

#include "proxy/service.h"

namespace seamless::proxy {
namespace {

TEST(ProxyPairRecord, RoundTripsThroughAPair) {
  Pair pair;
  pair.id = 42;
  pair.stage = PairStage::kOpen;
  pair.backend_address = "198.18.0.1:7001";
  pair.upstream = Flow{.blocked = true, .finished = true, .bytes = 1000};
  pair.downstream = Flow{.blocked = false, .finished = false, .bytes = 2000};
  pair.proxy_header = "PROXY TCP4 198.18.0.1 198.18.0.2 1 2\r\n";
  pair.header_pending = 3;
  pair.baselines = Baselines{0, 0, 1, 0};
  pair.created_at_unix_ms = 1700000000123;

  const repair::PairRecord record = to_record(pair);
  EXPECT_EQ(record.id, 42u);
  EXPECT_EQ(record.backend, "198.18.0.1:7001");
  EXPECT_EQ(record.flags, repair::kClientFinished);
  EXPECT_EQ(record.header_len, pair.proxy_header.size());
  EXPECT_EQ(record.header_pending, 3u);
  EXPECT_EQ(record.bytes_client_to_backend, 1000u);
  EXPECT_EQ(record.bytes_backend_to_client, 2000u);
  EXPECT_EQ(record.backend_off_w, 1);
  EXPECT_FALSE(record.client.has_value());  // images are the keeper's to add

  Pair copy;
  apply_record(record, copy);
  EXPECT_EQ(copy.backend_address, pair.backend_address);
  EXPECT_TRUE(copy.upstream.finished);
  EXPECT_FALSE(copy.downstream.finished);
  EXPECT_FALSE(copy.upstream.blocked);  // transient: the next worker looks again
  EXPECT_EQ(copy.upstream.bytes, 1000u);
  EXPECT_EQ(copy.proxy_header, pair.proxy_header);
  EXPECT_EQ(copy.header_pending, 3u);
  EXPECT_EQ(copy.created_at_unix_ms, pair.created_at_unix_ms);
  EXPECT_EQ(copy.flags(), record.flags);
}

TEST(ProxyPairRecord, ConnectingPairOwesTheWholeHeader) {
  Pair pair;
  pair.stage = PairStage::kConnecting;
  pair.proxy_header = "PROXY TCP4 198.18.0.1 198.18.0.2 1 2\r\n";
  pair.header_pending = 0;
  EXPECT_EQ(to_record(pair).header_pending, pair.proxy_header.size());
}

TEST(ProxyPairRecord, HeaderPendingIsCappedByTheHeader) {
  repair::PairRecord record;
  record.proxy_header = "abc";
  record.header_len = 3;
  record.header_pending = 99;  // untrusted input
  Pair pair;
  apply_record(record, pair);
  EXPECT_EQ(pair.header_pending, 3u);
}

TEST(ProxyPairTable, IdsIncreaseAndSurviveAdoption) {
  PairTable table;
  EXPECT_EQ(table.create().id, 1u);
  EXPECT_EQ(table.create_with_id(10).id, 10u);
  EXPECT_EQ(table.create().id, 11u);
  EXPECT_EQ(table.size(), 3u);
  table.erase(10);
  EXPECT_EQ(table.find(10), nullptr);
  EXPECT_NE(table.find(11), nullptr);
}

}  // namespace
}  // namespace seamless::proxy
