#include "tests/bench/handoff/harness.h"

#include <fcntl.h>
#include <sched.h>
#include <spawn.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <vector>

extern char** environ;

namespace seamless::bench {
namespace {

std::atomic<bool> g_interrupted{false};

void on_interrupt(int) { g_interrupted = true; }

int sh(const std::string& command) {
  const int status = std::system(command.c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace

const char* event_name(Event e) { return e == Event::kCrash ? "crash" : "upgrade"; }

std::optional<Event> parse_event(const std::string& name) {
  if (name == "upgrade") return Event::kUpgrade;
  if (name == "crash") return Event::kCrash;
  return std::nullopt;
}

void install_interrupt_handlers() {
  struct sigaction sa{};
  sa.sa_handler = &on_interrupt;
  sigemptyset(&sa.sa_mask);
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGTERM, &sa, nullptr);
}

bool interrupted() { return g_interrupted.load(); }

void must_sh(const std::string& command) {
  if (const int rc = sh(command); rc != 0) {
    throw std::runtime_error("command failed (" + std::to_string(rc) + "): " + command);
  }
}

bool wait_until(const std::function<bool()>& condition, std::chrono::milliseconds timeout) {
  const auto until = std::chrono::steady_clock::now() + timeout;
  while (!condition()) {
    if (interrupted()) throw std::runtime_error("interrupted");
    if (std::chrono::steady_clock::now() >= until) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

Topology::Topology() {
  static int counter = 0;
  const std::string base = "sl-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
  peer_ = base + "-peer";
  host_ = base + "-host";
  must_sh("ip netns add " + peer_);
  made_peer_ = true;
  must_sh("ip netns add " + host_);
  made_host_ = true;
  // veth names: at most 15 characters, unique per run.
  const std::string tag = std::to_string(::getpid() % 100000) + "x" + std::to_string(counter);
  const std::string vp = "slbp" + tag, vh = "slbh" + tag;
  must_sh("ip link add " + vp + " netns " + peer_ + " type veth peer name " + vh + " netns " +
          host_);
  for (auto [ns, dev, addr] : {std::tuple{peer_, vp, kPeer4}, std::tuple{host_, vh, kHost4}}) {
    must_sh("ip -n " + ns + " link set lo up");
    must_sh("ip -n " + ns + " addr add " + std::string(addr) + "/24 dev " + dev);
    must_sh("ip -n " + ns + " link set " + dev + " up");
    // Room for 5,000 connections in each direction's accept queue.
    must_sh("ip netns exec " + ns + " sysctl -qw net.core.somaxconn=8192");
  }
  peer_fd_.reset(::open(("/run/netns/" + peer_).c_str(), O_RDONLY | O_CLOEXEC));
  if (!peer_fd_) throw std::runtime_error("open /run/netns/" + peer_);
}

Topology::~Topology() {
  peer_fd_.reset();
  // The veth pair and seamless's nftables table go with the namespaces.
  if (made_host_) sh("ip netns del " + host_);
  if (made_peer_) sh("ip netns del " + peer_);
}

InNamespace::InNamespace(int netns_fd)
    : previous_(::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC)) {
  if (!previous_ || ::setns(netns_fd, CLONE_NEWNET) != 0) {
    throw std::runtime_error(std::string("setns: ") + std::strerror(errno));
  }
}

InNamespace::~InNamespace() { (void)::setns(previous_.get(), CLONE_NEWNET); }

SeamlessRun::SeamlessRun(const std::string& netns, const std::string& binary,
                         const std::string& config_yaml) {
  char dir[] = "/tmp/sl-hbench-XXXXXX";
  if (::mkdtemp(dir) == nullptr) throw std::runtime_error("mkdtemp");
  dir_ = dir;
  // The handoff file goes where production puts it, on a tmpfs (/run/seamless by
  // default), not on this machine's /tmp (a disk: each fsync would be timed too).
  char state[] = "/dev/shm/sl-hbench-XXXXXX";
  if (::mkdtemp(state) == nullptr) throw std::runtime_error("mkdtemp /dev/shm");
  state_dir_ = state;
  const std::string exe = dir_ + "/seamless";
  std::filesystem::copy_file(binary, exe);
  std::string yaml = config_yaml;
  for (size_t at; (at = yaml.find("@DIR@")) != std::string::npos;) yaml.replace(at, 5, dir_);
  for (size_t at; (at = yaml.find("@STATE@")) != std::string::npos;) yaml.replace(at, 7, state_dir_);
  const std::string config = dir_ + "/seamless.yaml";
  std::ofstream(config) << yaml;
  const std::string log = dir_ + "/seamless.log";

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  std::vector<std::string> args = {"ip", "netns", "exec", netns, exe, "run", "--config", config};
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  // `ip netns exec` execs the command in place: the PID is the keeper's.
  const int rc = ::posix_spawnp(&pid_, "ip", &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) {
    std::filesystem::remove_all(dir_);
    std::filesystem::remove_all(state_dir_);
    throw std::runtime_error(std::string("spawn seamless: ") + std::strerror(rc));
  }
}

SeamlessRun::~SeamlessRun() {
  if (stop(std::chrono::seconds(10)) < 0) {
    std::fprintf(stderr, "handoff_bench: seamless %d did not stop on SIGTERM; killed\n", pid_);
  }
  std::filesystem::remove_all(dir_);
  std::filesystem::remove_all(state_dir_);
}

std::string SeamlessRun::log() const { return read_file(dir_ + "/seamless.log"); }

void SeamlessRun::wait_for_log(const std::string& text, std::chrono::milliseconds timeout,
                               size_t from) const {
  std::string seen;
  if (wait_until(
          [&] {
            seen = log();
            return seen.size() > from && seen.find(text, from) != std::string::npos;
          },
          timeout)) {
    return;
  }
  const size_t tail = seen.size() > 3000 ? seen.size() - 3000 : 0;
  throw std::runtime_error("no \"" + text + "\" in seamless's log within " +
                           std::to_string(timeout.count()) + " ms; its tail:\n" +
                           seen.substr(tail));
}

void SeamlessRun::signal(int signum) const {
  if (pid_ > 0 && !exited_) ::kill(pid_, signum);
}

pid_t SeamlessRun::worker_pid() const {
  const std::string path =
      "/proc/" + std::to_string(pid_) + "/task/" + std::to_string(pid_) + "/children";
  std::istringstream children(read_file(path));
  std::vector<pid_t> pids;
  for (pid_t p; children >> p;) pids.push_back(p);
  if (pids.size() != 1) {
    throw std::runtime_error("the keeper " + std::to_string(pid_) + " has " +
                             std::to_string(pids.size()) + " children, not one worker");
  }
  return pids.front();
}

int SeamlessRun::stop(std::chrono::milliseconds timeout) {
  if (pid_ <= 0 || exited_) return 0;
  ::kill(pid_, SIGTERM);
  int status = 0;
  const auto until = std::chrono::steady_clock::now() + timeout;
  while (::waitpid(pid_, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() >= until) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, &status, 0);
      exited_ = true;
      return -1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  exited_ = true;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

std::string capture_in(const std::string& netns, const std::string& command) {
  const std::string full = "ip netns exec " + netns + " " + command;
  FILE* pipe = ::popen(full.c_str(), "r");
  if (pipe == nullptr) throw std::runtime_error("popen " + full);
  std::string out;
  char buf[4096];
  for (size_t n; (n = std::fread(buf, 1, sizeof(buf), pipe)) > 0;) out.append(buf, n);
  ::pclose(pipe);
  return out;
}

std::map<std::string, PhaseSeconds> parse_phase_metrics(const std::string& page) {
  std::map<std::string, PhaseSeconds> phases;
  std::istringstream lines(page);
  const std::string name = "seamless_handoff_phase_seconds_";
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind(name, 0) != 0) continue;
    const size_t brace = line.find('{');
    const std::string kind = line.substr(name.size(), brace - name.size());
    if (kind != "sum" && kind != "count") continue;
    const size_t p = line.find("phase=\"");
    if (p == std::string::npos) continue;
    const size_t e = line.find('"', p + 7);
    const std::string phase = line.substr(p + 7, e - p - 7);
    const double value = std::strtod(line.c_str() + line.rfind(' ') + 1, nullptr);
    (kind == "sum" ? phases[phase].sum : phases[phase].count) = value;
  }
  return phases;
}

namespace {

// "2025-01-02T03:04:05.678Z ..." -> ms since the epoch; -1 if the line has no time.
int64_t line_wall_ms(const std::string& line) {
  tm t{};
  const char* rest = ::strptime(line.c_str(), "%Y-%m-%dT%H:%M:%S", &t);
  if (rest == nullptr || *rest != '.') return -1;
  return int64_t(::timegm(&t)) * 1000 + std::strtol(rest + 1, nullptr, 10);
}

}  // namespace

LogTimeline parse_log_timeline(const std::string& log, int64_t start_wall_ms, Event event) {
  LogTimeline t;
  std::istringstream lines(log);
  const bool crash = event == Event::kCrash;
  const char* done_text = crash ? "crash handoff done" : "upgrade handoff done";
  // Marks of the new generation only count once the old one has handed over: after
  // the exec (upgrade), after the crash checkpoint (crash).
  bool handed_over = false;
  for (std::string line; std::getline(lines, line);) {
    const int64_t ms = line_wall_ms(line);
    // Log times are truncated to the ms: a line of the signal's own ms counts.
    if (ms < 0 || ms < start_wall_ms - 1) continue;
    const double at = double(ms - start_wall_ms);
    auto first = [&](double& slot, const char* text) {
      if (slot < 0 && line.find(text) != std::string::npos) slot = at;
    };
    first(t.quiesce_asked, "quiescing worker");
    first(t.quiesced, "quiesced: handing over");
    if (t.worker_died < 0 && line.find("while serving") != std::string::npos) {
      t.worker_died = at;
      t.died_line = line;
    }
    if (t.checkpoint_done < 0 && line.find("checkpoint: ") != std::string::npos) {
      t.checkpoint_done = at;
      t.checkpoint_line = line;
      const size_t in = line.rfind(" in ");
      if (in != std::string::npos) t.checkpoint_ms = std::strtod(line.c_str() + in + 4, nullptr);
      if (crash) {
        handed_over = true;
        continue;  // the checkpoint line itself is no worker's
      }
    }
    first(t.exec, "upgrade: exec");
    if (!crash && line.find("upgrade: exec") != std::string::npos) handed_over = true;
    if (!crash && handed_over && line.find("(generation") != std::string::npos) {
      first(t.new_keeper, "running");
    }
    if (handed_over) first(t.worker_ready, " ready: ");
    if (t.done < 0 && line.find(done_text) != std::string::npos) {
      t.done = at;
      t.done_line = line;
    }
  }
  return t;
}

}  // namespace seamless::bench
