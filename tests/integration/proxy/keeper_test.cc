// The keeper end to end (DESIGN §1, §2, §4): `seamless run` upgraded with SIGUSR2,
// reloaded with SIGHUP, and its worker killed, while streams run both ways through it.
// Every stream is checked byte for byte; an EOF or a reset on either side fails it.
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

#include "tests/integration/proxy/keeper_fixture.h"

namespace seamless::proxy::testing {
namespace {

TEST_F(ProxyKeeperTest, TwentyUpgradesCarryBusyStreamsAndNewConnections) {
  auto echo = backend(7101);
  start_copy(config_yaml(ServiceSpec{}));
  const pid_t keeper = proxy->pid();
  const size_t baseline_fds = open_fds(keeper);
  open_streams(50);

  // A connector opening fresh connections throughout: none may be refused or reset.
  std::atomic<bool> stop{false};
  std::atomic<size_t> connections{0}, failures{0};
  struct Joiner {
    std::atomic<bool>& stop;
    std::thread& thread;
    ~Joiner() {
      stop = true;
      if (thread.joinable()) thread.join();
    }
  };
  std::thread connector([&] {
    while (!stop) {
      const int fd = try_client();
      if (fd < 0) {
        ++failures;
        ADD_FAILURE() << "connect: " << std::strerror(-fd);
        continue;
      }
      UniqueFd c(fd);
      if (!echo_roundtrip(c.get())) {
        ++failures;
        ADD_FAILURE() << "roundtrip failed at connection " << connections.load();
      }
      ++connections;
    }
  });

  Joiner joiner{stop, connector};
  for (int i = 1; i <= 20; ++i) {
    install_binary(binary, "build " + std::to_string(i));
    proxy->signal(SIGUSR2);
    ASSERT_TRUE(proxy->wait_for_count("upgrade handoff done", size_t(i)));
    ASSERT_TRUE(streams_advance(16 * 1024)) << "after upgrade " << i;
  }
  stop = true;
  connector.join();
  EXPECT_EQ(failures.load(), 0u) << "of " << connections.load() << " connections";
  EXPECT_GT(connections.load(), 20u);

  pump->stop();
  EXPECT_EQ(pump->errors(), std::vector<std::string>{});
  EXPECT_EQ(echo->resets(), 0u);
  // Same keeper, now running the file on disk.
  EXPECT_EQ(proxy->pid(), keeper);
  EXPECT_EQ(std::filesystem::read_symlink("/proc/" + std::to_string(keeper) + "/exe"), binary);
  const std::string m = metrics();
  EXPECT_EQ(metric(m, "seamless_restart_generation"), 20) << m;
  EXPECT_EQ(metric(m, "seamless_handoffs_total{reason=\"upgrade\",result=\"success\"}"), 20);
  // The 50 streams each time, and the connector's clients open at that moment.
  EXPECT_GE(metric(m, "seamless_handoff_connections_total{result=\"restored\"}"), 20 * 50) << m;
  EXPECT_EQ(metric(m, "seamless_handoff_connections_total{result=\"aborted\"}"), 0) << m;
  // Each new image took the dumped sockets through its exec (kept_sockets.h): none had
  // to be rebuilt from the file.
  EXPECT_EQ(proxy->count_in_log("pairs' sockets through the exec"), 20u) << proxy->log();
  EXPECT_EQ(proxy->count_in_log("; 0 pairs to restore from the file"), 20u) << proxy->log();
  for (const char* phase : {"lock", "dump", "write", "exec", "restore", "unlock", "total"}) {
    EXPECT_EQ(
        metric(m, std::string("seamless_handoff_phase_seconds_count{phase=\"") + phase + "\"}"), 20)
        << phase;
  }
  EXPECT_EQ(m.find("seamless_worker_restarts_total{cause=\"signal\"} 1"), std::string::npos);
  EXPECT_EQ(proxy->log().find("restarting it"), std::string::npos) << proxy->log();

  // Each old worker was reaped, by the image it was quiesced for or by the next one
  // (it may still be exiting at the exec): the keeper's only child is its worker.
  auto children = [&] {
    std::set<pid_t> out;
    std::ifstream list("/proc/" + std::to_string(keeper) + "/task/" + std::to_string(keeper) +
                       "/children");
    for (pid_t child; list >> child;) out.insert(child);
    return out;
  };
  EXPECT_TRUE(wait_until([&] { return children() == std::set<pid_t>{proxy->worker_pid()}; }))
      << children().size() << " children";

  // Every duplicate is dropped once its pair ends.
  fds.clear();
  EXPECT_TRUE(wait_until([&] { return open_fds(keeper) == baseline_fds; }))
      << open_fds(keeper) << " fds open, " << baseline_fds << " at start";
}

// The upgrade's worker starts from the new file while the old worker still serves
// (Keeper::start_successor), so that its start is not part of the stall: the worker
// that restores after the exec is a child the keeper already had before it, and runs
// the new file.
TEST_F(ProxyKeeperTest, TheUpgradesWorkerStartsFromTheNewFileBeforeTheExec) {
  auto echo = backend(7101);
  start_copy(config_yaml(ServiceSpec{}));
  open_streams(5);
  const pid_t keeper = proxy->pid();
  install_binary(binary, "build 2");
  proxy->signal(SIGUSR2);
  ASSERT_TRUE(proxy->wait_for_log("passed preflight"));
  std::set<pid_t> children;
  std::ifstream list("/proc/" + std::to_string(keeper) + "/task/" + std::to_string(keeper) +
                     "/children");
  for (pid_t child; list >> child;) children.insert(child);
  ASSERT_TRUE(proxy->wait_for_log("upgrade handoff done"));
  const std::string log = proxy->log();
  const std::string done = "upgrade handoff done: worker ";
  const size_t at = log.find(done);
  ASSERT_NE(at, std::string::npos) << log;
  const pid_t restorer = std::stoi(log.substr(at + done.size()));
  EXPECT_EQ(children.count(restorer), 1u) << "worker " << restorer << " was not a child yet";
  EXPECT_EQ(std::filesystem::read_symlink("/proc/" + std::to_string(restorer) + "/exe"), binary);
  // The old worker kept serving until the new one had started.
  const size_t started = log.find("new worker " + std::to_string(restorer) + " started");
  ASSERT_NE(started, std::string::npos) << log;
  EXPECT_LT(started, log.find("quiescing worker")) << log;
  EXPECT_TRUE(streams_advance(64 * 1024));
  EXPECT_EQ(echo->resets(), 0u);
}

// A new worker that never reports its start does not hold the upgrade up: after
// kSuccessorStartTimeout it is killed, the old worker quiesces, and the new image
// spawns its worker after the exec.
TEST_F(ProxyKeeperTest, AnUpgradesWorkerThatDoesNotStartIsReplacedAfterTheExec) {
  auto echo = backend(7101);
  start_copy(config_yaml(ServiceSpec{}), "env SEAMLESS_TEST_WORKERS_SILENT=1");
  open_streams(5);
  install_binary(binary, "build 2");
  proxy->signal(SIGUSR2);
  ASSERT_TRUE(proxy->wait_for_log("did not start within 1000ms; it starts after the exec"));
  ASSERT_TRUE(proxy->wait_for_log("upgrade handoff done"));
  EXPECT_NE(proxy->log().find("took 5 pairs' sockets through the exec"), std::string::npos)
      << proxy->log();
  EXPECT_NE(proxy->log().find("ready: adopted 5 pairs"), std::string::npos) << proxy->log();
  EXPECT_TRUE(streams_advance(64 * 1024));
  EXPECT_EQ(echo->resets(), 0u);
}

TEST_F(ProxyKeeperTest, UpgradeOnADualStackListenerCarriesIpv4AndIpv6Clients) {
  auto echo = backend(7101);
  ServiceSpec s;
  s.listen = "[::]:7000";
  start_copy(config_yaml(s));
  open_streams(5, TwoHosts::kHost4);  // IPv4-mapped on the dual-stack socket
  std::vector<Endpoints> ends;
  std::vector<UniqueFd> v6;
  for (uint32_t i = 0; i < 5; ++i) {
    v6.push_back(client(TwoHosts::kHost6));
    ends.push_back(Endpoints{v6.back().get(), {900 + i, 0, 0}, {900 + i, 0, 0}});
  }
  StreamPump pump6(std::move(ends), kEndless);
  for (int i = 1; i <= 3; ++i) {
    proxy->signal(SIGUSR2);
    ASSERT_TRUE(proxy->wait_for_count("upgrade handoff done", size_t(i)));
    ASSERT_TRUE(streams_advance(16 * 1024));
  }
  pump6.stop();
  EXPECT_EQ(pump6.errors(), std::vector<std::string>{});
  for (const Endpoints& e : pump6.progress()) EXPECT_GT(e.in.received, 0u);
  EXPECT_EQ(echo->resets(), 0u);
}

TEST_F(ProxyKeeperTest, ReloadKeepsOldPairsOnTheirBackendAndSendsNewOnesToTheNewList) {
  auto old_backend = backend(7101);
  auto new_backend = backend(7102);
  start_copy(config_yaml(ServiceSpec{}));
  const pid_t first_worker = proxy->worker_pid();
  open_streams(5);
  ServiceSpec changed;
  changed.backends = {"198.18.0.1:7102"};
  proxy->rewrite_config(config_yaml(changed));
  proxy->signal(SIGHUP);
  ASSERT_TRUE(proxy->wait_for_log("reload done"));
  EXPECT_NE(proxy->worker_pid(), first_worker);
  ASSERT_TRUE(streams_advance(64 * 1024));
  UniqueFd fresh = client();
  ASSERT_TRUE(echo_roundtrip(fresh.get()));
  EXPECT_EQ(old_backend->data_connections(), 5u);
  EXPECT_EQ(new_backend->data_connections(), 1u);
  EXPECT_EQ(old_backend->resets() + old_backend->eofs(), 0u);
  const std::string m = metrics();
  EXPECT_EQ(metric(m, "seamless_handoffs_total{reason=\"reload\",result=\"success\"}"), 1) << m;
}

TEST_F(ProxyKeeperTest, ReloadWithABrokenConfigChangesNothing) {
  auto echo = backend(7101);
  start_copy(config_yaml(ServiceSpec{}));
  const pid_t worker = proxy->worker_pid();
  open_streams(3);
  proxy->rewrite_config("services:\n  - name: pg\n    listen: nowhere\n");
  proxy->signal(SIGHUP);
  ASSERT_TRUE(proxy->wait_for_log("reload refused, nothing changed"));
  EXPECT_NE(proxy->log().find("seamless.yaml:3:"), std::string::npos) << proxy->log();
  EXPECT_EQ(proxy->worker_pid(), worker);
  ASSERT_TRUE(streams_advance(64 * 1024));
  UniqueFd fresh = client();
  EXPECT_TRUE(echo_roundtrip(fresh.get()));
}

TEST_F(ProxyKeeperTest, UpgradeIsRefusedWhenTheBinaryIsGone) {
  auto echo = backend(7101);
  start_copy(config_yaml(ServiceSpec{}));
  const pid_t worker = proxy->worker_pid();
  open_streams(3);
  std::filesystem::remove(binary);
  proxy->signal(SIGUSR2);
  ASSERT_TRUE(proxy->wait_for_log("upgrade refused, nothing changed: preflight: open " + binary +
                                  ": No such file or directory"));
  EXPECT_EQ(proxy->worker_pid(), worker);
  ASSERT_TRUE(streams_advance(64 * 1024));
  EXPECT_EQ(metric(metrics(),
                   "seamless_handoffs_total{reason=\"upgrade\",result=\"preflight_failed\"}"),
            1);
}

TEST_F(ProxyKeeperTest, AFailedExecLeavesEveryStreamOnTheOldCode) {
  auto echo = backend(7101);
  start_copy(config_yaml(ServiceSpec{}), "env SEAMLESS_TEST_FAIL_EXEC=1");
  open_streams(10);
  proxy->signal(SIGUSR2);
  ASSERT_TRUE(proxy->wait_for_log("upgrade failed, carrying on unchanged: execveat"));
  ASSERT_TRUE(proxy->wait_for_count("worker ready", 2));
  ASSERT_TRUE(streams_advance(256 * 1024));
  EXPECT_EQ(echo->resets(), 0u);
  EXPECT_FALSE(std::filesystem::exists(proxy->dir() + "/run/handoff.bin"));
  EXPECT_EQ(metric(metrics(), "seamless_handoffs_total{reason=\"upgrade\",result=\"exec_failed\"}"),
            1);
}

TEST_F(ProxyKeeperTest, WorkerKilledWhileRestoringIsReplacedAndNoStreamNotices) {
  auto echo = backend(7101);
  const std::string trigger = "/tmp/seamless-crash-once-" + std::to_string(::getpid());
  // Through the file: the new image does not get the dumped sockets.
  const std::string file_only = "/tmp/seamless-no-kept-" + std::to_string(::getpid());
  std::ofstream(file_only) << "";
  struct Remove {
    std::string path;
    ~Remove() { std::filesystem::remove(path); }
  } remove{file_only};
  start_copy(config_yaml(ServiceSpec{}), "env SEAMLESS_TEST_CRASH_ONCE=" + trigger +
                                             " SEAMLESS_TEST_NO_KEPT_SOCKETS=" + file_only);
  open_streams(20);
  std::ofstream(trigger) << "";
  proxy->signal(SIGUSR2);
  ASSERT_TRUE(proxy->wait_for_log("the restoring worker died"));
  ASSERT_TRUE(proxy->wait_for_log("upgrade handoff done"));
  EXPECT_FALSE(std::filesystem::exists(trigger));
  ASSERT_TRUE(streams_advance(256 * 1024));
  // A health probe cut by a kill may end in a FIN; the streams (checked to the byte,
  // still moving) show that no proxied leg did.
  EXPECT_EQ(echo->resets(), 0u);
}

// After the exec the new keeper hands the kept pairs to its worker; one that dies on
// the first of them is replaced like any crashed worker (the keeper trims and hands
// every pair to the next), and the upgrade still completes as one.
TEST_F(ProxyKeeperTest, WorkerKilledWhileAdoptingTheKeptPairsIsReplacedAndNoStreamNotices) {
  auto echo = backend(7101);
  const std::string trigger = "/tmp/seamless-crash-on-adopt-" + std::to_string(::getpid());
  start_copy(config_yaml(ServiceSpec{}), "env SEAMLESS_TEST_CRASH_ON_ADOPT=" + trigger);
  open_streams(20);
  std::ofstream(trigger) << "";
  proxy->signal(SIGUSR2);
  ASSERT_TRUE(proxy->wait_for_log("upgrade handoff done"));
  EXPECT_FALSE(std::filesystem::exists(trigger));
  EXPECT_NE(proxy->log().find("took 20 pairs' sockets through the exec"), std::string::npos)
      << proxy->log();
  EXPECT_NE(proxy->log().find("while serving 20 pairs: restarting it"), std::string::npos)
      << proxy->log();
  ASSERT_TRUE(streams_advance(256 * 1024));
  EXPECT_EQ(echo->resets(), 0u);
  const std::string m = metrics();
  EXPECT_EQ(metric(m, "seamless_handoffs_total{reason=\"upgrade\",result=\"success\"}"), 1) << m;
  EXPECT_EQ(metric(m, "seamless_handoffs_total{reason=\"crash\",result=\"success\"}"), 0) << m;
}

// An upgrade locks the flows before it asks the worker to quiesce. A worker that dies
// instead of quiescing ends the attempt: its flows are unlocked (or the crash handoff's
// own lock would fail on them, and the streams would wait for the lock's timeout), the
// crash handoff serves every pair, and the upgrade runs once the new worker serves.
TEST_F(ProxyKeeperTest, AWorkerThatDiesWhenAskedToQuiesceForAnUpgradeLosesNoStream) {
  auto echo = backend(7101);
  const std::string trigger = "/tmp/seamless-crash-on-quiesce-" + std::to_string(::getpid());
  start_copy(config_yaml(ServiceSpec{}), "env SEAMLESS_TEST_CRASH_ON_QUIESCE=" + trigger);
  open_streams(20);
  const pid_t keeper = proxy->pid();
  std::ofstream(trigger) << "";
  proxy->signal(SIGUSR2);
  ASSERT_TRUE(proxy->wait_for_log("crash handoff done")) << proxy->log();
  EXPECT_FALSE(std::filesystem::exists(trigger));
  ASSERT_TRUE(streams_advance(256 * 1024)) << proxy->log();
  ASSERT_TRUE(proxy->wait_for_log("upgrade handoff done")) << proxy->log();
  ASSERT_TRUE(streams_advance(256 * 1024)) << proxy->log();
  // The retried upgrade found no flow still locked by the first.
  EXPECT_EQ(proxy->log().find("locking the flows after the quiesce instead"), std::string::npos)
      << proxy->log();
  EXPECT_EQ(echo->resets(), 0u);
  EXPECT_EQ(proxy->pid(), keeper);
  const std::string m = metrics();
  EXPECT_EQ(metric(m, "seamless_handoffs_total{reason=\"crash\",result=\"success\"}"), 1) << m;
  EXPECT_EQ(metric(m, "seamless_handoffs_total{reason=\"upgrade\",result=\"success\"}"), 1) << m;
}

// An adopted pair reads its addresses only when a log line needs them (Pair): the line
// of a client that resets after an upgrade still names it.
TEST_F(ProxyKeeperTest, AnAdoptedPairsLogLineStillNamesItsClient) {
  auto echo = backend(7101);
  start_copy(config_yaml(ServiceSpec{}));
  UniqueFd c = client();
  ASSERT_TRUE(echo_roundtrip(c.get()));
  sockaddr_in local{};
  socklen_t len = sizeof(local);
  ASSERT_EQ(::getsockname(c.get(), reinterpret_cast<sockaddr*>(&local), &len), 0);
  proxy->signal(SIGUSR2);
  ASSERT_TRUE(proxy->wait_for_log("upgrade handoff done"));
  ASSERT_TRUE(echo_roundtrip(c.get()));
  const linger abort{1, 0};
  ASSERT_EQ(::setsockopt(c.get(), SOL_SOCKET, SO_LINGER, &abort, sizeof(abort)), 0);
  c.reset();  // an RST
  const std::string named = "198.18.0.1:" + std::to_string(ntohs(local.sin_port)) + "->198.18.0.2:";
  ASSERT_TRUE(proxy->wait_for_log("closed: client reset")) << proxy->log();
  const std::string log = proxy->log();
  const size_t line = log.rfind('\n', log.find("closed: client reset"));
  EXPECT_NE(log.find(named, line), std::string::npos) << named << " in\n" << log;
}

// Prometheus counters of the service, which must never go backwards (rate() would
// read a reset).
std::vector<double> service_counters(const std::string& m) {
  return {metric(m, "seamless_connections_total{service=\"pg\"}"),
          metric(m, "seamless_bytes_total{service=\"pg\",direction=\"in\"}"),
          metric(m, "seamless_bytes_total{service=\"pg\",direction=\"out\"}")};
}

TEST_F(ProxyKeeperTest, WorkerKilledAndCrashedUnderLoadIsReplacedAndNoStreamNotices) {
  auto echo = backend(7101);
  start_copy(config_yaml(ServiceSpec{}));
  open_streams(20);
  std::vector<double> before = service_counters(metrics());
  for (int i = 1; i <= 10; ++i) {
    const pid_t worker = proxy->worker_pid();
    ASSERT_GT(worker, 0);
    ::kill(worker, i % 2 == 0 ? SIGSEGV : SIGKILL);
    ASSERT_TRUE(proxy->wait_for_count("crash handoff done", size_t(i)));
    ASSERT_TRUE(streams_advance(256 * 1024)) << "after kill " << i;
    const std::vector<double> after = service_counters(metrics());
    for (size_t k = 0; k < after.size(); ++k) EXPECT_GE(after[k], before[k]) << "counter " << k;
    before = after;
  }
  // A health probe cut by a kill may end in a FIN; the streams (checked to the byte,
  // still moving) show that no proxied leg did.
  EXPECT_EQ(echo->resets(), 0u);
  const std::string m = metrics();
  // Under ASan a SIGSEGV ends in ASan's report and exit(1): counted as an exit.
  EXPECT_EQ(metric(m, "seamless_worker_restarts_total{cause=\"signal\"}") +
                metric(m, "seamless_worker_restarts_total{cause=\"exit\"}"),
            10)
      << m;
  EXPECT_EQ(metric(m, "seamless_handoffs_total{reason=\"crash\",result=\"success\"}"), 10) << m;
}

TEST_F(ProxyKeeperTest, WorkersKilledBetweenSendAndDiscardLoseAndRepeatNothing) {
  auto echo = backend(7101);
  const std::string kills = bin_dir_for_test() + "-kills";
  std::ofstream(kills) << 0;
  start_copy(config_yaml(ServiceSpec{}), "env SEAMLESS_TEST_KILLS_FILE=" + kills);
  open_streams(20);
  std::ofstream(kills) << 8;  // the next 8 workers die between a send and its discard
  proxy->signal(SIGHUP);      // the first of them starts now
  ASSERT_TRUE(proxy->wait_for_count("crash handoff done", 8, std::chrono::seconds(60)));
  ASSERT_TRUE(streams_advance(1 << 20));
  std::ifstream left(kills);
  int n = -1;
  left >> n;
  EXPECT_EQ(n, 0);
  EXPECT_EQ(proxy->log().find("overhang"), std::string::npos) << proxy->log();
  // A health probe cut by a kill may end in a FIN; the streams (checked to the byte,
  // still moving) show that no proxied leg did.
  EXPECT_EQ(echo->resets(), 0u);
  std::filesystem::remove(kills);
}

TEST_F(ProxyKeeperTest, RandomKillsAlsoDuringUpgradesNeverResetAStream) {
  auto echo = backend(7101);
  start_copy(config_yaml(ServiceSpec{}));
  open_streams(10);
  std::srand(static_cast<unsigned>(::getpid()));
  for (int round = 0; round < 50; ++round) {
    if (round % 3 == 0) proxy->signal(SIGUSR2);
    std::this_thread::sleep_for(std::chrono::milliseconds(std::rand() % 300));
    if (const pid_t worker = proxy->worker_pid(); worker > 0) ::kill(worker, SIGKILL);
    ASSERT_TRUE(streams_advance(64 * 1024)) << "round " << round << "\n" << proxy->log();
  }
  // A health probe cut by a kill may end in a FIN; the streams (checked to the byte,
  // still moving) show that no proxied leg did.
  EXPECT_EQ(echo->resets(), 0u);
  EXPECT_EQ(proxy->pid(), proxy->pid());
  EXPECT_FALSE(proxy->wait_exit(std::chrono::milliseconds(0)).has_value()) << proxy->log();
}

TEST_F(ProxyKeeperTest, AClientWhoseBackendConnectWasInFlightIsServedByTheNextWorker) {
  auto echo = backend(7101);
  ServiceSpec s;
  // 198.18.0.9 answers no ARP: a connect to it stays in flight until connect_timeout.
  s.backends = {"198.18.0.9:7101", "198.18.0.1:7101"};
  s.extra = "    connect_timeout: 1s\n";
  start_copy(config_yaml(s));
  const size_t baseline_fds = open_fds(proxy->pid());
  UniqueFd c = client();  // round robin: the first goes to .9, the second to .1
  UniqueFd d = client();
  ASSERT_TRUE(write_all(c.get(), "ping"));
  ASSERT_TRUE(write_all(d.get(), "pong"));
  // Kill once d's backend is connected (the keeper holds c, d and d's backend).
  ASSERT_TRUE(wait_until([&] { return open_fds(proxy->pid()) >= baseline_fds + 3; }));
  ::kill(proxy->worker_pid(), SIGKILL);  // c's backend connect is still in flight
  ASSERT_TRUE(proxy->wait_for_count("crash handoff done", 1));
  EXPECT_EQ(read_some(c.get(), 4, std::chrono::seconds(10)).data, "ping");
  EXPECT_EQ(read_some(d.get(), 4, std::chrono::seconds(10)).data, "pong");
  EXPECT_EQ(echo->resets(), 0u);
}

// The keeper accepts and holds every client before a worker sees it, so a worker that
// dies between the accept and the backend connect (here: on receiving the client, with
// a burst of others queued behind it) costs those clients a stall only.
TEST_F(ProxyKeeperTest, ClientsAcceptedJustBeforeTheWorkerDiedAreServedByTheNextWorker) {
  auto echo = backend(7101);
  const std::string trigger = bin_dir_for_test() + "-crash-on-client";
  start_copy(config_yaml(ServiceSpec{}), "env SEAMLESS_TEST_CRASH_ON_CLIENT=" + trigger);
  open_streams(5);
  std::ofstream(trigger) << "";
  std::vector<UniqueFd> burst;
  for (int i = 0; i < 30; ++i) {
    burst.push_back(client());
    ASSERT_TRUE(write_all(burst.back().get(), "client-" + std::to_string(100 + i)));
  }
  ASSERT_TRUE(proxy->wait_for_count("crash handoff done", 1));
  EXPECT_FALSE(std::filesystem::exists(trigger)) << "the worker never got a client";
  for (int i = 0; i < 30; ++i) {
    EXPECT_EQ(read_some(burst[size_t(i)].get(), 10, std::chrono::seconds(10)).data,
              "client-" + std::to_string(100 + i));
  }
  ASSERT_TRUE(streams_advance(256 * 1024));
  EXPECT_EQ(echo->resets(), 0u);
  const std::string m = metrics();
  EXPECT_EQ(metric(m, "seamless_worker_restarts_total{cause=\"signal\"}"), 1) << m;
}

// Each socket is open in the keeper and in the worker: with an open-files limit of 300
// the keeper holds at most (300 - 100) / 2 = 100 pairs, then leaves new connections in
// the listen backlog (never dropping an fd on the way) until some close.
TEST_F(ProxyKeeperTest, AtTheOpenFilesCapNewClientsWaitInTheBacklogUntilSomeClose) {
  auto echo = backend(7101);
  start_copy(config_yaml(ServiceSpec{}), "prlimit --nofile=300:300");
  std::vector<UniqueFd> served;
  for (int i = 0; i < 100; ++i) {
    served.push_back(client());
    ASSERT_TRUE(write_all(served.back().get(), "s"));
    ASSERT_EQ(read_some(served.back().get(), 1, std::chrono::seconds(10)).data, "s") << i;
  }
  std::vector<UniqueFd> waiting;
  for (int i = 0; i < 10; ++i) {
    waiting.push_back(client());  // the kernel completes the handshake: it is in the backlog
    ASSERT_TRUE(write_all(waiting.back().get(), "w" + std::to_string(i)));
  }
  ASSERT_TRUE(proxy->wait_for_log("the most the open-files limit 300 allows"));
  EXPECT_EQ(read_some(waiting[0].get(), 2, std::chrono::milliseconds(500)).data, "");
  served.resize(70);  // 30 close: even with the 10 waiting served, well below the cap
  for (int i = 0; i < 10; ++i) {
    EXPECT_EQ(read_some(waiting[size_t(i)].get(), 2, std::chrono::seconds(10)).data,
              "w" + std::to_string(i));
  }
  EXPECT_TRUE(proxy->wait_for_log("below the open-files cap again"));
  EXPECT_EQ(echo->resets(), 0u);
  EXPECT_EQ(proxy->log().find("MSG_CTRUNC"), std::string::npos) << proxy->log();
}

TEST_F(ProxyKeeperTest, AWorkerWhoseKeeperDiedDrainsItsConnections) {
  auto echo = backend(7101);
  start_copy(config_yaml(ServiceSpec{}));
  open_streams(5);
  const pid_t worker = proxy->worker_pid();
  ASSERT_GT(worker, 0);
  proxy->signal(SIGKILL);
  ASSERT_TRUE(proxy->wait_for_log("the keeper is gone"));
  ASSERT_TRUE(proxy->wait_for_log("listeners closed; draining"));
  // Reaped, the keeper has released its own listener copies too: the worker can see
  // the channel's EOF before the dying keeper's last files are released.
  ASSERT_TRUE(proxy->wait_exit().has_value());
  EXPECT_EQ(try_client(), -ECONNREFUSED);  // its listener copies closed at once
  ASSERT_TRUE(streams_advance(256 * 1024));  // and it still serves what it has
  ::kill(worker, SIGKILL);
}

}  // namespace
}  // namespace seamless::proxy::testing
