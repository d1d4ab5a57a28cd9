// Every migratable TCP state, with data queued both ways, in every address setup:
// the host side is locked, dumped, closed, restored, finished, unlocked and probed,
// and then both ends must receive every byte, the right EOFs, and no RST.
#include <gtest/gtest.h>
#include <linux/sockios.h>
#include <netinet/tcp.h>
#include <sys/ioctl.h>

#include <tuple>

#include "tests/integration/repair/repair_fixture.h"
#include "tests/integration/support/streams.h"

namespace seamless::testing {
namespace {

using repair::TcpState;

constexpr uint64_t kPeerData = 48 * 1024;  // peer -> host, left unread in the host socket
constexpr uint64_t kHostData = 40 * 1024;  // host -> peer, read by nobody until the end
constexpr uint64_t kInFlight = 6 * 1024;   // host -> peer while locked: sent, not acked

int queued_in(int fd) {
  int n = -1;
  ::ioctl(fd, SIOCINQ, &n);
  return n;
}

int queued_out(int fd) {
  int n = -1;
  ::ioctl(fd, SIOCOUTQ, &n);
  return n;
}

tcp_info info_of(int fd) {
  tcp_info info{};
  socklen_t len = sizeof(info);
  ::getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len);
  return info;
}

void send_exactly(int fd, StreamState& s, uint64_t total) {
  const uint64_t target = s.sent + total;
  ASSERT_TRUE(wait_until([&] { return send_stream(fd, s, target) >= 0 && s.sent == target; }))
      << "could not send " << total << " bytes";
}

// Reads until `bytes` more arrived and, if `eof`, the EOF after them.
void receive_exactly(int fd, StreamState& s, uint64_t bytes, bool eof) {
  const uint64_t target = s.received + bytes;
  std::string error;
  ASSERT_TRUE(wait_until([&] {
    error.clear();
    receive_stream(fd, s, &error);
    return s.received >= target || !error.empty();
  })) << "received " << s.received << " of " << target;
  if (s.received == target && error.starts_with("EOF")) error.clear();
  ASSERT_EQ(error, "") << "while reading " << bytes << " bytes";
  ASSERT_EQ(s.received, target);
  if (!eof) return;
  char c;
  ASSERT_TRUE(wait_until([&] { return ::recv(fd, &c, 1, MSG_DONTWAIT) == 0; }))
      << "no EOF after the data";
}

// What a fresh re-dump of the restored socket (before finish) must equal: bytes that
// were never transmitted are only sent by finish(), and so is a FIN behind them.
repair::SocketImage expected_after_restore(repair::SocketImage image) {
  image.send_queue.resize(image.send_queue.size() - image.send_unsent);
  image.send_unsent = 0;
  if (image.fin_unsent) {
    image.fin_unsent = false;
    image.state = repair::fin_received(image.state) ? TcpState::kCloseWait : TcpState::kEstablished;
  }
  return image;
}

// The restored socket sends segments as large as the original did, except that
// TCP_MAXSEG (needed before connect) refuses more than 32767: loopback connections
// (MSS 65495) come back with that cap, less the timestamp option, until the kernel
// next resyncs the MSS. shared/TCP_REPAIR.md restore step 2.
uint32_t expected_snd_mss(const repair::SocketImage& image, uint32_t original) {
  const uint32_t cap = 32767 - (image.tcp.timestamps ? 12 : 0);
  return image.tcp.mss > 32767 ? std::min(original, cap) : original;
}

// Fields that legitimately move between dump and re-dump: the timestamp clock runs on,
// and the receive window edge follows the ACK sent for an injected FIN.
void expect_same_connection(const repair::SocketImage& before, const repair::SocketImage& after) {
  repair::SocketImage a = expected_after_restore(before), b = after;
  EXPECT_GE(b.tcp.timestamp - a.tcp.timestamp, 0u);
  EXPECT_LT(b.tcp.timestamp - a.tcp.timestamp, 60'000u) << "timestamp went backwards";
  b.tcp.timestamp = a.tcp.timestamp;
  b.window = a.window;
  EXPECT_EQ(a.local, b.local);
  EXPECT_EQ(a.peer, b.peer);
  EXPECT_EQ(repair::to_string(a.state), std::string(repair::to_string(b.state)));
  EXPECT_EQ(a.send_seq, b.send_seq);
  EXPECT_EQ(a.recv_seq, b.recv_seq);
  EXPECT_EQ(a.send_queue.size(), b.send_queue.size());
  EXPECT_EQ(a.recv_queue.size(), b.recv_queue.size());
  EXPECT_TRUE(a.tcp == b.tcp) << "negotiated options differ";
  EXPECT_TRUE(a.options == b.options) << "socket options differ";
  EXPECT_TRUE(a == b) << "re-dump differs from the dump";
}

class StateMatrix : public ::testing::TestWithParam<std::tuple<Setup, TcpState>> {};

TEST_P(StateMatrix, RestoresExactly) {
  const auto [setup, state] = GetParam();
  RepairNet net;
  ASSERT_TRUE(net.flow_lock);
  auto conns = net.connect(setup, 1);
  ASSERT_EQ(conns.size(), 1u);
  UniqueFd& host = conns[0].host;
  UniqueFd& peer = conns[0].peer;
  const bool loopback = setup == Setup::kLoopback4 || setup == Setup::kLoopback6;
  NetNamespace& peer_ns = loopback ? net.hosts.host : net.hosts.peer;
  const repair::Flow flow = net.flow_of(host.get());

  long long host_rsts, peer_rsts;
  { InNetns in(net.hosts.host); host_rsts = out_rsts(); }
  { InNetns in(peer_ns); peer_rsts = out_rsts(); }

  StreamState to_host{1}, to_peer{2};  // as the sender sees them
  StreamState at_host{1}, at_peer{2};  // as the receiver sees them
  send_exactly(peer.get(), to_host, kPeerData);
  send_exactly(host.get(), to_peer, kHostData);
  ASSERT_TRUE(wait_until([&] { return queued_in(host.get()) == int{kPeerData}; }));
  ASSERT_TRUE(wait_until([&] { return queued_in(peer.get()) == int{kHostData}; }));

  const bool peer_finishes = repair::fin_received(state);
  const bool host_finishes = repair::fin_sent(state);
  // The peer's FIN must have arrived before the lock, except in CLOSING, where the
  // two FINs cross: a second lock, in the peer's namespace, holds ours back.
  std::optional<repair::FlowLock> peer_lock;
  repair::Flow reverse{flow.local, flow.peer};
  if (state == TcpState::kClosing) {
    InNetns in(peer_ns);
    auto l = repair::FlowLock::open("sltestpeer" + std::to_string(::getpid()));
    ASSERT_TRUE(l.ok()) << l.error().message;
    peer_lock.emplace(std::move(l).value());
    ASSERT_TRUE(peer_lock->lock({&reverse, 1}, std::chrono::seconds(30)).ok());
  }
  if (peer_finishes && state != TcpState::kClosing) {
    ASSERT_EQ(::shutdown(peer.get(), SHUT_WR), 0);
    ASSERT_TRUE(wait_until([&] { return tcp_state(host.get()) == int(TcpState::kCloseWait); }));
  }
  if (state == TcpState::kFinWait2) {
    ASSERT_EQ(::shutdown(host.get(), SHUT_WR), 0);
    ASSERT_TRUE(wait_until([&] { return tcp_state(host.get()) == int(TcpState::kFinWait2); }));
  }
  if (state != TcpState::kClosing) net.lock({flow});
  uint64_t in_flight = 0;
  if (state != TcpState::kFinWait2) {
    send_exactly(host.get(), to_peer, kInFlight);  // transmitted; the ACKs are dropped
    in_flight = kInFlight;
  }
  if (host_finishes && state != TcpState::kFinWait2) {
    ASSERT_EQ(::shutdown(host.get(), SHUT_WR), 0);
  }
  if (state == TcpState::kClosing) {
    ASSERT_EQ(::shutdown(peer.get(), SHUT_WR), 0);
    ASSERT_TRUE(wait_until([&] { return tcp_state(host.get()) == int(TcpState::kClosing); }));
    net.lock({flow});
  }
  ASSERT_EQ(tcp_state(host.get()), int(state));
  // Give in-flight segments time to reach the socket or the lock.
  ASSERT_TRUE(wait_until([&] { return queued_out(host.get()) > 0 || in_flight == 0; }));
  const uint32_t snd_mss = info_of(host.get()).tcpi_snd_mss;

  repair::SocketImage image;
  repair::RestoredSocket restored;
  {
    InNetns in(net.hosts.host);
    image = dump_and_close(net.sys, host);
    ASSERT_EQ(image.recv_queue.size(), kPeerData);
    ASSERT_EQ(image.state, state);
    repair::SocketRestorer restorer(net.sys);
    restored = restore(restorer, image);
    ASSERT_TRUE(restored.fd.valid());
    EXPECT_FALSE(restored.peer_fin_missing);
    auto again = repair::dump_socket(net.sys, restored.fd.get());
    ASSERT_TRUE(again.ok()) << again.error().message;
    expect_same_connection(image, *again);
    ASSERT_TRUE(restorer.finish(restored.fd.get(), image).ok());
    EXPECT_EQ(info_of(restored.fd.get()).tcpi_snd_mss, expected_snd_mss(image, snd_mss));
    net.unlock({flow});
    const auto unlocked_at = std::chrono::steady_clock::now();
    if (peer_lock) {
      InNetns in_peer(peer_ns);
      ASSERT_TRUE(peer_lock->unlock({&reverse, 1}).ok());
    }
    ASSERT_TRUE(restorer.probe(restored.fd.get(), image).ok());
    // The peer's ACK for everything outstanding arrives after the unlock.
    if (in_flight > 0 || host_finishes) {
      EXPECT_TRUE(wait_until([&] {
        const auto since = std::chrono::duration_cast<std::chrono::milliseconds>(
            std::chrono::steady_clock::now() - unlocked_at);
        return info_of(restored.fd.get()).tcpi_last_ack_recv <= since.count() &&
               queued_out(restored.fd.get()) == 0;
      })) << "no ACK from the peer after unlock";
    }
  }
  receive_exactly(restored.fd.get(), at_host, kPeerData, peer_finishes);
  receive_exactly(peer.get(), at_peer, kHostData + in_flight, host_finishes);
  if (!host_finishes) {  // the restored socket still sends
    send_exactly(restored.fd.get(), to_peer, 1000);
    receive_exactly(peer.get(), at_peer, 1000, false);
  }
  if (!peer_finishes) {
    send_exactly(peer.get(), to_host, 1000);
    receive_exactly(restored.fd.get(), at_host, 1000, false);
  }
  if (peer_lock) {
    InNetns in(peer_ns);
    EXPECT_TRUE(peer_lock->destroy().ok());
  }
  { InNetns in(net.hosts.host); EXPECT_EQ(out_rsts(), host_rsts) << "host sent an RST"; }
  { InNetns in(peer_ns); EXPECT_EQ(out_rsts(), peer_rsts) << "peer sent an RST"; }
}

INSTANTIATE_TEST_SUITE_P(
    AllStates, StateMatrix,
    ::testing::Combine(::testing::Values(Setup::kIpv4, Setup::kIpv6, Setup::kMappedIpv4,
                                         Setup::kLoopback4, Setup::kLoopback6),
                       ::testing::Values(TcpState::kEstablished, TcpState::kCloseWait,
                                         TcpState::kFinWait1, TcpState::kFinWait2,
                                         TcpState::kLastAck, TcpState::kClosing)),
    [](const auto& info) {
      return std::string(to_string(std::get<0>(info.param))) + "_" +
             repair::to_string(std::get<1>(info.param));
    });

}  // namespace
}  // namespace seamless::testing
