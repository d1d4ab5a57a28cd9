// handoff_bench: how long busy connections stall while seamless upgrades itself
// (SIGUSR2 to the keeper) or recovers from its worker's crash (SIGKILL to the worker),
// and where the handoff spends that time.
//
// For each N and each event: a fresh pair of namespaces (bench in one, seamless in the
// other), a `seamless run` from a private copy of the binary, N connections through it
// to the bench's backend, each writing a small chunk every interval in both directions
// and verifying every byte it receives (traffic.h). After a warm-up and a baseline
// window, the event: SIGUSR2 to the keeper (upgrade) or SIGKILL to the worker (crash);
// the handoff window lasts until every direction of every connection has delivered
// again after "upgrade handoff done" / "crash handoff done". Per connection and
// direction the receiver records the largest gap between deliveries (the stall) and
// the largest delivery latency; the keeper's phase histograms are scraped from
// /metrics and its log lines give the timeline. Needs root. Prints a table; with --out, also writes
// results.tsv and each run's log and metrics there (run.sh plots them).
//
//   handoff_bench --seamless BUILD/proxy/seamless [--connections 100,1000,5000]
//                 [--event upgrade|crash|upgrade,crash] [--interval-ms auto|N]
//                 [--chunk 64] [--nodelay on|off] [--baseline-ms 2000] [--connect-window 4]
//                 [--probes 10] [--probe-interval-ms 5]
//                 [--autogroup-nice N] [--perf PREFIX] [--out DIR]
//
// --probes N adds N connections (spread among the N bulk ones) that write every
// --probe-interval-ms and are reported apart: the bulk interval at 1,000 connections
// (100 ms) leaves the stall that coarse, the probes resolve it to a few ms.
//
// Runs go by connection count, then event (upgrade 100, crash 100, upgrade 1000, ...).
// --perf PREFIX records the whole machine (perf record -a -g) from just before the
// signal for 4 s into PREFIX-EVENT-N.data: `perf report -i PREFIX-crash-1000.data
// --comm seamless`.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "tests/bench/handoff/harness.h"
#include "tests/bench/handoff/report.h"
#include "tests/bench/handoff/traffic.h"

extern char** environ;

namespace seamless::bench {
namespace {

using std::chrono::milliseconds;

constexpr uint16_t kListenPort = 7000;
constexpr uint16_t kBackendPort = 7001;
constexpr uint16_t kMetricsPort = 9100;

struct Args {
  std::string seamless;
  std::vector<size_t> connections = {100, 1000, 5000};
  std::vector<Event> events = {Event::kUpgrade};
  int interval_ms = 0;  // 0 = auto
  size_t chunk = 64;
  bool nodelay = false;
  int baseline_ms = 2000;
  size_t connect_window = 4;  // connections opened but not yet at the backend
  // 10 probes at 5 ms add 2,000 writes per second per direction to the 10,000 of the
  // bulk (auto_interval_ms), which the machine still carries; 5 ms is a thirtieth of
  // issue 6's 150 ms.
  size_t probes = 10;
  int probe_interval_ms = 5;
  std::optional<int> autogroup_nice;
  std::string perf_out;  // perf record -a -g around the event, into <perf_out>-EVENT-N.data
  std::string out;
};

[[noreturn]] void usage(const std::string& why) {
  std::fprintf(stderr,
               "handoff_bench: %s\nusage: handoff_bench --seamless PATH [--connections "
               "100,1000,5000] [--event upgrade,crash] [--interval-ms auto|N] [--chunk BYTES] "
               "[--nodelay on|off] [--probes N] [--probe-interval-ms MS] "
               "[--baseline-ms MS] [--connect-window N] [--autogroup-nice N] [--perf PREFIX] "
               "[--out DIR]\n",
               why.c_str());
  std::exit(2);
}

Args parse_args(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (i + 1 >= argc) usage("missing value for " + flag);
    const std::string value = argv[++i];
    if (flag == "--seamless") {
      a.seamless = value;
    } else if (flag == "--connections") {
      a.connections.clear();
      for (size_t at = 0; at <= value.size();) {
        size_t comma = value.find(',', at);
        if (comma == std::string::npos) comma = value.size();
        a.connections.push_back(std::stoul(value.substr(at, comma - at)));
        at = comma + 1;
      }
    } else if (flag == "--event") {
      a.events.clear();
      for (size_t at = 0; at <= value.size();) {
        size_t comma = value.find(',', at);
        if (comma == std::string::npos) comma = value.size();
        const std::optional<Event> e = parse_event(value.substr(at, comma - at));
        if (!e) usage("--event takes upgrade, crash or both: " + value);
        a.events.push_back(*e);
        at = comma + 1;
      }
    } else if (flag == "--interval-ms") {
      a.interval_ms = value == "auto" ? 0 : std::stoi(value);
    } else if (flag == "--nodelay") {
      a.nodelay = value == "1" || value == "on";
    } else if (flag == "--chunk") {
      a.chunk = std::stoul(value);
    } else if (flag == "--probes") {
      a.probes = std::stoul(value);
    } else if (flag == "--probe-interval-ms") {
      a.probe_interval_ms = std::stoi(value);
    } else if (flag == "--perf") {
      a.perf_out = value;
    } else if (flag == "--autogroup-nice") {
      a.autogroup_nice = std::stoi(value);
    } else if (flag == "--connect-window") {
      a.connect_window = std::stoul(value);
    } else if (flag == "--baseline-ms") {
      a.baseline_ms = std::stoi(value);
    } else if (flag == "--out") {
      a.out = value;
    } else {
      usage("unknown flag " + flag);
    }
  }
  if (a.seamless.empty()) usage("--seamless is required");
  return a;
}

// Two shared cores carry both the bench and the proxy, so the aggregate rate has to
// stay where the worker keeps up (baseline gaps close to the interval): one write per
// 5 ms per connection up to 200 connections (40,000 per second per direction at 200),
// then 10,000 per second per direction (interval N/10 ms). Measured on this machine:
// at 20,000 per second the baseline gaps grew to 160 ms at 1,000 connections (50 ms
// interval) and to 560 ms at 5,000 (250 ms interval), and the worker's quiesce then
// waited for a saturated loop. The interval bounds the gap's resolution (traffic.h).
int auto_interval_ms(size_t n) { return n <= 200 ? 5 : int((n + 9) / 10); }

std::string config_yaml() {
  const std::string host = Topology::kHost4;
  return "services:\n"
         "  - name: bench\n"
         "    listen: \"" + host + ":" + std::to_string(kListenPort) + "\"\n"
         "    backends:\n"
         "      - address: \"" + std::string(Topology::kPeer4) + ":" +
         std::to_string(kBackendPort) + "\"\n"
         "    max_connections: 10000\n"
         "handoff:\n"
         "  dir: \"@STATE@/handoff\"\n"
         "  lock_timeout: 30s\n"
         "  nft_table: slhbench\n"
         "drain_timeout: 1s\n"
         "metrics:\n"
         "  listen: \"" + host + ":" + std::to_string(kMetricsPort) + "\"\n";
}

sockaddr_in ipv4(const char* host, uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  ::inet_pton(AF_INET, host, &a.sin_addr);
  return a;
}

UniqueFd backend_listener(const Topology& topo) {
  InNamespace in(topo.peer_fd());
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  const int one = 1;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  const sockaddr_in a = ipv4(Topology::kPeer4, kBackendPort);
  if (!fd || ::bind(fd.get(), reinterpret_cast<const sockaddr*>(&a), sizeof(a)) != 0 ||
      ::listen(fd.get(), 8192) != 0) {
    throw std::runtime_error(std::string("backend listener: ") + std::strerror(errno));
  }
  return fd;
}

// Connects one client through seamless and writes its index header (blocking).
UniqueFd connect_client(const Topology& topo, uint32_t index) {
  UniqueFd fd;
  {
    InNamespace in(topo.peer_fd());
    fd.reset(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  }
  const sockaddr_in a = ipv4(Topology::kHost4, kListenPort);
  if (!fd || ::connect(fd.get(), reinterpret_cast<const sockaddr*>(&a), sizeof(a)) != 0 ||
      ::send(fd.get(), &index, sizeof(index), MSG_NOSIGNAL) != ssize_t(sizeof(index))) {
    throw std::runtime_error("client " + std::to_string(index) + ": " + std::strerror(errno));
  }
  ::fcntl(fd.get(), F_SETFL, ::fcntl(fd.get(), F_GETFL) | O_NONBLOCK);
  return fd;
}

int64_t wall_ms() {
  return std::chrono::duration_cast<milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

TcpCounters peer_tcp_counters(const Topology& topo) {
  return parse_tcp_counters(capture_in(topo.peer(), "cat /proc/net/snmp /proc/net/netstat"));
}

void save(const std::string& out, const std::string& name, const std::string& text) {
  if (out.empty()) return;
  std::ofstream(out + "/" + name) << text;
}

// Sends the event and waits for its "handoff done" line.
void trigger(const SeamlessRun& seamless, Event event, size_t log_from) {
  if (event == Event::kUpgrade) {
    seamless.signal(SIGUSR2);
  } else {
    // The keeper's one child between handoffs is the worker; found just now, so that
    // it is still the worker that started serving these connections.
    const pid_t worker = seamless.worker_pid();
    if (::kill(worker, SIGKILL) != 0) {
      throw std::runtime_error("kill worker " + std::to_string(worker) + ": " +
                               std::strerror(errno));
    }
  }
  seamless.wait_for_log(std::string(event_name(event)) + " handoff done", milliseconds(120000),
                        log_from);
}

// What must not appear in seamless's log during the run: signs that the event did not
// take the path it was meant to (an upgrade that fell back to the crash path, a crash
// recovery that could not checkpoint or restore every pair).
std::vector<std::string> bad_log_lines(const std::string& log, Event event) {
  std::vector<const char*> bad = {
      "keeper link broken", "restore failed",          "restore: ",     "cannot start a worker",
      "crash loop",         "crash checkpoint failed", "upgrade failed"};
  bad.push_back(event == Event::kUpgrade ? "crash handoff done" : "upgrade handoff done");
  if (event == Event::kUpgrade) bad.push_back("while serving");
  std::vector<std::string> found;
  for (const char* b : bad) {
    if (log.find(b) != std::string::npos) {
      found.push_back(std::string("seamless logged \"") + b + "\"");
    }
  }
  if (event == Event::kCrash) {
    size_t deaths = 0;
    for (size_t at = 0; (at = log.find("while serving", at)) != std::string::npos; ++at) ++deaths;
    if (deaths != 1) {
      found.push_back("seamless logged " + std::to_string(deaths) + " worker deaths, not one");
    }
  }
  return found;
}

RunResult run_one(const Args& args, size_t n, Event event) {
  TrafficOptions options;
  options.connections = n;
  options.interval_ms = args.interval_ms > 0 ? args.interval_ms : auto_interval_ms(n);
  options.chunk = args.chunk;
  options.nodelay = args.nodelay;
  options.probes = args.probes;
  options.probe_interval_ms = args.probe_interval_ms;
  const size_t total = options.total();
  RunResult result;
  result.event = event;
  result.options = options;
  const std::string tag = std::string(event_name(event)) + "-" + std::to_string(n);

  Topology topo;
  SeamlessRun seamless(topo.host(), args.seamless, config_yaml());
  // For run.sh, should this bench die before its destructors run.
  save(args.out, "seamless-" + tag + ".pid", std::to_string(seamless.pid()));
  seamless.wait_for_log("worker ready", milliseconds(15000));

  TrafficState state(options);
  TrafficSide backend(TrafficSide::Role::kBackend, state);
  TrafficSide client(TrafficSide::Role::kClient, state);
  backend.set_listener(backend_listener(topo));
  backend.start();
  // A few connections in flight at a time: a burst makes the worker's control-channel
  // sends fail with EAGAIN (net.unix.max_dgram_qlen is 10), after which seamless loses
  // crash protection and an upgrade turns into a crash handoff that resets pairs
  // (reported; --connect-window 0 = no pacing reproduces it).
  for (uint32_t i = 0; i < total; ++i) {
    if (args.connect_window > 0 &&
        !wait_until([&] { return i < backend.identified() + args.connect_window; },
                    milliseconds(10000))) {
      throw std::runtime_error("connection " + std::to_string(backend.identified()) +
                               " never reached the backend");
    }
    if (interrupted()) throw std::runtime_error("interrupted");
    client.add_connection(connect_client(topo, i), i);
  }
  if (!wait_until([&] { return backend.identified() == total; }, milliseconds(60000))) {
    throw std::runtime_error("the backend saw " + std::to_string(backend.identified()) + " of " +
                             std::to_string(total) + " connections");
  }
  client.start();
  state.start_ns = now_ns() + 10000000;
  std::this_thread::sleep_for(milliseconds(1000));  // warm-up: cwnd, caches, pacing settles
  const TcpCounters baseline_start = peer_tcp_counters(topo);
  state.phase = kBaseline;
  const int64_t baseline_mono = now_ns();
  std::this_thread::sleep_for(milliseconds(args.baseline_ms));

  const TcpCounters before = peer_tcp_counters(topo);
  result.tcp_baseline = before.minus(baseline_start);
  const size_t log_from = seamless.log().size();
  pid_t perf = -1;
  if (!args.perf_out.empty()) {
    const std::string file = args.perf_out + "-" + tag + ".data";
    std::vector<std::string> words = {"perf", "record", "-q", "-F", "4000", "-a", "-g",
                                      "-o",   file,     "--", "sleep", "4"};
    std::vector<char*> argv;
    for (std::string& w : words) argv.push_back(w.data());
    argv.push_back(nullptr);
    if (::posix_spawnp(&perf, "perf", nullptr, nullptr, argv.data(), environ) != 0) perf = -1;
    std::this_thread::sleep_for(milliseconds(300));  // let it start sampling
  }
  state.phase = kHandoff;
  const int64_t signal_wall = wall_ms();
  const int64_t signal_mono = now_ns();
  trigger(seamless, event, log_from);
  const int64_t done_mono = now_ns();
  // The window closes once every direction of every live connection has delivered
  // after the handoff was seen done (so each stall ended inside the window).
  auto resumed = [&] {
    for (size_t i = 0; i < total; ++i) {
      for (Direction d : {kUp, kDown}) {
        if (state.last_delivery(d, i).load() < done_mono) return false;
      }
    }
    return true;
  };
  result.resumed = wait_until(
      [&] { return resumed() || client.error_count() + backend.error_count() > 0; },
      milliseconds(10000)) && resumed();
  result.window_ms = double(now_ns() - signal_mono) / 1e6;
  state.phase = kAfter;
  std::this_thread::sleep_for(milliseconds(500));  // bytes keep flowing and keep being checked
  if (perf > 0) ::waitpid(perf, nullptr, 0);
  state.stop = true;
  client.join();
  backend.join();
  result.tcp = peer_tcp_counters(topo).minus(before);

  const std::string metrics = capture_in(
      topo.host(), "curl -s --max-time 5 http://" + std::string(Topology::kHost4) + ":" +
                       std::to_string(kMetricsPort) + "/metrics");
  result.phases = parse_phase_metrics(metrics);
  const std::string log = seamless.log();
  result.timeline = parse_log_timeline(log, signal_wall, event);
  // The event must have taken its own path: e.g. a worker that lost its link exits 1 on
  // quiesce and the keeper then runs the crash path instead of the upgrade.
  for (const std::string& bad : bad_log_lines(log, event)) {
    result.errors.push_back(bad);
    ++result.error_count;
  }
  for (TrafficSide* side : {&client, &backend}) {
    for (const std::string& e : side->errors()) result.errors.push_back(e);
    result.error_count += side->error_count();
  }
  // When the baseline's worst gaps ended: one moment for all connections points at a
  // hiccup of the whole system rather than at pacing.
  std::vector<int64_t> ends;
  for (const auto* side : {&client, &backend}) {
    for (const DirectionStats& d : side->stats()) {
      if (d.max_gap_end_ns[kBaseline] != 0) ends.push_back(d.max_gap_end_ns[kBaseline]);
    }
  }
  if (!ends.empty()) {
    std::nth_element(ends.begin(), ends.begin() + ends.size() / 2, ends.end());
    result.baseline_gap_end_ms = double(ends[ends.size() / 2] - baseline_mono) / 1e6;
  }
  result.down = side_summary(client.stats(), options, false);
  result.up = side_summary(backend.stats(), options, false);
  result.combined = combined_summary(client.stats(), backend.stats(), options, false);
  result.probes = combined_summary(client.stats(), backend.stats(), options, true);
  save(args.out, "seamless-" + tag + ".log", log);
  save(args.out, "metrics-" + tag + ".txt", metrics);
  return result;  // sockets close, then seamless stops, then the namespaces go
}

RunResult run_and_clean(const Args& args, size_t n, Event event) {
  struct RemovePid {
    const Args& args;
    std::string file;
    ~RemovePid() {
      if (!args.out.empty()) std::filesystem::remove(args.out + "/" + file);
    }
  } remove_pid{args,
               "seamless-" + std::string(event_name(event)) + "-" + std::to_string(n) + ".pid"};
  return run_one(args, n, event);
}

// With autogroup scheduling (kernel.sched_autogroup_enabled), CPU is shared between
// sessions first and nice values count only within one: on a machine busy with other
// sessions' builds, the bench, the keeper and the worker together got a fraction of a
// core, and the baseline showed 2 s gaps. A session of its own, at a given nice,
// makes the figures about seamless rather than about the neighbours.
void set_autogroup_nice(int nice) {
  (void)::setsid();
  std::ofstream group("/proc/self/autogroup");
  group << nice << std::endl;
  if (!group) std::fprintf(stderr, "handoff_bench: cannot set the autogroup's nice to %d\n", nice);
}

void raise_fd_limit() {
  rlimit limit{};
  ::getrlimit(RLIMIT_NOFILE, &limit);
  limit.rlim_cur = limit.rlim_max;
  ::setrlimit(RLIMIT_NOFILE, &limit);
}

}  // namespace
}  // namespace seamless::bench

int main(int argc, char** argv) {
  using namespace seamless::bench;
  const Args args = parse_args(argc, argv);
  std::signal(SIGPIPE, SIG_IGN);
  install_interrupt_handlers();
  raise_fd_limit();
  if (args.autogroup_nice) set_autogroup_nice(*args.autogroup_nice);
  if (!args.out.empty()) std::filesystem::create_directories(args.out);
  std::vector<RunResult> results;
  int rc = 0;
  for (size_t n : args.connections) {
    for (Event event : args.events) {
      std::fprintf(stderr, "handoff_bench: %s, %zu connections ...\n", event_name(event), n);
      try {
        results.push_back(run_and_clean(args, n, event));
        print_run_details(stderr, results.back());
        if (!results.back().errors.empty() || !results.back().resumed) rc = 1;
      } catch (const std::exception& e) {
        std::fprintf(stderr, "handoff_bench: %s, %zu connections: %s\n", event_name(event), n,
                     e.what());
        rc = 1;
      }
      if (interrupted()) break;
    }
    if (interrupted()) break;
  }
  print_table(stdout, results);
  if (!args.out.empty()) write_tsv(args.out + "/results.tsv", results);
  return rc;
}
