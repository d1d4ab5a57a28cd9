// Live connections with data flowing both ways are migrated again and again; the
// peers must see every byte once, in order, and never an RST or EOF. Without the
// flow lock the same cycle must draw resets: that proves the lock is what saves them.
#include <gtest/gtest.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>

#include <optional>
#include <thread>

#include "tests/integration/repair/repair_fixture.h"
#include "tests/integration/support/streams.h"

namespace seamless::testing {
namespace {

using namespace std::chrono_literals;

constexpr int kConnections = 50;
constexpr int kRounds = 10;
constexpr uint64_t kBytesEachWay = 4 << 20;

// lock -> dump -> close all -> [gap] -> restore -> finish -> unlock -> probe.
// Returns how many connections could not be migrated (only expected without a lock:
// then a dump can fail because segments keep arriving, or a restore because the
// peer's RST already killed the connection; such connections are dropped).
int migrate_all(RepairNet& net, std::vector<Connection>& conns, std::vector<Endpoints>& ends,
                bool with_lock, std::chrono::milliseconds gap) {
  InNetns in(net.hosts.host);
  std::vector<repair::Flow> flows;
  for (auto& c : conns) flows.push_back(net.flow_of(c.host.get()));
  if (with_lock) net.lock(flows);
  std::vector<std::optional<repair::SocketImage>> images;
  int failures = 0;
  for (auto& c : conns) {
    auto image = repair::dump_socket(net.sys, c.host.get());
    if (!image) {
      ++failures;
      if (with_lock) ADD_FAILURE() << image.error().message;
      images.emplace_back();
      continue;
    }
    c.host.reset();  // in repair mode: silent
    images.emplace_back(std::move(image).value());
  }
  std::this_thread::sleep_for(gap);  // the window in which a peer's segment finds no socket
  repair::SocketRestorer restorer(net.sys);
  for (size_t i = 0; i < conns.size(); ++i) {
    if (!images[i]) continue;
    auto restored = restorer.restore(*images[i]);
    Status finished = restored ? restorer.finish(restored->fd.get(), *images[i])
                               : Status(restored.error());
    if (!finished) {
      ++failures;
      if (with_lock) ADD_FAILURE() << finished.error().message;
      images[i].reset();
      ends[i].fd = -1;
      continue;
    }
    conns[i].host = std::move(restored->fd);
    ends[i].fd = conns[i].host.get();
  }
  if (with_lock) net.unlock(flows);
  for (size_t i = 0; i < conns.size(); ++i) {
    if (!images[i]) continue;
    EXPECT_TRUE(restorer.probe(conns[i].host.get(), *images[i]).ok());
  }
  return failures;
}

struct MigrationRun {
  std::vector<std::string> host_errors;
  std::vector<std::string> peer_errors;
  long long host_rsts = 0;
  long long peer_rsts = 0;
  int failed_migrations = 0;
  bool complete = false;
};

MigrationRun run_migrations(Setup setup, bool with_lock, int rounds, std::chrono::milliseconds gap) {
  RepairNet net;
  auto conns = net.connect(setup, kConnections);
  std::vector<Endpoints> host_ends, peer_ends;
  for (size_t i = 0; i < conns.size(); ++i) {
    const uint32_t seed = static_cast<uint32_t>(i) * 2 + 1;
    host_ends.push_back({conns[i].host.get(), {seed}, {seed + 1}});
    peer_ends.push_back({conns[i].peer.get(), {seed + 1}, {seed}});
  }
  MigrationRun run;
  long long host_rsts0, peer_rsts0;
  { InNetns in(net.hosts.host); host_rsts0 = out_rsts(); }
  { InNetns in(net.hosts.peer); peer_rsts0 = out_rsts(); }
  StreamPump peer(std::move(peer_ends), kBytesEachWay);
  for (int round = 0; round < rounds && run.host_errors.empty(); ++round) {
    pump_for(host_ends, kBytesEachWay, 30ms, &run.host_errors);
    run.failed_migrations += migrate_all(net, conns, host_ends, with_lock, gap);
  }
  // Let every stream finish (or fail).
  wait_until([&] {
    pump_for(host_ends, kBytesEachWay, 20ms, &run.host_errors);
    if (!run.host_errors.empty() || !peer.errors().empty()) return true;
    for (const auto& e : host_ends) {
      if (e.fd < 0) return true;  // a lost connection: the run cannot complete
    }
    auto progress = peer.progress();
    for (size_t i = 0; i < host_ends.size(); ++i) {
      if (host_ends[i].in.received < kBytesEachWay || progress[i].in.received < kBytesEachWay)
        return false;
    }
    return run.complete = true;
  }, 120s);
  peer.stop();
  run.peer_errors = peer.errors();
  { InNetns in(net.hosts.host); run.host_rsts = out_rsts() - host_rsts0; }
  { InNetns in(net.hosts.peer); run.peer_rsts = out_rsts() - peer_rsts0; }
  return run;
}

std::string join(const std::vector<std::string>& lines) {
  std::string out;
  for (size_t i = 0; i < lines.size() && i < 5; ++i) out += lines[i] + "\n";
  return out;
}

class Migration : public ::testing::TestWithParam<Setup> {};

TEST_P(Migration, FiftyBusyConnectionsTenTimesByteExact) {
  const MigrationRun run = run_migrations(GetParam(), true, kRounds, 20ms);
  EXPECT_EQ(join(run.host_errors), "");
  EXPECT_EQ(join(run.peer_errors), "");
  EXPECT_TRUE(run.complete) << "streams did not complete";
  EXPECT_EQ(run.host_rsts, 0);
  EXPECT_EQ(run.peer_rsts, 0);
  EXPECT_EQ(run.failed_migrations, 0);
}

INSTANTIATE_TEST_SUITE_P(Setups, Migration, ::testing::Values(Setup::kIpv4, Setup::kIpv6),
                         [](const auto& info) { return to_string(info.param); });

TEST(MigrationWithoutLock, PeersSeeResets) {
  const MigrationRun run = run_migrations(Setup::kIpv4, false, 3, 100ms);
  EXPECT_GT(run.host_rsts + static_cast<long long>(run.peer_errors.size()), 0)
      << "no reset without the lock: the test would not notice a broken lock";
  EXPECT_FALSE(run.complete);
}

// A handoff that never restores: once the lock's timeout lapses, the peer's next
// segment draws an RST instead of retransmitting into a void forever.
TEST(FlowLockExpiry, PeerGetsResetInsteadOfHanging) {
  RepairNet net;
  auto conns = net.connect(Setup::kIpv4, 1);
  const repair::Flow flow = net.flow_of(conns[0].host.get());
  {
    InNetns in(net.hosts.host);
    net.lock({flow}, 300ms);
    dump_and_close(net.sys, conns[0].host);
  }
  StreamState out{7};
  ASSERT_GT(send_stream(conns[0].peer.get(), out, 1000), 0);
  std::string error;
  StreamState in{8};
  EXPECT_TRUE(wait_until([&] {
    receive_stream(conns[0].peer.get(), in, &error);
    return !error.empty();
  }, 30s));
  EXPECT_NE(error.find("Connection reset"), std::string::npos) << error;
}

}  // namespace
}  // namespace seamless::testing
