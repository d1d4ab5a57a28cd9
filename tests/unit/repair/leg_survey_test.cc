// survey_leg() and what the checkpoint does with a surveyed leg: the addresses read
// once before the lock serve both the lock and the dump, on a scripted socket.
#include <gtest/gtest.h>

#include <algorithm>

#include "repair/checkpoint.h"
#include "repair/socket_image.h"
#include "tests/unit/repair/fake_sys.h"

namespace seamless::repair::testing {
namespace {

constexpr uint8_t kEstablished = 1;
constexpr uint8_t kSynSent = 2;
constexpr uint8_t kClose = 7;

FakeSys socket_in(uint8_t state) {
  FakeSys sys;
  sys.sock.local = make_sockaddr("198.18.0.2", 7000);
  sys.sock.peer = make_sockaddr("198.18.0.1", 41000);
  sys.sock.state = state;
  return sys;
}

size_t count_calls(const FakeSys& sys, const std::string& name) {
  return size_t(std::count(sys.calls.begin(), sys.calls.end(), name));
}

TEST(SurveyLeg, AConnectedLegGetsItsFlowWithoutTcpInfo) {
  FakeSys sys = socket_in(kEstablished);
  Result<LegSurvey> leg = survey_leg(sys, 3);
  ASSERT_TRUE(leg.ok()) << leg.error().message;
  EXPECT_EQ(leg->state, LegState::kConnected);
  EXPECT_EQ(to_string(leg->flow), "198.18.0.1:41000 -> 198.18.0.2:7000");
  EXPECT_FALSE(sys.called("tcp_info"));
}

TEST(SurveyLeg, NoPeerMeansClosedOrConnectingAsTcpInfoSays) {
  FakeSys closed = socket_in(kClose);
  closed.fail["getpeername"] = ENOTCONN;
  Result<LegSurvey> leg = survey_leg(closed, 3);
  ASSERT_TRUE(leg.ok()) << leg.error().message;
  EXPECT_EQ(leg->state, LegState::kClosed);

  FakeSys connecting = socket_in(kSynSent);
  connecting.fail["getpeername"] = ENOTCONN;
  leg = survey_leg(connecting, 3);
  ASSERT_TRUE(leg.ok()) << leg.error().message;
  EXPECT_EQ(leg->state, LegState::kConnecting);

  FakeSys none;
  leg = survey_leg(none, -1);
  ASSERT_TRUE(leg.ok());
  EXPECT_EQ(leg->state, LegState::kNoSocket);
  EXPECT_TRUE(none.calls.empty());
}

TEST(SurveyLeg, OtherFailuresAreErrors) {
  FakeSys sys = socket_in(kEstablished);
  sys.fail["getpeername"] = EBADF;
  EXPECT_FALSE(survey_leg(sys, 3).ok());
  FakeSys listening = socket_in(10);  // LISTEN: no peer, yet neither closed nor connecting
  listening.fail["getpeername"] = ENOTCONN;
  EXPECT_FALSE(survey_leg(listening, 3).ok());
}

TEST(SurveyLeg, SurveyedLegsAreLockedWithoutAskingTheirSockets) {
  FakeSys sys = socket_in(kEstablished);
  LivePair pair;
  pair.client_fd = 3;
  pair.backend_fd = 4;
  pair.client_leg = {LegState::kConnected, Flow{Endpoint::parse("198.18.0.1:41000").value(),
                                                Endpoint::parse("198.18.0.2:7000").value()}};
  pair.backend_leg = {LegState::kClosed, {}};
  Result<std::vector<Flow>> flows = lockable_flows(sys, {&pair, 1});
  ASSERT_TRUE(flows.ok()) << flows.error().message;
  ASSERT_EQ(flows->size(), 1u);
  EXPECT_EQ((*flows)[0], pair.client_leg.flow);
  EXPECT_TRUE(sys.calls.empty());
}

TEST(SurveyLeg, ADumpWithKnownNamesDoesNotReadThem) {
  FakeSys sys = socket_in(kEstablished);
  const Endpoint local = Endpoint::parse("198.18.0.2:7000").value();
  const Endpoint peer = Endpoint::parse("198.18.0.1:41000").value();
  Result<SocketImage> image = dump_socket(sys, 3, local, peer);
  ASSERT_TRUE(image.ok()) << image.error().message;
  EXPECT_EQ(image->local, local);
  EXPECT_EQ(image->peer, peer);
  EXPECT_EQ(count_calls(sys, "getsockname"), 0u);
  EXPECT_EQ(count_calls(sys, "getpeername"), 0u);
}

}  // namespace
}  // namespace seamless::repair::testing
