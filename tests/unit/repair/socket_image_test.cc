// Sequence accounting of dump_socket() and the call order of SocketRestorer, on a
// scripted socket (FakeSys): every FIN case of shared/TCP_REPAIR.md, and failures.
#include <gtest/gtest.h>

#include "repair/socket_image.h"
#include "tests/unit/repair/fake_sys.h"

namespace seamless::repair::testing {
namespace {

KernelSocket socket_in(uint8_t state) {
  KernelSocket s;
  s.local = make_sockaddr("198.18.0.2", 7000);
  s.peer = make_sockaddr("198.18.0.1", 41000);
  s.state = state;
  return s;
}

TEST(DumpSocket, EstablishedSplitsSentAndUnsent) {
  FakeSys sys;
  sys.sock = socket_in(1);
  sys.sock.write_seq = 5000;
  sys.sock.outq = 300;
  sys.sock.notsent = 100;
  sys.sock.send_bytes = std::string(300, 's');
  sys.sock.rcv_nxt = 9000;
  sys.sock.inq = 50;
  sys.sock.recv_bytes = std::string(50, 'r');
  auto image = dump_socket(sys, 3);
  ASSERT_TRUE(image.ok()) << image.error().message;
  EXPECT_EQ(image->send_seq, 4700u);
  EXPECT_EQ(image->send_queue.size(), 300u);
  EXPECT_EQ(image->send_unsent, 100u);
  EXPECT_FALSE(image->fin_unsent);
  EXPECT_EQ(image->recv_seq, 8950u);
  EXPECT_EQ(image->recv_end(), 9000u);
  EXPECT_EQ(image->local.to_string(), "198.18.0.2:7000");
  EXPECT_EQ(image->peer.to_string(), "198.18.0.1:41000");
  EXPECT_TRUE(sys.called("setsockopt TCP_REPAIR=1"));
  EXPECT_FALSE(sys.called("setsockopt TCP_REPAIR=0"));
}

TEST(DumpSocket, SequenceNumbersWrapAsUnsigned) {
  FakeSys sys;
  sys.sock = socket_in(1);
  sys.sock.write_seq = 100;  // the send queue straddles 2^32
  sys.sock.outq = 300;
  sys.sock.send_bytes = std::string(300, 's');
  sys.sock.rcv_nxt = 20;
  sys.sock.inq = 40;
  sys.sock.recv_bytes = std::string(40, 'r');
  auto image = dump_socket(sys, 3);
  ASSERT_TRUE(image.ok()) << image.error().message;
  EXPECT_EQ(image->send_seq, 0xFFFFFFFFu - 199);
  EXPECT_EQ(image->send_end(), 100u);
  EXPECT_EQ(image->recv_seq, 0xFFFFFFFFu - 19);
  EXPECT_TRUE(seq_before(image->recv_seq, image->recv_end()));
}

TEST(DumpSocket, CloseWaitExcludesThePeersFin) {
  FakeSys sys;
  sys.sock = socket_in(8);
  sys.sock.rcv_nxt = 1001;  // 1000 + FIN
  sys.sock.inq = 10;
  sys.sock.recv_bytes = std::string(10, 'r');
  sys.sock.write_seq = 7;
  auto image = dump_socket(sys, 3);
  ASSERT_TRUE(image.ok()) << image.error().message;
  EXPECT_EQ(image->state, TcpState::kCloseWait);
  EXPECT_EQ(image->recv_seq, 990u);
  EXPECT_EQ(image->recv_end(), 1000u);  // the FIN's sequence number
  EXPECT_EQ(image->send_seq, 7u);
}

TEST(DumpSocket, FinWait1WithFinTransmitted) {
  FakeSys sys;
  sys.sock = socket_in(4);
  sys.sock.write_seq = 2001;  // 2000 data end + FIN
  sys.sock.outq = 101;        // 100 data + FIN, unacked
  sys.sock.notsent = 0;
  sys.sock.send_bytes = std::string(100, 's');
  auto image = dump_socket(sys, 3);
  ASSERT_TRUE(image.ok()) << image.error().message;
  EXPECT_EQ(image->send_seq, 1900u);
  EXPECT_EQ(image->send_end(), 2000u);
  EXPECT_FALSE(image->fin_unsent);
  EXPECT_EQ(image->send_unsent, 0u);
}

TEST(DumpSocket, FinWait1WithFinBehindUnsentData) {
  FakeSys sys;
  sys.sock = socket_in(4);
  sys.sock.write_seq = 2001;
  sys.sock.outq = 101;
  sys.sock.notsent = 41;  // 40 data bytes and the FIN never left
  sys.sock.send_bytes = std::string(100, 's');
  auto image = dump_socket(sys, 3);
  ASSERT_TRUE(image.ok()) << image.error().message;
  EXPECT_TRUE(image->fin_unsent);
  EXPECT_EQ(image->send_unsent, 40u);
  EXPECT_EQ(image->send_seq, 1900u);
}

TEST(DumpSocket, FinWait2CountsAnAcknowledgedFin) {
  FakeSys sys;
  sys.sock = socket_in(5);
  sys.sock.write_seq = 3001;
  sys.sock.outq = 0;
  auto image = dump_socket(sys, 3);
  ASSERT_TRUE(image.ok()) << image.error().message;
  EXPECT_EQ(image->send_seq, 3000u);  // write_seq - 1
  EXPECT_TRUE(image->send_queue.empty());
}

TEST(DumpSocket, LastAckAndClosingCountBothFins) {
  for (uint8_t state : {uint8_t{9}, uint8_t{11}}) {
    FakeSys sys;
    sys.sock = socket_in(state);
    sys.sock.write_seq = 501;
    sys.sock.outq = 1;  // only our FIN is unacked
    sys.sock.rcv_nxt = 801;
    auto image = dump_socket(sys, 3);
    ASSERT_TRUE(image.ok()) << image.error().message;
    EXPECT_EQ(image->send_seq, 500u);
    EXPECT_EQ(image->recv_seq, 800u);
    EXPECT_TRUE(image->send_queue.empty());
  }
}

TEST(DumpSocket, RefusesOtherStatesAndLeavesRepairMode) {
  for (uint8_t state : {uint8_t{2}, uint8_t{6}, uint8_t{7}, uint8_t{10}}) {
    FakeSys sys;
    sys.sock = socket_in(state);
    auto image = dump_socket(sys, 3);
    ASSERT_FALSE(image.ok());
    EXPECT_NE(image.error().message.find("cannot be migrated"), std::string::npos);
    EXPECT_TRUE(sys.called("setsockopt TCP_REPAIR=0"));
  }
}

TEST(DumpSocket, ShortPeekIsAnErrorAndUndoesRepair) {
  FakeSys sys;
  sys.sock = socket_in(1);
  sys.sock.inq = 100;
  sys.sock.recv_bytes = std::string(60, 'r');
  auto image = dump_socket(sys, 3);
  ASSERT_FALSE(image.ok());
  EXPECT_EQ(image.error().message,
            "dump 198.18.0.2:7000 -> 198.18.0.1:41000: receive queue holds 60 bytes, expected 100");
  EXPECT_TRUE(sys.called("setsockopt TCP_REPAIR=0"));
}

TEST(DumpSocket, ExtraBytesInAQueueAreAnError) {
  FakeSys sys;
  sys.sock = socket_in(1);
  sys.sock.outq = 10;
  sys.sock.send_bytes = std::string(11, 's');
  EXPECT_FALSE(dump_socket(sys, 3).ok());
}

TEST(DumpSocket, MissingCapabilityIsNamed) {
  FakeSys sys;
  sys.sock = socket_in(1);
  sys.fail["setsockopt TCP_REPAIR=1"] = EPERM;
  auto image = dump_socket(sys, 3);
  ASSERT_FALSE(image.ok());
  EXPECT_NE(image.error().message.find("needs CAP_NET_ADMIN"), std::string::npos);
}

SocketImage sample_image() {
  SocketImage image;
  image.local = *Endpoint::parse("198.18.0.2:7000");
  image.peer = *Endpoint::parse("198.18.0.1:41000");
  image.send_seq = 1000;
  image.send_queue = std::string(500, 's');
  image.send_unsent = 200;
  image.recv_seq = 9000;
  image.recv_queue = std::string(300, 'r');
  image.tcp = {65495, true, true, true, 7, 7, 12345};
  image.window = {9000, 65535, 65535, 65535, 9300};
  return image;
}

SocketImage image_queueing(size_t queued, uint32_t unsent, uint32_t peer_window) {
  SocketImage image;
  image.send_queue = std::string(queued, 's');
  image.send_unsent = unsent;
  image.window.snd_wnd = peer_window;
  return image;
}

TEST(CountSendableBytesAsSent, UnsentBytesInsideThePeersWindowCountAsSent) {
  SocketImage image = image_queueing(1000, 700, 600);
  count_sendable_bytes_as_sent(image);
  EXPECT_EQ(image.send_unsent, 400u);  // bytes 600.. lie beyond the window's edge
}

TEST(CountSendableBytesAsSent, AWindowCoveringTheQueueLeavesNothingUnsentNorItsFin) {
  SocketImage image = image_queueing(1000, 700, 1001);
  image.state = TcpState::kFinWait1;
  image.fin_unsent = true;
  count_sendable_bytes_as_sent(image);
  EXPECT_EQ(image.send_unsent, 0u);
  EXPECT_FALSE(image.fin_unsent);
}

TEST(CountSendableBytesAsSent, TheFinNeedsOneMoreByteOfWindow) {
  SocketImage image = image_queueing(1000, 700, 1000);
  image.state = TcpState::kFinWait1;
  image.fin_unsent = true;
  count_sendable_bytes_as_sent(image);
  EXPECT_EQ(image.send_unsent, 0u);
  EXPECT_TRUE(image.fin_unsent);
}

TEST(CountSendableBytesAsSent, AClosedWindowOrAShrunkOneTakesNothingBack) {
  SocketImage closed = image_queueing(1000, 700, 0);
  count_sendable_bytes_as_sent(closed);
  EXPECT_EQ(closed.send_unsent, 700u);
  SocketImage shrunk = image_queueing(1000, 700, 100);  // 300 bytes already beyond it
  count_sendable_bytes_as_sent(shrunk);
  EXPECT_EQ(shrunk.send_unsent, 700u);
}

TEST(SocketRestorer, RestoresSequencesQueuesAndClampsTheMss) {
  FakeSys sys;
  SocketRestorer restorer(sys);
  const SocketImage image = sample_image();
  auto restored = restorer.restore(image);
  ASSERT_TRUE(restored.ok()) << restored.error().message;
  EXPECT_EQ(sys.set_recv_seq, 9000u);
  EXPECT_EQ(sys.set_send_seq, 1000u);
  EXPECT_EQ(sys.sent_recv_queue, image.recv_queue);
  EXPECT_EQ(sys.sent_send_queue.size(), 300u) << "only transmitted bytes go in during repair";
  EXPECT_TRUE(sys.called("setsockopt TCP_MAXSEG=32767"));
  ASSERT_TRUE(restorer.finish(restored->fd.get(), image).ok());
  EXPECT_EQ(sys.sent_send_queue.size(), 500u);
  EXPECT_TRUE(sys.called("setsockopt TCP_REPAIR=-1"));
}

TEST(SocketRestorer, MaxsegIsSetBeforeConnect) {
  FakeSys sys;
  SocketRestorer restorer(sys);
  ASSERT_TRUE(restorer.restore(sample_image()).ok());
  size_t maxseg = 0, connect = 0;
  for (size_t i = 0; i < sys.calls.size(); ++i) {
    if (sys.calls[i].starts_with("setsockopt TCP_MAXSEG")) maxseg = i;
    if (sys.calls[i] == "connect") connect = i;
  }
  EXPECT_LT(maxseg, connect);
}

TEST(SocketRestorer, ShortWritesAreResumed) {
  FakeSys sys;
  sys.max_send = 7;
  SocketRestorer restorer(sys);
  const SocketImage image = sample_image();
  auto restored = restorer.restore(image);
  ASSERT_TRUE(restored.ok()) << restored.error().message;
  EXPECT_EQ(sys.sent_recv_queue, image.recv_queue);
}

TEST(SocketRestorer, FailuresNameTheConnectionAndTheStep) {
  FakeSys sys;
  sys.fail["bind"] = EADDRINUSE;
  SocketRestorer restorer(sys);
  auto restored = restorer.restore(sample_image());
  ASSERT_FALSE(restored.ok());
  EXPECT_EQ(restored.error().message,
            "restore 198.18.0.2:7000 -> 198.18.0.1:41000 ESTABLISHED: bind: Address already in use");
  EXPECT_EQ(restored.error().code, EADDRINUSE);
}

TEST(SocketRestorer, SendQueueEagainIsAnError) {
  FakeSys sys;
  sys.fail["send"] = EAGAIN;
  SocketRestorer restorer(sys);
  auto restored = restorer.restore(sample_image());
  ASSERT_FALSE(restored.ok());
  EXPECT_NE(restored.error().message.find("refill receive queue at byte 0 of 300"),
            std::string::npos)
      << restored.error().message;
}

TEST(SocketRestorer, WindowEdgeMovesBackOverARemovedFin) {
  FakeSys sys;
  SocketRestorer restorer(sys);
  SocketImage image = sample_image();
  image.state = TcpState::kCloseWait;
  image.window.rcv_wup = image.recv_end() + 1;  // counted the FIN
  auto restored = restorer.restore(image);
  ASSERT_TRUE(restored.ok()) << restored.error().message;
  EXPECT_TRUE(sys.called("sendto")) << "the peer's FIN is injected";
}

TEST(SocketRestorer, OurUnsentFinWaitsForFinish) {
  FakeSys sys;
  SocketRestorer restorer(sys);
  SocketImage image = sample_image();
  image.state = TcpState::kFinWait1;
  image.fin_unsent = true;
  auto restored = restorer.restore(image);
  ASSERT_TRUE(restored.ok());
  EXPECT_FALSE(sys.called("shutdown"));
  ASSERT_TRUE(restorer.finish(restored->fd.get(), image).ok());
  EXPECT_TRUE(sys.called("shutdown"));
}

TEST(SocketRestorer, MissingRawCapabilityIsNamed) {
  FakeSys sys;
  SocketRestorer restorer(sys);
  SocketImage image = sample_image();
  image.state = TcpState::kCloseWait;
  sys.fail["socket"] = EPERM;
  // The TCP socket itself fails first; say so precisely.
  auto restored = restorer.restore(image);
  ASSERT_FALSE(restored.ok());
  EXPECT_NE(restored.error().message.find("socket: Operation not permitted"), std::string::npos);
}

}  // namespace
}  // namespace seamless::repair::testing
