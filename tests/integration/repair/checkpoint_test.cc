// Whole pairs through the handoff file: busy pairs are checkpointed (lock, dump,
// write, verify), every original socket is closed, and restore_pairs() brings them
// back from the file alone. Every stream stays byte-exact, with no RST and no EOF.
// A checkpoint that fails half way must leave the connections working.
#include "repair/checkpoint.h"

#include <gtest/gtest.h>
#include <linux/sockios.h>
#include <netinet/tcp.h>
#include <sys/ioctl.h>
#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <mutex>
#include <thread>

#include "tests/integration/repair/repair_fixture.h"
#include "tests/integration/support/streams.h"

namespace seamless::testing {
namespace {

using namespace std::chrono_literals;

constexpr int kPairs = 20;
constexpr uint64_t kBytes = 2 << 20;

struct PairRig {
  RepairNet net;
  std::vector<Connection> conns;      // 2 per pair: [2i] client leg, [2i+1] backend leg
  std::vector<Endpoints> host_ends;   // indexed like conns
  std::unique_ptr<StreamPump> peer;
  std::string dir = "/tmp/seamless-checkpoint-test-" + std::to_string(::getpid());

  PairRig() {
    conns = net.connect(Setup::kIpv4, kPairs * 2);
    std::vector<Endpoints> peer_ends;
    for (size_t i = 0; i < conns.size(); ++i) {
      const uint32_t seed = static_cast<uint32_t>(i) * 2 + 100;
      host_ends.push_back({conns[i].host.get(), {seed}, {seed + 1}});
      peer_ends.push_back({conns[i].peer.get(), {seed + 1}, {seed}});
    }
    peer = std::make_unique<StreamPump>(std::move(peer_ends), kBytes);
  }
  ~PairRig() { std::filesystem::remove_all(dir); }

  std::vector<repair::LivePair> live_pairs() const {
    std::vector<repair::LivePair> pairs;
    for (int i = 0; i < kPairs; ++i) {
      repair::LivePair p;
      p.client_fd = conns[2 * i].host.get();
      p.backend_fd = conns[2 * i + 1].host.get();
      p.record.id = static_cast<uint64_t>(i) + 1;
      p.record.service = "test";
      p.record.backend = "198.18.0.1:1";
      pairs.push_back(p);
    }
    return pairs;
  }

  // Takes the restored sockets back into the rig, by pair id.
  void adopt(repair::RestoredPair&& pair) {
    const size_t i = (pair.record.id - 1) * 2;
    conns[i].host = std::move(pair.client);
    conns[i + 1].host = std::move(pair.backend);
    host_ends[i].fd = conns[i].host.get();
    host_ends[i + 1].fd = conns[i + 1].host.get();
  }

  bool complete() { return incomplete().empty(); }

  // A handoff dir the writer refuses (world-writable): the checkpoint fails at its write.
  bool refuse_the_handoff_dir() const {
    return ::mkdir(dir.c_str(), 0777) == 0 && ::chmod(dir.c_str(), 0777) == 0;
  }

  // Pumps every stream to its end, then stops the peer: each arrived whole, none failed.
  void expect_every_stream_whole(std::vector<std::string>* errors) {
    EXPECT_TRUE(pump_to_the_end(errors));
    peer->stop();
    EXPECT_EQ(*errors, std::vector<std::string>{});
    EXPECT_EQ(incomplete(), "");
  }

  // Pumps until every stream is complete or one fails (30 s at most).
  bool pump_to_the_end(std::vector<std::string>* errors) {
    return wait_until(
        [&] {
          pump_for(host_ends, kBytes, 20ms, errors);
          return !errors->empty() || !peer->errors().empty() || complete();
        },
        30s);
  }

  // "3: host got 100 of 200, peer got 200 of 200" for every unfinished stream.
  std::string incomplete() {
    auto progress = peer->progress();
    std::string out;
    for (size_t i = 0; i < host_ends.size(); ++i) {
      if (host_ends[i].in.received < kBytes || progress[i].in.received < kBytes) {
        out += std::to_string(i) + ": host got " + std::to_string(host_ends[i].in.received) +
               ", peer got " + std::to_string(progress[i].in.received) + "; ";
      }
    }
    return out;
  }
};

TEST(Checkpoint, BusyPairsSurviveThroughTheFileAlone) {
  PairRig rig;
  std::vector<std::string> errors;
  long long rsts0;
  {
    InNetns in(rig.net.hosts.host);
    rsts0 = out_rsts();
  }
  for (int round = 0; round < 3; ++round) {
    pump_for(rig.host_ends, kBytes, 50ms, &errors);
    ASSERT_EQ(errors, std::vector<std::string>{});
    InNetns in(rig.net.hosts.host);
    const auto pairs = rig.live_pairs();
    // Odd rounds dump on two threads (every other pair on a helper's Sys).
    repair::Sys helper;
    repair::CheckpointOptions options{rig.dir,
                                      30s,
                                      {"test", "digest", 0, {{"c", 7}}},
                                      nullptr,
                                      round % 2 == 1 ? &helper : nullptr,
                                      false,
                                      {}};
    auto done = repair::checkpoint_pairs(rig.net.sys, *rig.net.flow_lock, pairs, options);
    ASSERT_TRUE(done.ok()) << done.error().message;
    EXPECT_EQ(done->pairs, static_cast<uint64_t>(kPairs));
    EXPECT_EQ(done->flows.size(), static_cast<size_t>(kPairs * 2));
    struct stat st {};
    ASSERT_EQ(::stat(done->path.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u);
    for (auto& c : rig.conns) c.host.reset();  // silent: all in repair mode
    auto report = repair::restore_pairs(rig.net.sys, *rig.net.flow_lock, done->path,
                                        [&](repair::RestoredPair&& p) { rig.adopt(std::move(p)); },
                                        /*batch=*/7);
    ASSERT_TRUE(report.ok()) << report.error().message;
    EXPECT_EQ(report->restored, static_cast<uint64_t>(kPairs));
    EXPECT_EQ(report->failed, 0u) << (report->errors.empty() ? "" : report->errors[0]);
    EXPECT_TRUE(repair::remove_handoff_file(done->path).ok());
    EXPECT_EQ(*rig.net.flow_lock->count_locked(), 0u);
  }
  rig.expect_every_stream_whole(&errors);
  EXPECT_EQ(rig.peer->errors(), std::vector<std::string>{});
  if (!rig.complete()) {  // what the kernel thinks of the stuck sockets
    sh(rig.net.hosts.host.exec("ss -tnmoi"));
    sh(rig.net.hosts.peer.exec("ss -tnmoi"));
  }
  InNetns in(rig.net.hosts.host);
  EXPECT_EQ(out_rsts(), rsts0);
}

// An upgrade whose new image takes the dumped sockets through the exec
// (CheckpointOptions::sockets_live_on) leaves no repair queue selected on them: with
// the send queue selected, tcp_write_xmit() in repair mode marks unsent bytes sent
// without sending them, and a live socket would then wait for a retransmission
// timeout. Sockets that die after the dump keep the send queue selected.
TEST(Checkpoint, DumpedSocketsThatLiveOnAreLeftWithNoRepairQueueSelected) {
  RepairNet net;
  std::vector<Connection> conns = net.connect(Setup::kIpv4, 2);
  InNetns in(net.hosts.host);
  repair::LivePair pair;
  pair.client_fd = conns[0].host.get();
  pair.backend_fd = conns[1].host.get();
  pair.record.id = 1;
  pair.record.service = "test";
  pair.record.backend = "198.18.0.1:1";
  const std::string dir = "/tmp/seamless-checkpoint-live-" + std::to_string(::getpid());
  for (const bool live_on : {false, true}) {
    repair::CheckpointOptions options;
    options.dir = dir;
    options.sockets_live_on = live_on;
    auto done = repair::checkpoint_pairs(net.sys, *net.flow_lock, {&pair, 1}, options);
    ASSERT_TRUE(done.ok()) << done.error().message;
    std::filesystem::remove_all(dir);
    for (const Connection& c : conns) {
      int selected = -1;
      socklen_t len = sizeof(selected);
      ASSERT_EQ(::getsockopt(c.host.get(), IPPROTO_TCP, TCP_REPAIR_QUEUE, &selected, &len), 0);
      EXPECT_EQ(selected, live_on ? TCP_NO_QUEUE : TCP_SEND_QUEUE) << "live on: " << live_on;
      const int off = TCP_REPAIR_OFF_NO_WP;
      ASSERT_EQ(::setsockopt(c.host.get(), IPPROTO_TCP, TCP_REPAIR, &off, sizeof(off)), 0);
    }
    net.unlock(done->flows);
  }
  // Still a working connection.
  ASSERT_EQ(::send(conns[0].host.get(), "ping", 4, MSG_DONTWAIT), 4);
  char buf[4] = {};
  ASSERT_TRUE(wait_until([&] { return ::recv(conns[0].peer.get(), buf, 4, MSG_DONTWAIT) == 4; }));
  EXPECT_EQ(std::string(buf, 4), "ping");
}

// A dumped socket that lives on keeps transmitting what its image calls unsent (as
// pacing lets it), while the lock stops every ACK. Should the new image die before
// it takes the sockets, the file's restore must accept the peer's ACK for those
// bytes: one beyond snd_nxt is dropped, and with the restored socket's first window
// already in flight nothing moves snd_nxt past it, so the connection stalls for good.
TEST(Checkpoint, BytesALiveOnSocketSentAfterItsDumpAreAcknowledgedAfterTheFilesRestore) {
  RepairNet net;
  std::vector<Connection> conns = net.connect(Setup::kIpv4, 2, 0, 4 << 20);
  InNetns in(net.hosts.host);
  const int fd = conns[0].host.get();
  auto outq = [&](unsigned long request) {
    int n = -1;
    EXPECT_EQ(::ioctl(fd, request, &n), 0);
    return n;
  };
  auto peer_reads = [&](std::string* got, size_t want) {
    return wait_until(
        [&] {
          char buf[65536];
          ssize_t n;
          while ((n = ::recv(conns[0].peer.get(), buf, sizeof(buf), MSG_DONTWAIT)) > 0) {
            got->append(buf, size_t(n));
          }
          return got->size() >= want;
        },
        20s);
  };
  // A transfer first, so that the congestion window is far above its initial ten
  // segments: then pacing alone sets the pace once the lock holds the ACKs.
  std::string got;
  const std::string warm_up(1 << 20, 'w');
  ASSERT_EQ(::send(fd, warm_up.data(), warm_up.size(), 0), ssize_t(warm_up.size()));
  ASSERT_TRUE(peer_reads(&got, warm_up.size()));
  ASSERT_TRUE(wait_until([&] { return outq(SIOCOUTQ) == 0; }));
  constexpr int kMss = 1448;
  const unsigned int segment_per_10ms = kMss * 100;
  ASSERT_EQ(
      ::setsockopt(fd, SOL_SOCKET, SO_MAX_PACING_RATE, &segment_per_10ms, sizeof(segment_per_10ms)),
      0);
  // The ACKs are held by a table of the test's own from here on: the checkpoint's
  // lock refuses flows its table already holds.
  struct AckHold {
    std::optional<repair::FlowLock> lock;
    ~AckHold() {
      if (lock) {
        EXPECT_TRUE(lock->destroy().ok());
      }
    }
  } hold;
  auto lock = repair::FlowLock::open("sltesthold" + std::to_string(::getpid()));
  ASSERT_TRUE(lock.ok()) << lock.error().message;
  hold.lock.emplace(std::move(lock).value());
  std::vector<repair::Flow> flows = {net.flow_of(fd), net.flow_of(conns[1].host.get())};
  ASSERT_TRUE(hold.lock->lock(flows, 30s).ok());
  std::string payload(100 * kMss, '\0');
  for (size_t i = 0; i < payload.size(); ++i) payload[i] = char('a' + i % 23);
  ASSERT_EQ(::send(fd, payload.data(), payload.size(), 0), ssize_t(payload.size()));
  // More than a restored socket's first window in flight at the dump.
  ASSERT_TRUE(wait_until([&] { return outq(SIOCOUTQ) - outq(SIOCOUTQNSD) >= 12 * kMss; }));

  repair::LivePair pair;
  pair.client_fd = fd;
  pair.backend_fd = conns[1].host.get();
  pair.record.id = 1;
  pair.record.service = "test";
  pair.record.backend = "198.18.0.1:1";
  const std::string dir = "/tmp/seamless-checkpoint-sent-after-" + std::to_string(::getpid());
  repair::CheckpointOptions options;
  options.dir = dir;
  options.sockets_live_on = true;
  auto done = repair::checkpoint_pairs(net.sys, *net.flow_lock, {&pair, 1}, options);
  ASSERT_TRUE(done.ok()) << done.error().message;
  const int unsent_at_dump = outq(SIOCOUTQNSD);
  ASSERT_TRUE(wait_until([&] { return outq(SIOCOUTQNSD) <= unsent_at_dump - 8 * kMss; }))
      << "nothing left the dumped socket: the test shows nothing";
  for (Connection& c : conns) c.host.reset();  // silent: in repair mode

  UniqueFd restored;
  auto report =
      repair::restore_pairs(net.sys, *net.flow_lock, done->path,
                            [&](repair::RestoredPair&& p) { restored = std::move(p.client); });
  std::filesystem::remove_all(dir);
  ASSERT_TRUE(report.ok()) << report.error().message;
  ASSERT_EQ(report->restored, 1u);
  ASSERT_TRUE(hold.lock->unlock(flows).ok());
  got.clear();
  EXPECT_TRUE(peer_reads(&got, payload.size())) << got.size() << " of " << payload.size();
  EXPECT_TRUE(got == payload) << "the peer received other bytes than were sent";
  int left = -1;
  EXPECT_TRUE(
      wait_until([&] { return ::ioctl(restored.get(), SIOCOUTQ, &left) == 0 && left == 0; }, 20s))
      << left << " bytes never acknowledged";
}

// Two threads restore one file, each its share of the records (every other record),
// each with its own flow-lock socket: every pair comes back exactly once.
TEST(Checkpoint, TwoSharesRestoredInParallelBringBackEveryPairOnce) {
  PairRig rig;
  std::vector<std::string> errors;
  pump_for(rig.host_ends, kBytes, 50ms, &errors);
  ASSERT_EQ(errors, std::vector<std::string>{});
  InNetns in(rig.net.hosts.host);
  const auto pairs = rig.live_pairs();
  repair::Sys helper;  // and dumped on two threads
  repair::CheckpointOptions options{rig.dir, 30s, {"test", "digest", 0, {}}, nullptr, &helper,
                                    false,   {}};
  auto done = repair::checkpoint_pairs(rig.net.sys, *rig.net.flow_lock, pairs, options);
  ASSERT_TRUE(done.ok()) << done.error().message;
  for (auto& c : rig.conns) c.host.reset();
  std::mutex mu;
  std::map<uint64_t, int> restored;  // pair id -> times
  auto restore_share = [&](size_t share, repair::RestoreReport* report) {
    repair::FlowLockOptions existing;
    existing.ensure_ruleset = false;
    auto lock = repair::FlowLock::open(rig.net.flow_lock->table(), existing);
    ASSERT_TRUE(lock.ok()) << lock.error().message;
    repair::Sys sys;
    repair::RestoreOptions restore;
    restore.batch = 3;
    restore.share_index = share;
    restore.share_count = 2;
    restore.verified = true;
    auto r = repair::restore_pairs(
        sys, *lock, done->path,
        [&](repair::RestoredPair&& p) {
          std::lock_guard hold(mu);
          ++restored[p.record.id];
          rig.adopt(std::move(p));
        },
        restore);
    ASSERT_TRUE(r.ok()) << r.error().message;
    *report = *r;
  };
  repair::RestoreReport first, second;
  std::thread other([&] {
    InNetns in_thread(rig.net.hosts.host);  // namespaces are per thread
    restore_share(1, &second);
  });
  restore_share(0, &first);
  other.join();
  EXPECT_EQ(first.restored, static_cast<uint64_t>(kPairs / 2));
  EXPECT_EQ(second.restored, static_cast<uint64_t>(kPairs / 2));
  EXPECT_EQ(first.failed + second.failed, 0u);
  EXPECT_EQ(restored.size(), static_cast<size_t>(kPairs));
  for (const auto& [id, times] : restored) EXPECT_EQ(times, 1) << "pair " << id;
  EXPECT_EQ(*rig.net.flow_lock->count_locked(), 0u);
  EXPECT_TRUE(repair::remove_handoff_file(done->path).ok());
  rig.expect_every_stream_whole(&errors);
}

// The handoff dir cannot be written: the checkpoint fails after the lock and dump,
// and must give every socket back in working order, unlocked.
TEST(Checkpoint, FailureLeavesConnectionsWorking) {
  PairRig rig;
  std::vector<std::string> errors;
  pump_for(rig.host_ends, kBytes, 50ms, &errors);
  {
    InNetns in(rig.net.hosts.host);
    ASSERT_TRUE(rig.refuse_the_handoff_dir());
    const auto pairs = rig.live_pairs();
    repair::CheckpointOptions options{rig.dir, 30s, {}, nullptr, nullptr, false, {}};
    repair::CheckpointStep step = repair::CheckpointStep::kLock;
    auto done = repair::checkpoint_pairs(rig.net.sys, *rig.net.flow_lock, pairs, options, &step);
    ASSERT_FALSE(done.ok());
    EXPECT_EQ(step, repair::CheckpointStep::kWrite);
    EXPECT_NE(done.error().message.find("checkpoint"), std::string::npos);
    EXPECT_EQ(*rig.net.flow_lock->count_locked(), 0u);
  }
  rig.expect_every_stream_whole(&errors);
  EXPECT_EQ(rig.peer->errors(), std::vector<std::string>{});
}

// The flows an upgrade locked before its worker quiesced: half of the pairs', and one
// of a pair that ended meanwhile. Returned sorted, as CheckpointOptions wants them.
std::vector<repair::Flow> lock_before_the_quiesce(repair::Sys& sys, repair::FlowLock& lock,
                                                  const std::vector<repair::LivePair>& pairs) {
  std::vector<repair::Flow> flows = {{repair::Endpoint::parse("198.18.0.1:9").value(),
                                      repair::Endpoint::parse("198.18.0.2:9").value()}};
  for (size_t i = 0; i < pairs.size() / 2; ++i) {
    for (int fd : {pairs[i].client_fd, pairs[i].backend_fd}) {
      flows.push_back(repair::flow_of_socket(sys, fd).value());
    }
  }
  std::sort(flows.begin(), flows.end());
  EXPECT_TRUE(lock.lock(flows, 30s).ok());
  return flows;
}

TEST(Checkpoint, FlowsLockedBeforeAreTakenOverAndAnEndedPairsFlowIsLetGo) {
  PairRig rig;
  std::vector<std::string> errors;
  pump_for(rig.host_ends, kBytes, 50ms, &errors);
  {
    InNetns in(rig.net.hosts.host);
    const auto pairs = rig.live_pairs();
    const std::vector<repair::Flow> before =
        lock_before_the_quiesce(rig.net.sys, *rig.net.flow_lock, pairs);
    repair::CheckpointOptions options;
    options.dir = rig.dir;
    options.locked_before = before;
    auto done = repair::checkpoint_pairs(rig.net.sys, *rig.net.flow_lock, pairs, options);
    ASSERT_TRUE(done.ok()) << done.error().message;
    EXPECT_EQ(done->flows.size(), size_t{2 * kPairs});
    EXPECT_EQ(*rig.net.flow_lock->count_locked(), size_t{2 * kPairs});  // the ended one: gone
    EXPECT_TRUE(repair::remove_handoff_file(done->path).ok());
    for (const Connection& c : rig.conns) {
      const int off = TCP_REPAIR_OFF_NO_WP;
      ASSERT_EQ(::setsockopt(c.host.get(), IPPROTO_TCP, TCP_REPAIR, &off, sizeof(off)), 0);
    }
    rig.net.unlock(done->flows);
  }
  rig.expect_every_stream_whole(&errors);
}

TEST(Checkpoint, AFailureAlsoUnlocksTheFlowsLockedBefore) {
  PairRig rig;
  std::vector<std::string> errors;
  pump_for(rig.host_ends, kBytes, 50ms, &errors);
  {
    InNetns in(rig.net.hosts.host);
    ASSERT_TRUE(rig.refuse_the_handoff_dir());
    const auto pairs = rig.live_pairs();
    const std::vector<repair::Flow> before =
        lock_before_the_quiesce(rig.net.sys, *rig.net.flow_lock, pairs);
    repair::CheckpointOptions options;
    options.dir = rig.dir;
    options.locked_before = before;
    auto done = repair::checkpoint_pairs(rig.net.sys, *rig.net.flow_lock, pairs, options);
    ASSERT_FALSE(done.ok());
    EXPECT_EQ(*rig.net.flow_lock->count_locked(), 0u);
  }
  rig.expect_every_stream_whole(&errors);
}

// A Sys whose queue-length reads fail from the n-th on.
class FailingIoctls : public repair::Sys {
 public:
  explicit FailingIoctls(int succeed) : left_(succeed) {}
  int ioctl_int(int fd, unsigned long request, int* value) override {
    if (left_-- <= 0) {
      errno = EIO;
      return -1;
    }
    return repair::Sys::ioctl_int(fd, request, value);
  }

 private:
  int left_;
};

// A Sys that takes its time over each queue-length read.
class SlowIoctls : public repair::Sys {
 public:
  int ioctl_int(int fd, unsigned long request, int* value) override {
    std::this_thread::sleep_for(2ms);
    return repair::Sys::ioctl_int(fd, request, value);
  }
};

// The dump fails on the helper thread, half way: every socket either thread put into
// repair mode leaves it again, the flows are unlocked, the streams carry on. (The two
// threads take pairs as they come: the main thread is slowed down so that the helper
// surely takes the three pairs it needs to fail, ~12 ms a socket on the main thread.)
TEST(Checkpoint, ADumpFailingOnTheHelperThreadLeavesConnectionsWorking) {
  PairRig rig;
  std::vector<std::string> errors;
  pump_for(rig.host_ends, kBytes, 50ms, &errors);
  {
    InNetns in(rig.net.hosts.host);
    const auto pairs = rig.live_pairs();
    SlowIoctls main_sys;
    FailingIoctls helper(/*succeed=*/6 * 5);  // six ioctls a socket: fails at the sixth
    repair::CheckpointOptions options{rig.dir, 30s, {}, nullptr, &helper, false, {}};
    repair::CheckpointStep step = repair::CheckpointStep::kLock;
    auto done = repair::checkpoint_pairs(main_sys, *rig.net.flow_lock, pairs, options, &step);
    ASSERT_FALSE(done.ok());
    EXPECT_EQ(step, repair::CheckpointStep::kDump);
    EXPECT_NE(done.error().message.find("SIOCINQ"), std::string::npos) << done.error().message;
    EXPECT_EQ(*rig.net.flow_lock->count_locked(), 0u);
    for (const auto& c : rig.conns) {
      int repair = -1;
      socklen_t len = sizeof(repair);
      ASSERT_EQ(::getsockopt(c.host.get(), IPPROTO_TCP, TCP_REPAIR, &repair, &len), 0);
      EXPECT_EQ(repair, 0) << "a socket left in repair mode";
    }
  }
  rig.expect_every_stream_whole(&errors);
  EXPECT_EQ(rig.peer->errors(), std::vector<std::string>{});
}

}  // namespace
}  // namespace seamless::testing
