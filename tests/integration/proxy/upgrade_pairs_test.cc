// One keeper upgraded twice (SIGUSR2) while it carries every kind of pair DESIGN §4
// names: half-closed each way, a zero window, a PROXY header, a backend connect still
// in flight, a loopback backend, an IPv4 client on a dual-stack listener. Afterwards
// each pair must go on as if nothing happened: every byte checked, each half-close
// where it was, no reset, no early EOF.
#include <sys/socket.h>

#include <csignal>
#include <filesystem>
#include <fstream>

#include "tests/integration/proxy/keeper_fixture.h"
#include "tests/integration/proxy/stream_client.h"

namespace seamless::proxy::testing {
namespace {

// More than every buffer on the way holds (tens of MiB): the backend is still sending
// at both upgrades, so its leg is in FIN_WAIT2 then, not yet closed.
constexpr uint64_t kGreeting = 256 * kMiB;

ServiceSpec service(const std::string& name, uint16_t port, std::vector<std::string> backends,
                    const std::string& extra = "") {
  ServiceSpec s;
  s.name = name;
  s.listen = "198.18.0.2:" + std::to_string(port);
  s.backends = std::move(backends);
  // One probe per worker start and a long fall: the health checks stay out of the way
  // (198.18.0.9 must stay "up" so that the connecting pair keeps heading for it).
  s.extra = "    health_check: { interval: 1h, timeout: 1s, rise: 1, fall: 10 }\n" + extra;
  return s;
}

TEST_F(ProxyKeeperTest, UpgradesCarryHalfClosedZeroWindowProxiedConnectingAndLoopbackPairs) {
  // client_fin: the backend verifies what the client sends and streams 64 MiB at it.
  BackendBehaviour talker;
  talker.echo = false;
  talker.verify_seed = 21;
  talker.greeting_bytes = kGreeting;
  talker.greeting_seed = 22;
  // backend_fin: the backend sends 256 KiB, half-closes, and verifies what comes.
  BackendBehaviour closer;
  closer.echo = false;
  closer.verify_seed = 31;
  closer.greeting_bytes = 256 * 1024;
  closer.greeting_seed = 32;
  closer.close_after_greeting = true;
  BackendBehaviour with_header;
  with_header.expect_proxy_header = true;
  auto stall_echo = backend(7101);
  auto talker_backend = backend(7102, talker);
  auto closer_backend = backend(7103, closer);
  auto header_echo = backend(7104, with_header);
  auto late_echo = backend(7105);
  auto dual_echo = backend(7106);
  TestBackend loop_echo(&hosts.host, "127.0.0.1", 7107);

  // The first upgrade passes the dumped sockets through the exec (kept_sockets.h); the
  // second, with this file present, makes the new image restore them from the file.
  struct TriggerFile {
    std::string path = "/tmp/seamless-no-kept-" + std::to_string(::getpid());
    ~TriggerFile() { std::filesystem::remove(path); }
  } file_only;
  ServiceSpec dual = service("dual", 7006, {"198.18.0.1:7106"});
  dual.listen = "[::]:7006";
  start_copy(config_yaml({
                 service("stall", 7000, {"198.18.0.1:7101"}),
                 service("client-fin", 7002, {"198.18.0.1:7102"}),
                 service("backend-fin", 7003, {"198.18.0.1:7103"}),
                 service("proxied", 7004, {"198.18.0.1:7104"}, "    proxy_protocol: v2\n"),
                 // Nothing answers at 198.18.0.9: each connect there stays in flight for 6 s.
                 service("connecting", 7005, {"198.18.0.9:7105", "198.18.0.1:7105"},
                         "    connect_timeout: 6s\n"),
                 dual,
                 service("loopback", 7007, {"127.0.0.1:7107"}),
             }),
             "env SEAMLESS_TEST_NO_KEPT_SOCKETS=" + file_only.path);
  const pid_t keeper = proxy->pid();
  const size_t baseline_fds = open_fds(keeper);
  // A neighbour entry for 198.18.0.9 that nobody owns: its SYNs go out and are never
  // answered (without it, ARP gives up after ~3 s and the connect fails at once with
  // EHOSTUNREACH, whatever connect_timeout says).
  seamless::testing::must_sh(hosts.host.exec(
      "ip neigh replace 198.18.0.9 lladdr 02:00:00:00:00:09 nud permanent dev " + hosts.host_link));

  // Busy streams: PROXY v2, an IPv4 client on [::], a backend on 127.0.0.1.
  std::vector<Endpoints> ends;
  for (const uint16_t port : {7004, 7006, 7007}) {
    fds.push_back(client(TwoHosts::kHost4, port));
    ends.push_back(Endpoints{fds.back().get(), {port, 0, 0}, {port, 0, 0}});
  }
  pump = std::make_unique<StreamPump>(std::move(ends), kEndless);
  ASSERT_TRUE(streams_advance(256 * 1024));

  // Zero window: the client stops reading until every buffer is full.
  Client stalled = make_client(client(TwoHosts::kHost4, 7000), 11, 11);
  ASSERT_TRUE(stall(stalled));

  // Half-closed client -> backend: our FIN is through while the backend keeps sending.
  Client client_fin = make_client(client(TwoHosts::kHost4, 7002), 21, 22);
  ASSERT_TRUE(send_more(client_fin, kMiB));
  ASSERT_EQ(::shutdown(client_fin.fd.get(), SHUT_WR), 0);
  ASSERT_TRUE(receive_more(client_fin, 256 * 1024, false));
  ASSERT_TRUE(wait_until([&] {
    return talker_backend->eofs() == 1 && talker_backend->bytes_received() == kMiB;
  })) << talker_backend->eofs()
      << " " << talker_backend->bytes_received();

  // Half-closed backend -> client: its FIN is through; the client keeps sending.
  Client backend_fin = make_client(client(TwoHosts::kHost4, 7003), 31, 32);
  ASSERT_TRUE(receive_more(backend_fin, closer.greeting_bytes, /*then_eof=*/true));
  ASSERT_TRUE(send_more(backend_fin, kMiB));
  ASSERT_TRUE(wait_until([&] { return closer_backend->bytes_received() == kMiB; }));

  // Connecting: the pair's backend connect (to 198.18.0.9) is in flight at each upgrade.
  Client connecting = make_client(client(TwoHosts::kHost4, 7005), 41, 41);
  ASSERT_TRUE(send_more(connecting, 64 * 1024));
  // The keeper holds every socket: 6 pairs with two, the connecting one with one.
  ASSERT_TRUE(wait_until([&] { return open_fds(keeper) == baseline_fds + 13; }))
      << open_fds(keeper) << " fds, " << baseline_fds << " at start";

  for (size_t i = 1; i <= 2; ++i) {
    install_binary(binary, "build " + std::to_string(i));
    if (i == 2) std::ofstream(file_only.path) << "";
    proxy->signal(SIGUSR2);
    ASSERT_TRUE(proxy->wait_for_count("upgrade handoff done", i, std::chrono::seconds(60)));
    // Every pair was dumped; 13 flows: the connecting one has no backend leg.
    EXPECT_EQ(proxy->count_in_log("checkpoint: 7 pairs"), i) << proxy->log();
    EXPECT_EQ(proxy->count_in_log(", 13 flows locked"), i) << proxy->log();
    // The first new image took the 13 sockets through the exec (and, with every pair
    // kept, unlocked every flow at once), the second restored every pair from the file.
    EXPECT_EQ(proxy->count_in_log("took 7 pairs' sockets through the exec: out of repair mode, "
                                  "every flow unlocked"),
              1u)
        << proxy->log();
    EXPECT_EQ(proxy->count_in_log("ready: adopted 7 pairs"), 1u) << proxy->log();
    EXPECT_EQ(
        proxy->count_in_log("ready: adopted 0 pairs, restored 7 pairs (0 degraded, 0 failed)"),
        i - 1)
        << proxy->log();
    // Still connecting, now from the new worker: nothing has reached the second backend.
    EXPECT_EQ(late_echo->data_connections(), 0u) << proxy->log();
    ASSERT_TRUE(streams_advance(256 * 1024)) << "after upgrade " << i;
    ASSERT_TRUE(send_more(backend_fin, kMiB));
    ASSERT_TRUE(wait_until([&] { return closer_backend->bytes_received() == (i + 1) * kMiB; }));
  }
  EXPECT_EQ(proxy->pid(), keeper);
  EXPECT_EQ(proxy->log().find("not migrated"), std::string::npos) << proxy->log();

  // The zero-window pair resumes once the client reads.
  EXPECT_TRUE(resume(stalled));
  // The backend's stream arrives whole, then its FIN; our FIN had reached it once only.
  EXPECT_TRUE(receive_more(client_fin, kGreeting - client_fin.in.received, /*then_eof=*/true));
  EXPECT_EQ(talker_backend->eofs(), 1u);
  EXPECT_EQ(talker_backend->bytes_received(), kMiB);
  // The client still sends after the backend's FIN; its own FIN ends the pair.
  ASSERT_EQ(::shutdown(backend_fin.fd.get(), SHUT_WR), 0);
  EXPECT_TRUE(wait_until([&] { return closer_backend->eofs() == 1; }));
  EXPECT_EQ(closer_backend->bytes_received(), 3 * kMiB);
  // The pair that was connecting goes to the next backend once 198.18.0.9 times out.
  EXPECT_TRUE(receive_more(connecting, 64 * 1024, false));
  EXPECT_TRUE(send_more(connecting, kMiB));
  EXPECT_TRUE(receive_more(connecting, kMiB, false));
  EXPECT_EQ(late_echo->data_connections(), 1u);
  EXPECT_EQ(metric_value(metrics(), "seamless_backend_connect_failures_total",
                         "service=\"connecting\"", "backend=\"198.18.0.9:7105\""),
            1.0);
  // One header per connection: none was sent again after a restore (the streams would
  // have shown it as payload), and a new connection still gets its own.
  UniqueFd fresh = client(TwoHosts::kHost4, 7004);
  EXPECT_TRUE(echo_roundtrip(fresh.get()));
  EXPECT_EQ(header_echo->headers().size(), 2u);
  EXPECT_TRUE(streams_advance(1 * kMiB));

  pump->stop();
  EXPECT_EQ(pump->errors(), std::vector<std::string>{});
  for (const TestBackend* b : {stall_echo.get(), talker_backend.get(), closer_backend.get(),
                               header_echo.get(), late_echo.get(), dual_echo.get(), &loop_echo}) {
    EXPECT_EQ(b->resets(), 0u);
    EXPECT_EQ(b->errors(), std::vector<std::string>{});
  }
  const std::string m = metrics();
  EXPECT_EQ(metric(m, "seamless_handoffs_total{reason=\"upgrade\",result=\"success\"}"), 2) << m;
  EXPECT_EQ(metric(m, "seamless_restart_generation"), 2) << m;
}

// DESIGN §4: a leg in CLOSE after an orderly close, with bytes still owed to the other
// leg, is carried as those bytes and the EOF. Here the client half-closed, then the
// backend sent its answer and closed; the client has not read it yet. Both FINs went
// through on the backend leg, so the proxy's socket there is in CLOSE (its TIME_WAIT
// handed to the kernel) with the answer still in its receive queue.
class ClosedLegTest : public ProxyKeeperTest {
 protected:
  // The wrapper seamless starts under (keeper_fixture.h's start_copy).
  virtual std::string wrapper() const { return ""; }
  void SetUp() override {
    BackendBehaviour talker;
    talker.echo = false;
    talker.verify_seed = 21;
    talker.greeting_bytes = kAnswer;
    talker.greeting_seed = 22;
    talker_ = backend(7102, talker);
    start_copy(config_yaml(service("client-fin", 7002, {"198.18.0.1:7102"})), wrapper());
    baseline_fds_ = open_fds(proxy->pid());
    c_ = make_client(client(TwoHosts::kHost4, 7002), 21, 22);
    ASSERT_TRUE(send_more(c_, 64 * 1024));
    ASSERT_EQ(::shutdown(c_.fd.get(), SHUT_WR), 0);
    // The backend leg's TIME_WAIT shows that it reached CLOSE. Under the memory
    // pressure of tests running beside this one the proxy's buffers grow slowly and
    // the backend's answer takes longer to leave it (10 s were not always enough).
    ASSERT_TRUE(wait_until(
        [&] {
          return seamless::testing::sh(
                     hosts.host.exec("ss -tnH state time-wait dst 198.18.0.1:7102") +
                     " | grep -q .") == 0;
        },
        std::chrono::seconds(60)));
    ASSERT_EQ(talker_->bytes_received(), 64u * 1024);
  }
  void expect_answer_and_eof() {
    EXPECT_TRUE(receive_more(c_, kAnswer, /*then_eof=*/true));
    EXPECT_EQ(talker_->resets(), 0u);
    EXPECT_EQ(proxy->log().find("not migrated, partner aborted"), std::string::npos)
        << proxy->log();
    // The pair then ends (both directions finished): the keeper drops its duplicates.
    EXPECT_TRUE(wait_until([&] { return open_fds(proxy->pid()) == baseline_fds_; }))
        << open_fds(proxy->pid()) << " fds open, " << baseline_fds_ << " without the pair";
  }

  static constexpr uint64_t kAnswer = 1 * kMiB;  // fits in the proxy's queues
  std::unique_ptr<TestBackend> talker_;
  Client c_;
  size_t baseline_fds_ = 0;
};

// Two pairs whose client socket did not come through the exec (the memfd names an fd
// the new image does not have): the new image takes the other four, unlocks only their
// flows, and its worker restores those two from the file (their other socket closed
// first, silently, in repair mode). Every stream goes on byte for byte.
TEST_F(ProxyKeeperTest, PairsWhoseSocketsDidNotComeThroughTheExecAreRestoredFromTheFile) {
  auto echo = backend(7101);
  struct TriggerFile {
    std::string path = "/tmp/seamless-lose-kept-" + std::to_string(::getpid());
    ~TriggerFile() { std::filesystem::remove(path); }
  } trigger;
  std::ofstream(trigger.path) << "";
  start_copy(config_yaml(ServiceSpec{}), "env SEAMLESS_TEST_LOSE_KEPT_SOCKETS=" + trigger.path);
  open_streams(6);
  const pid_t keeper = proxy->pid();
  install_binary(binary, "build 2");
  proxy->signal(SIGUSR2);
  ASSERT_TRUE(proxy->wait_for_log("upgrade handoff done"));
  const std::string log = proxy->log();
  EXPECT_FALSE(std::filesystem::exists(trigger.path)) << "the hook did not fire";
  EXPECT_NE(log.find("4 pairs' sockets came through the exec; 2 pairs to restore from the file"),
            std::string::npos)
      << log;
  EXPECT_NE(log.find("took 4 pairs' sockets through the exec: out of repair mode, 8 flows "
                     "unlocked"),
            std::string::npos)
      << log;
  EXPECT_NE(log.find("ready: adopted 4 pairs, restored 2 pairs (0 degraded, 0 failed)"),
            std::string::npos)
      << log;
  EXPECT_TRUE(streams_advance(256 * 1024));
  EXPECT_EQ(echo->resets(), 0u);
  EXPECT_EQ(proxy->pid(), keeper);
  EXPECT_EQ(metric(metrics(), "seamless_locked_flows"), 0);
}

// An upgrade whose new image takes the sockets through the exec: the new worker adopts
// the closed one live, forwards what it still holds and passes the EOF on.
TEST_F(ClosedLegTest, UpgradeCarriesTheAnswerAndTheEofOfABackendThatClosed) {
  proxy->signal(SIGUSR2);
  ASSERT_TRUE(proxy->wait_for_log("upgrade handoff done"));
  EXPECT_NE(proxy->log().find("took 1 pairs' sockets through the exec"), std::string::npos)
      << proxy->log();
  expect_answer_and_eof();
}

// Restored from the file instead: the closed leg cannot be dumped, so its answer
// travels in the record (backend_unread) and the restore queues it on the client
// socket, then the FIN.
class ClosedLegThroughTheFileTest : public ClosedLegTest {
 protected:
  std::string wrapper() const override { return "env SEAMLESS_TEST_NO_KEPT_SOCKETS=" + file_; }
  void SetUp() override {
    std::ofstream(file_) << "";
    ClosedLegTest::SetUp();
  }
  void TearDown() override {
    ClosedLegTest::TearDown();
    std::filesystem::remove(file_);
  }
  std::string file_ = "/tmp/seamless-no-kept-" + std::to_string(::getpid());
};

TEST_F(ClosedLegThroughTheFileTest, UpgradeCarriesTheAnswerAndTheEofOfABackendThatClosed) {
  proxy->signal(SIGUSR2);
  ASSERT_TRUE(proxy->wait_for_log("upgrade handoff done"));
  expect_answer_and_eof();
  EXPECT_EQ(metric(metrics(), "seamless_handoff_connections_total{result=\"closed\"}"), 1);
}

// After a crash no dump is needed: the next worker adopts the closed socket live,
// forwards what it still holds and passes the EOF on.
TEST_F(ClosedLegTest, WorkerCrashCarriesTheAnswerAndTheEofOfABackendThatClosed) {
  ::kill(proxy->worker_pid(), SIGKILL);
  ASSERT_TRUE(proxy->wait_for_log("crash handoff done"));
  expect_answer_and_eof();
}

}  // namespace
}  // namespace seamless::proxy::testing
