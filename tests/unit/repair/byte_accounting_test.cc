// DESIGN.md §3 arithmetic: what was written, what was consumed, and the overhang of
// a forwarding step cut between send() and the discarding recv(MSG_TRUNC).
#include "repair/byte_accounting.h"

#include <gtest/gtest.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>

#include <vector>

#include "repair/sys.h"

namespace seamless::repair {
namespace {

constexpr uint8_t kEstablished = 1, kFinWait1 = 4, kFinWait2 = 5, kCloseWait = 8, kLastAck = 9;

LegCounters leg(uint8_t state, uint64_t acked, int64_t outq, uint64_t received, int64_t inq) {
  return {state, acked, received, outq, inq};
}

TEST(ByteAccounting, WrittenCountsTheConnectSynInTheBaseline) {
  // A backend leg we connect()ed: its SYN shows up as one acknowledged byte.
  const auto backend = leg(kEstablished, 1001, 200, 0, 0);
  EXPECT_EQ(bytes_written(backend, LegBaseline::connected()), 1200);
  EXPECT_EQ(bytes_written(backend, LegBaseline::accepted()), 1201);
}

TEST(ByteAccounting, OverhangOfACutStep) {
  // The worker peeked 100 bytes from the client, the backend accepted 60, and the
  // worker died before discarding them: 60 bytes are both sent and still queued.
  const auto client = leg(kEstablished, 0, 0, 1000, 100);
  const auto backend = leg(kEstablished, 1 + 900, 60, 0, 0);
  auto extra = overhang(client, LegBaseline::accepted(), backend, LegBaseline::connected(), 0);
  ASSERT_TRUE(extra.ok()) << extra.error().message;
  EXPECT_EQ(*extra, 60);
}

TEST(ByteAccounting, NoOverhangAfterACompleteStep) {
  const auto client = leg(kEstablished, 0, 0, 1000, 40);
  const auto backend = leg(kEstablished, 1 + 900, 60, 0, 0);
  EXPECT_EQ(*overhang(client, {}, backend, LegBaseline::connected(), 0), 0);
}

TEST(ByteAccounting, ProxyHeaderIsNotPayload) {
  // 50 header bytes went first; then 960 payload bytes of which 60 not yet discarded.
  const auto client = leg(kEstablished, 0, 0, 1000, 100);
  const auto backend = leg(kEstablished, 1 + 1000, 10, 0, 0);
  EXPECT_EQ(header_written(backend, LegBaseline::connected(), 50), 50);
  EXPECT_EQ(*overhang(client, {}, backend, LegBaseline::connected(), 50), 60);
}

TEST(ByteAccounting, PartlyWrittenHeaderMeansNoPayloadYet) {
  const auto client = leg(kEstablished, 0, 0, 500, 500);
  const auto backend = leg(kEstablished, 1 + 20, 10, 0, 0);  // 30 of a 50-byte header
  EXPECT_EQ(header_written(backend, LegBaseline::connected(), 50), 30);
  EXPECT_EQ(*overhang(client, {}, backend, LegBaseline::connected(), 50), 0);
}

TEST(ByteAccounting, FinsOccupyASequenceNumberButAreNoData) {
  // The client finished (CLOSE_WAIT: its FIN counted in bytes_received) and the worker
  // passed it on (backend FIN_WAIT1: our FIN counted in SIOCOUTQ).
  const auto client = leg(kCloseWait, 0, 0, 1000 + 1, 0);
  const auto backend = leg(kFinWait1, 1 + 900, 100 + 1, 0, 0);
  EXPECT_EQ(bytes_consumed(client, {}), 1000);
  EXPECT_EQ(bytes_written(backend, LegBaseline::connected()), 1000);
  EXPECT_EQ(*overhang(client, {}, backend, LegBaseline::connected(), 0), 0);
  // Once our FIN is acknowledged it moves from SIOCOUTQ into bytes_acked.
  const auto acked = leg(kFinWait2, 1 + 1000 + 1, 0, 0, 0);
  EXPECT_EQ(bytes_written(acked, LegBaseline::connected()), 1000);
  // LAST_ACK counts both.
  const auto last_ack = leg(kLastAck, 300, 1, 701, 0);
  EXPECT_EQ(bytes_written(last_ack, {}), 300);
  EXPECT_EQ(bytes_consumed(last_ack, {}), 700);
}

TEST(ByteAccounting, NegativeOverhangIsReportedNotUsed) {
  const auto client = leg(kEstablished, 0, 0, 1000, 0);
  const auto backend = leg(kEstablished, 1 + 900, 0, 0, 0);  // wrote less than consumed
  auto extra = overhang(client, {}, backend, LegBaseline::connected(), 0);
  ASSERT_FALSE(extra.ok());
  EXPECT_NE(extra.error().message.find("overhang -100 out of range"), std::string::npos);
}

TEST(ByteAccounting, OverhangLargerThanTheSourceQueueIsReported) {
  const auto client = leg(kEstablished, 0, 0, 1000, 10);
  const auto backend = leg(kEstablished, 1 + 1100, 0, 0, 0);  // 110 > the 10 still queued
  EXPECT_FALSE(overhang(client, {}, backend, LegBaseline::connected(), 0).ok());
}

TEST(ByteAccounting, BaselineAfterRestoreContinuesTheLogicalTotals) {
  // Restored with 300 bytes in the send queue and 100 unread: the counters start at
  // zero and the refilled receive queue passes through bytes_received, but W and R
  // must continue from 5000 and 9000.
  const auto restored = leg(kEstablished, 0, 300, 100, 100);
  const LegBaseline base = baseline_after_restore(restored, 5000, 9000);
  EXPECT_EQ(bytes_written(restored, base), 5000);
  EXPECT_EQ(bytes_consumed(restored, base), 9000);
  // Later: the 300 were acknowledged, 40 more written, 100 read plus 60 more arrived.
  const auto later = leg(kEstablished, 300 + 40, 0, 160, 60);
  EXPECT_EQ(bytes_written(later, base), 5040);
  EXPECT_EQ(bytes_consumed(later, base), 9100);
}

// A socket whose counters move between reads, then settle.
class MovingCounters : public Sys {
 public:
  std::vector<TcpInfo> infos;
  size_t reads = 0;
  int tcp_info(int, TcpInfo* info) override {
    *info = infos[std::min(reads++, infos.size() - 1)];
    return 0;
  }
  int ioctl_int(int, unsigned long request, int* value) override {
    *value = request == SIOCINQ ? 5 : 7;
    return 0;
  }
};

TEST(ByteAccounting, ReadsUntilTwoRoundsAgree) {
  MovingCounters sys;
  TcpInfo a, b;
  a.state = b.state = kEstablished;
  a.bytes_received = 100;
  b.bytes_received = 180;
  sys.infos = {a, b, b};
  auto counters = read_leg_counters(sys, 3);
  ASSERT_TRUE(counters.ok());
  EXPECT_EQ(counters->bytes_received, 180u);
  EXPECT_EQ(counters->inq, 5);
  EXPECT_EQ(counters->outq, 7);
}

}  // namespace
}  // namespace seamless::repair
