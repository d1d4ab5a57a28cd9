// Upgrades that fail before the exec (DESIGN §1 "handoff fails half way", §4 steps 1
// and 5), with the failure made real: a handoff dir on a tiny tmpfs that cannot hold
// the queued bytes, a write that runs into ENOSPC, a handoff file corrupted before it
// is verified. Each must leave every stream on the old code — byte for byte, no reset,
// no EOF, the same keeper, no file left — be counted with its result, and a later
// SIGUSR2 must succeed, carrying the queues that did not fit before.
#include <sys/mount.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "tests/integration/proxy/keeper_fixture.h"
#include "tests/integration/proxy/stream_client.h"

namespace seamless::proxy::testing {
namespace {

std::string upgrade_result(const std::string& result) {
  return "seamless_handoffs_total{reason=\"upgrade\",result=\"" + result + "\"}";
}

// The decimal number right after the first `label` in `text`, or 0.
uint64_t number_after(const std::string& text, const std::string& label) {
  const size_t at = text.find(label);
  if (at == std::string::npos) return 0;
  return std::strtoull(text.c_str() + at + label.size(), nullptr, 10);
}

class UpgradeFailureTest : public ProxyKeeperTest {
 protected:
  UpgradeFailureTest() {
    // The pid in the name lets scripts/test.sh unmount what a crashed test left.
    std::string dir = "/tmp/seamless-upgrade-failure-" + std::to_string(::getpid()) + "-XXXXXX";
    EXPECT_NE(::mkdtemp(dir.data()), nullptr);
    scratch_ = dir;
  }
  ~UpgradeFailureTest() override {
    pump.reset();
    stalled.clear();
    // The keeper's mount namespace (ip netns exec) holds its own copy of the tmpfs.
    proxy.reset();
    if (mounted_ && ::umount2(mount_point().c_str(), MNT_DETACH) != 0) {
      ADD_FAILURE() << "umount " << mount_point() << ": " << std::strerror(errno);
    }
    std::filesystem::remove_all(scratch_);
  }

  std::string mount_point() const { return scratch_ + "/mnt"; }
  std::string handoff_dir() const { return (mounted_ ? mount_point() : scratch_) + "/run"; }

  // A tmpfs of `size` (e.g. "5m") for the handoff dir; mount it before seamless starts,
  // whose mount namespace is a copy of ours at that moment.
  void mount_tmpfs(const std::string& size) {
    std::filesystem::create_directory(mount_point());
    const std::string options = "size=" + size + ",mode=0700";
    ASSERT_EQ(::mount("tmpfs", mount_point().c_str(), "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
                      options.c_str()),
              0)
        << std::strerror(errno);
    mounted_ = true;
  }
  // The same superblock in every namespace: seamless sees the new size at once.
  void resize_tmpfs(const std::string& size) {
    const std::string options = "size=" + size;
    ASSERT_EQ(::mount("tmpfs", mount_point().c_str(), "tmpfs",
                      MS_REMOUNT | MS_NOSUID | MS_NODEV | MS_NOEXEC, options.c_str()),
              0)
        << std::strerror(errno);
  }

  // One echo service; the handoff dir (with a lock that would outlast every wait of
  // the test, so that a lock left behind shows as stalled streams).
  std::string config() const {
    return config_yaml(ServiceSpec{},
                       "handoff:\n  dir: \"" + handoff_dir() + "\"\n  lock_timeout: 2m\n");
  }

  // Streams, plus `n` stalled clients whose full queues make the handoff hold megabytes.
  void start_traffic(size_t n_stalled) {
    open_streams(8);
    for (uint32_t i = 0; i < n_stalled; ++i) {
      stalled.push_back(make_client(client(), 500 + i, 500 + i));
      ASSERT_TRUE(stall(stalled.back()));
    }
  }

  // After a failed upgrade: the same keeper, on the same image, with no handoff file
  // left, a new worker on the live sockets and every stream moving.
  void expect_carried_on(pid_t keeper, const TestBackend& echo) {
    EXPECT_EQ(proxy->pid(), keeper);
    EXPECT_FALSE(proxy->wait_exit(std::chrono::milliseconds(0)).has_value()) << proxy->log();
    EXPECT_EQ(std::filesystem::read_symlink("/proc/" + std::to_string(keeper) + "/exe"), binary);
    EXPECT_TRUE(streams_advance(256 * 1024));
    // (A health probe cut by the quiesce may end in a FIN; the byte-checked streams
    // cover the proxied legs.)
    EXPECT_EQ(echo.resets(), 0u);
    expect_no_handoff_file();
    const std::string m = metrics();
    EXPECT_EQ(metric(m, "seamless_restart_generation"), 0) << m;
    EXPECT_EQ(metric(m, "seamless_locked_flows"), 0) << m;
  }

  void expect_no_handoff_file() {
    if (!std::filesystem::exists(handoff_dir())) return;
    for (const auto& e : std::filesystem::directory_iterator(handoff_dir())) {
      const std::string name = e.path().filename();
      EXPECT_TRUE(name != "handoff.bin" && !name.starts_with(".handoff.tmp.")) << name;
    }
  }

  // Space is back: the next SIGUSR2 upgrades, carrying the stalled queues through the file.
  void expect_next_upgrade_succeeds() {
    install_binary(binary, "the next build");
    proxy->signal(SIGUSR2);
    ASSERT_TRUE(proxy->wait_for_log("upgrade handoff done", std::chrono::seconds(60)));
    ASSERT_TRUE(streams_advance(256 * 1024));
    for (Client& c : stalled) EXPECT_TRUE(resume(c));
    expect_no_handoff_file();
    const std::string m = metrics();
    EXPECT_EQ(metric(m, upgrade_result("success")), 1) << m;
    EXPECT_EQ(metric(m, "seamless_restart_generation"), 1) << m;
  }

  std::string scratch_;
  bool mounted_ = false;
  std::vector<Client> stalled;
};

TEST_F(UpgradeFailureTest, QueuedBytesThatWouldNotFitTheHandoffDirAreRefusedInPreflight) {
  auto echo = backend(7101);
  // Preflight keeps 4 MiB spare: 5 MiB hold the handoff of idle pairs, not of the
  // megabytes a stalled pair queues.
  mount_tmpfs("5m");
  start_copy(config());
  const pid_t keeper = proxy->pid();
  const pid_t worker = proxy->worker_pid();
  start_traffic(1);
  proxy->signal(SIGUSR2);
  const std::string refused =
      "upgrade refused, nothing changed: preflight: handoff dir " + handoff_dir() + " has ";
  ASSERT_TRUE(proxy->wait_for_log(refused));
  // "... has F bytes free; the handoff needs about N (Q queued bytes)"
  const std::string log = proxy->log();
  const size_t start = log.find(refused);
  const std::string line = log.substr(start, log.find('\n', start) - start);
  const uint64_t free_bytes = number_after(line, " has ");
  const uint64_t needed = number_after(line, "needs about ");
  const uint64_t queued = number_after(line, " (");
  EXPECT_GT(free_bytes, 0u) << line;
  EXPECT_LT(free_bytes, needed) << line;
  EXPECT_GT(queued, kMiB) << line;
  EXPECT_LE(free_bytes, 5 * kMiB) << line;
  // Nothing was stopped: the worker serving before serves still.
  EXPECT_EQ(proxy->worker_pid(), worker);
  EXPECT_EQ(proxy->log().find("quiescing"), std::string::npos);
  EXPECT_EQ(metric(metrics(), upgrade_result("no_space")), 1);
  expect_carried_on(keeper, *echo);

  resize_tmpfs("128m");
  expect_next_upgrade_succeeds();
  EXPECT_EQ(metric(metrics(), upgrade_result("no_space")), 1);
}

TEST_F(UpgradeFailureTest, AHandoffWriteThatRunsOutOfSpaceLeavesEveryStreamOnTheOldCode) {
  auto echo = backend(7101);
  // Room for the handoff (a stalled pair queues tens of MiB), so preflight passes.
  mount_tmpfs("128m");
  const std::string filler = mount_point() + "/filler";
  std::ofstream(filler).close();
  start_copy(config(), "env SEAMLESS_TEST_FILL_HANDOFF_DIR=" + filler);
  const pid_t keeper = proxy->pid();
  start_traffic(1);
  proxy->signal(SIGUSR2);
  // Preflight passed; then the filler took all but 64 KiB and the write hit ENOSPC.
  ASSERT_TRUE(proxy->wait_for_log("passed preflight"));
  ASSERT_TRUE(proxy->wait_for_log("test hook: " + filler + " fills"));
  ASSERT_TRUE(proxy->wait_for_log("upgrade failed, carrying on unchanged: checkpoint: "));
  const std::string log = proxy->log();
  EXPECT_NE(log.find("writing record"), std::string::npos) << log;
  EXPECT_NE(log.find("No space left on device"), std::string::npos) << log;
  ASSERT_TRUE(proxy->wait_for_count("worker ready", 2));
  EXPECT_EQ(metric(metrics(), upgrade_result("write_failed")), 1);
  expect_carried_on(keeper, *echo);
  for (Client& c : stalled) EXPECT_TRUE(resume(c));

  for (Client& c : stalled) ASSERT_TRUE(stall(c));
  std::filesystem::remove(filler);
  expect_next_upgrade_succeeds();
  EXPECT_EQ(proxy->count_in_log("test hook:"), 1u);
}

TEST_F(UpgradeFailureTest, AHandoffFileCorruptedBeforeItsVerifyLeavesEveryStreamOnTheOldCode) {
  auto echo = backend(7101);
  const std::string trigger = scratch_ + "/corrupt-once";
  start_copy(config(), "env SEAMLESS_TEST_CORRUPT_HANDOFF=" + trigger);
  const pid_t keeper = proxy->pid();
  start_traffic(1);
  std::ofstream(trigger).close();
  proxy->signal(SIGUSR2);
  ASSERT_TRUE(proxy->wait_for_log("test hook: flipped byte"));
  ASSERT_TRUE(proxy->wait_for_log("upgrade failed, carrying on unchanged: checkpoint: "));
  EXPECT_FALSE(std::filesystem::exists(trigger));
  ASSERT_TRUE(proxy->wait_for_count("worker ready", 2));
  EXPECT_EQ(proxy->count_in_log("upgrade: exec"), 0u);
  EXPECT_EQ(metric(metrics(), upgrade_result("write_failed")), 1);
  expect_carried_on(keeper, *echo);
  for (Client& c : stalled) EXPECT_TRUE(resume(c));

  for (Client& c : stalled) ASSERT_TRUE(stall(c));
  expect_next_upgrade_succeeds();
  EXPECT_EQ(proxy->count_in_log("test hook:"), 1u);
}

// The file is what survives a new image that dies before it took the kept sockets
// (kept_sockets.h): they close with it, silently (still in repair mode), their flows
// stay locked, and seamless started again, as systemd would, restores every pair from
// the file.
TEST_F(UpgradeFailureTest, ANewImageThatDiesBeforeTakingTheSocketsIsRestartedFromTheFile) {
  auto echo = backend(7101);
  const std::string trigger = scratch_ + "/crash-after-exec";
  start_copy(config(), "env SEAMLESS_TEST_CRASH_AFTER_EXEC=" + trigger);
  start_traffic(1);
  std::ofstream(trigger).close();
  proxy->signal(SIGUSR2);
  ASSERT_TRUE(proxy->wait_exit(std::chrono::seconds(30)).has_value()) << proxy->log();
  EXPECT_FALSE(std::filesystem::exists(trigger));
  ASSERT_NE(proxy->log().find("their sockets kept"), std::string::npos) << proxy->log();
  ASSERT_TRUE(std::filesystem::exists(handoff_dir() + "/handoff.bin"));

  auto restarted = std::make_unique<SeamlessProcess>(hosts.host.name(), config(), "", binary);
  ASSERT_TRUE(restarted->wait_for_log("resuming the handoff in")) << restarted->log();
  ASSERT_TRUE(restarted->wait_for_log(
      "ready: adopted 0 pairs, restored 9 pairs (0 degraded, 0 failed)", std::chrono::seconds(30)))
      << restarted->log();
  proxy = std::move(restarted);
  ASSERT_TRUE(streams_advance(256 * 1024));
  for (Client& c : stalled) EXPECT_TRUE(resume(c));
  EXPECT_EQ(echo->resets(), 0u);
  expect_no_handoff_file();
}

}  // namespace
}  // namespace seamless::proxy::testing
