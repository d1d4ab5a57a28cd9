// 4 MiB in each queue: the host has 4 MiB to send into the peer's closed (zero)
// window and 4 MiB received but unread. Both must come back whole, including a FIN
// stuck behind the unsent bytes (the case where queueing the FIN in repair mode
// would mark the whole unsent queue as sent).
#include <gtest/gtest.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>

#include "tests/integration/repair/repair_fixture.h"
#include "tests/integration/support/streams.h"

namespace seamless::testing {
namespace {

constexpr uint64_t kQueue = 4 << 20;

int ioctl_value(int fd, unsigned long request) {
  int n = -1;
  ::ioctl(fd, request, &n);
  return n;
}

class LargeQueues : public ::testing::TestWithParam<bool> {};

TEST_P(LargeQueues, RestoreCompletely) {
  const bool host_finishes = GetParam();
  RepairNet net;
  auto conns = net.connect(Setup::kIpv4, 1, /*peer_rcvbuf=*/64 << 10, /*host_buffers=*/16 << 20);
  int host = conns[0].host.get();
  int peer = conns[0].peer.get();
  const repair::Flow flow = net.flow_of(host);

  StreamState to_host{11}, to_peer{12}, at_host{11}, at_peer{12};
  ASSERT_TRUE(wait_until([&] {
    send_stream(peer, to_host, kQueue, kQueue);
    send_stream(host, to_peer, kQueue, kQueue);
    return to_host.sent == kQueue && to_peer.sent == kQueue;
  })) << "sent " << to_host.sent << " and " << to_peer.sent;
  // Settled: the host holds all it got, and all the peer has not acknowledged.
  ASSERT_TRUE(wait_until([&] {
    return ioctl_value(host, SIOCINQ) == int{kQueue} &&
           uint64_t(ioctl_value(host, SIOCOUTQ) + ioctl_value(peer, SIOCINQ)) == kQueue;
  }));
  if (host_finishes) {
    ASSERT_EQ(::shutdown(host, SHUT_WR), 0);
  }
  long long host_rsts;
  {
    InNetns in(net.hosts.host);
    host_rsts = out_rsts();
  }

  repair::SocketImage image;
  repair::RestoredSocket restored;
  {
    InNetns in(net.hosts.host);
    net.lock({flow});
    image = dump_and_close(net.sys, conns[0].host);
    EXPECT_EQ(image.recv_queue.size(), kQueue);
    EXPECT_GT(image.send_queue.size(), kQueue - (1 << 20));
    EXPECT_GT(image.send_unsent, 0u);
    EXPECT_EQ(image.fin_unsent, host_finishes);
    repair::SocketRestorer restorer(net.sys);
    restored = restore(restorer, image);
    ASSERT_TRUE(restored.fd.valid());
    ASSERT_TRUE(restorer.finish(restored.fd.get(), image).ok());
    net.unlock({flow});
    ASSERT_TRUE(restorer.probe(restored.fd.get(), image).ok());
  }
  host = restored.fd.get();
  std::string error;
  ASSERT_TRUE(wait_until([&] {
    receive_stream(peer, at_peer, &error);
    receive_stream(host, at_host, &error);
    return (at_peer.received == kQueue && at_host.received == kQueue) ||
           (!error.empty() && !error.starts_with("EOF"));
  }, std::chrono::seconds(60)))
      << "peer got " << at_peer.received << ", host got " << at_host.received;
  EXPECT_EQ(at_peer.received, kQueue);
  EXPECT_EQ(at_host.received, kQueue);
  if (host_finishes) {
    char c;
    EXPECT_TRUE(wait_until([&] { return ::recv(peer, &c, 1, MSG_DONTWAIT) == 0; }));
  } else {
    EXPECT_EQ(error, "");
  }
  InNetns in(net.hosts.host);
  EXPECT_EQ(out_rsts(), host_rsts);
}

INSTANTIATE_TEST_SUITE_P(FinOrNot, LargeQueues, ::testing::Values(false, true),
                         [](const auto& info) { return info.param ? "FinBehindUnsent" : "Open"; });

}  // namespace
}  // namespace seamless::testing
