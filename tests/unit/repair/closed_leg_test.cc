// DESIGN.md §4, a leg that closed in order before the dump: the bytes it still owed
// its partner become the partner's unsent tail, followed by the partner's FIN.
#include <gtest/gtest.h>

#include "repair/checkpoint.h"

namespace seamless::repair {
namespace {

SocketImage leg(TcpState state, std::string queued, uint32_t unsent) {
  SocketImage image;
  image.state = state;
  image.send_queue = std::move(queued);
  image.send_unsent = unsent;
  return image;
}

TEST(ClosedLeg, TheBackendsAnswerFollowsWhatTheClientWasOwedThenItsFin) {
  // The client half-closed (CLOSE_WAIT); the backend answered and closed.
  PairRecord record;
  record.flags = kClientFinished;
  record.client = leg(TcpState::kCloseWait, "sent-unsent", 6);
  record.backend_unread = "answer";
  ASSERT_TRUE(owe_closed_legs_to_partners(record).ok());
  EXPECT_EQ(record.client->send_queue, "sent-unsentanswer");
  EXPECT_EQ(record.client->send_unsent, 12u);  // only "-unsent" and "answer" go live
  EXPECT_EQ(record.client->state, TcpState::kLastAck);
  EXPECT_TRUE(record.client->fin_unsent);  // after the bytes, never before them
  EXPECT_TRUE(record.backend_unread.empty());
  EXPECT_EQ(record.flags, kClientFinished | kBackendFinished);
}

TEST(ClosedLeg, AClientThatClosedOwesTheEstablishedBackendAFinWait1) {
  PairRecord record;
  record.flags = kBackendFinished;
  record.backend_socket = leg(TcpState::kEstablished, "", 0);
  record.client_unread = "request";
  ASSERT_TRUE(owe_closed_legs_to_partners(record).ok());
  EXPECT_EQ(record.backend_socket->send_queue, "request");
  EXPECT_EQ(record.backend_socket->send_unsent, 7u);
  EXPECT_EQ(record.backend_socket->state, TcpState::kFinWait1);
  EXPECT_TRUE(record.backend_socket->fin_unsent);
  EXPECT_EQ(record.flags, kClientFinished | kBackendFinished);
}

TEST(ClosedLeg, RecordsWithoutAClosedLegAreLeftAsTheyAre) {
  PairRecord connecting;  // backend absent, nothing owed: a connect in flight
  connecting.client = leg(TcpState::kEstablished, "abc", 1);
  const PairRecord before = connecting;
  ASSERT_TRUE(owe_closed_legs_to_partners(connecting).ok());
  EXPECT_EQ(connecting, before);
}

TEST(ClosedLeg, BytesOwedToAPartnerThatAlreadySentItsFinAreAnError) {
  PairRecord record;
  record.client = leg(TcpState::kFinWait2, "", 0);
  record.backend_unread = "late";
  const auto done = owe_closed_legs_to_partners(record);
  ASSERT_FALSE(done.ok());
  EXPECT_NE(done.error().message.find("already sent its FIN"), std::string::npos)
      << done.error().message;

  PairRecord orphan;
  orphan.client_unread = "nobody";
  EXPECT_FALSE(owe_closed_legs_to_partners(orphan).ok());
}

}  // namespace
}  // namespace seamless::repair
