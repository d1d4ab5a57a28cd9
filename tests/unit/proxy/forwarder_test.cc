// The forwarding step (DESIGN §3) against a scripted socket layer: what is discarded
// from the source is exactly what the destination accepted, never more, never early.
#include "proxy/forwarder.h"

#include <gtest/gtest.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <map>
#include <string>
#include <vector>

namespace seamless::proxy {
namespace {

constexpr int kSrc = 10;
constexpr int kDst = 11;

// In-memory sockets: what a socket has received (and not yet consumed), how much its
// send queue still takes, and errors to fail with.
class FakeOps : public SocketOps {
 public:
  struct Socket {
    std::string inbound;
    bool eof = false;
    int recv_error = 0;
    size_t send_room = std::numeric_limits<size_t>::max();
    int send_error = 0;
    std::string sent;
    bool shut_wr = false;
    bool aborted = false;
    std::vector<size_t> truncs;  // lengths passed with MSG_TRUNC
  };

  ssize_t recv(int fd, void* buf, size_t len, int flags) override {
    Socket& s = sockets[fd];
    EXPECT_TRUE(flags & MSG_DONTWAIT) << "every recv must be non-blocking";
    if (s.recv_error != 0) return fail(s.recv_error);
    if (s.inbound.empty()) return s.eof ? 0 : fail(EAGAIN);
    const size_t n = std::min(len, s.inbound.size());
    if (flags & MSG_TRUNC) {
      EXPECT_EQ(buf, nullptr);
      s.truncs.push_back(len);
    } else {
      std::memcpy(buf, s.inbound.data(), n);
    }
    if (!(flags & MSG_PEEK)) s.inbound.erase(0, n);
    return static_cast<ssize_t>(n);
  }

  ssize_t send(int fd, const void* buf, size_t len, int flags) override {
    Socket& s = sockets[fd];
    EXPECT_EQ(flags & (MSG_DONTWAIT | MSG_NOSIGNAL), MSG_DONTWAIT | MSG_NOSIGNAL);
    if (s.send_error != 0) return fail(s.send_error);
    if (s.send_room == 0) return fail(EAGAIN);
    const size_t k = std::min(len, s.send_room);
    s.send_room -= k;
    s.sent.append(static_cast<const char*>(buf), k);
    return static_cast<ssize_t>(k);
  }

  int shutdown(int fd, int how) override {
    EXPECT_EQ(how, SHUT_WR);
    sockets[fd].shut_wr = true;
    return 0;
  }
  int abort(int fd) override {
    sockets[fd].aborted = true;
    return 0;
  }
  int socket_error(int) override { return 0; }

  std::map<int, Socket> sockets;

 private:
  static ssize_t fail(int err) {
    errno = err;
    return -1;
  }
};

class ProxyForwarderTest : public ::testing::Test {
 protected:
  FakeOps ops;
  Flow flow;
  std::vector<std::byte> scratch = std::vector<std::byte>(64);
  FakeOps::Socket& src() { return ops.sockets[kSrc]; }
  FakeOps::Socket& dst() { return ops.sockets[kDst]; }
  PumpOutcome run(size_t budget = 1 << 20) { return pump(ops, kSrc, kDst, flow, scratch, budget); }
};

TEST_F(ProxyForwarderTest, MovesEverythingWhenDestinationHasRoom) {
  src().inbound = "hello";
  const PumpOutcome out = run();
  EXPECT_EQ(out.result, PumpResult::kIdle);
  EXPECT_EQ(out.moved, 5u);
  EXPECT_EQ(flow.bytes, 5u);
  EXPECT_EQ(dst().sent, "hello");
  EXPECT_TRUE(src().inbound.empty());
  EXPECT_EQ(src().truncs, std::vector<size_t>{5});
  EXPECT_FALSE(flow.blocked);
}

TEST_F(ProxyForwarderTest, ShortSendDiscardsExactlyWhatWasSent) {
  src().inbound = "0123456789";
  dst().send_room = 4;
  const PumpOutcome out = run();
  EXPECT_EQ(out.result, PumpResult::kBlocked);
  EXPECT_EQ(out.moved, 4u);
  EXPECT_EQ(dst().sent, "0123");
  EXPECT_EQ(src().truncs, std::vector<size_t>{4});
  EXPECT_EQ(src().inbound, "456789");  // the rest still waits in the source's kernel queue
  EXPECT_TRUE(flow.blocked);
  // Stop reading the source; wait for the destination to become writable.
  EXPECT_EQ(leg_events(flow, true, Flow{}, false) & kWantRead, 0);
  EXPECT_NE(leg_events(Flow{}, true, flow, false) & kWantWrite, 0);

  dst().send_room = 100;  // writable again: the same bytes are peeked again, once
  EXPECT_EQ(run().result, PumpResult::kIdle);
  EXPECT_EQ(dst().sent, "0123456789");
  EXPECT_EQ(flow.bytes, 10u);
  EXPECT_FALSE(flow.blocked);
}

TEST_F(ProxyForwarderTest, DestinationFullDiscardsNothingAndStopsReading) {
  src().inbound = "payload";
  dst().send_room = 0;
  const PumpOutcome out = run();
  EXPECT_EQ(out.result, PumpResult::kBlocked);
  EXPECT_EQ(out.moved, 0u);
  EXPECT_TRUE(src().truncs.empty());
  EXPECT_EQ(src().inbound, "payload");
  EXPECT_TRUE(flow.blocked);
  EXPECT_EQ(leg_events(flow, true, Flow{}, false), 0);
  EXPECT_EQ(leg_events(Flow{}, true, flow, false), kWantRead | kWantWrite);
}

TEST_F(ProxyForwarderTest, SourceResetAbortsTheDestination) {
  src().recv_error = ECONNRESET;
  const PumpOutcome out = run();
  EXPECT_EQ(out.result, PumpResult::kSourceFailed);
  EXPECT_EQ(out.error, ECONNRESET);
  EXPECT_TRUE(dst().aborted);
  EXPECT_FALSE(src().aborted);
  EXPECT_FALSE(dst().shut_wr);  // a reset is passed on as a reset, never as a FIN
}

TEST_F(ProxyForwarderTest, DestinationResetAbortsTheSourceAndKeepsItsBytes) {
  src().inbound = "abc";
  dst().send_error = ECONNRESET;
  const PumpOutcome out = run();
  EXPECT_EQ(out.result, PumpResult::kDestinationFailed);
  EXPECT_TRUE(src().aborted);
  EXPECT_TRUE(src().truncs.empty());
}

TEST_F(ProxyForwarderTest, EofIsPassedOnAsShutdownAfterTheData) {
  src().inbound = "abc";
  src().eof = true;
  EXPECT_EQ(run().result, PumpResult::kIdle);  // a short peek: the queue is empty now
  EXPECT_FALSE(dst().shut_wr);
  const PumpOutcome out = run();
  EXPECT_EQ(out.result, PumpResult::kFinished);
  EXPECT_TRUE(dst().shut_wr);
  EXPECT_TRUE(flow.finished);
  EXPECT_EQ(dst().sent, "abc");
  // After EOF the source is no longer read.
  EXPECT_EQ(leg_events(flow, true, Flow{}, false) & kWantRead, 0);
}

TEST_F(ProxyForwarderTest, EagainOnSourceIsIdle) {
  const PumpOutcome out = run();
  EXPECT_EQ(out.result, PumpResult::kIdle);
  EXPECT_EQ(out.moved, 0u);
  EXPECT_TRUE(dst().sent.empty());
}

TEST_F(ProxyForwarderTest, YieldsWhenTheBudgetIsUsed) {
  scratch.resize(4);
  src().inbound = std::string(100, 'x');
  const PumpOutcome out = run(/*budget=*/8);
  EXPECT_EQ(out.result, PumpResult::kYield);
  EXPECT_EQ(out.moved, 8u);
  EXPECT_EQ(src().inbound.size(), 92u);
  EXPECT_EQ(src().truncs, (std::vector<size_t>{4, 4}));
}

TEST_F(ProxyForwarderTest, HeaderIsFinishedAcrossPartialWrites) {
  const std::string header = "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n";
  uint32_t pending = static_cast<uint32_t>(header.size());
  int error = 0;
  dst().send_room = 5;
  EXPECT_EQ(write_header(ops, kDst, header, &pending, &error), HeaderResult::kBlocked);
  EXPECT_EQ(pending, header.size() - 5);
  // While header bytes are pending, the backend is watched for writable.
  EXPECT_NE(leg_events(Flow{}, true, Flow{}, pending > 0) & kWantWrite, 0);
  dst().send_room = 1000;
  EXPECT_EQ(write_header(ops, kDst, header, &pending, &error), HeaderResult::kDone);
  EXPECT_EQ(pending, 0u);
  EXPECT_EQ(dst().sent, header);
}

TEST_F(ProxyForwarderTest, HeaderWriteErrorIsReported) {
  const std::string header = "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n";
  uint32_t pending = static_cast<uint32_t>(header.size());
  int error = 0;
  dst().send_error = EPIPE;
  EXPECT_EQ(write_header(ops, kDst, header, &pending, &error), HeaderResult::kFailed);
  EXPECT_EQ(error, EPIPE);
}

TEST(ProxyLegEvents, NothingToReadBeforeTheFlowMayMove) {
  // Backend still connecting or PROXY header pending: the client is not read yet.
  EXPECT_EQ(leg_events(Flow{}, /*can_send=*/false, Flow{}, false), 0);
  EXPECT_EQ(leg_events(Flow{}, /*can_send=*/true, Flow{}, false), kWantRead);
}

}  // namespace
}  // namespace seamless::proxy
