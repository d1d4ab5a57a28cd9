// The packaged way to run seamless without root: a non-root user (nobody) runs a copy
// of the binary that carries file capabilities (setcap ...+ep, as the Docker image and a
// hand install do). With them it listens on a privileged port and forwards bytes; the
// same copy without them refuses to start, one line per missing capability, before it
// touches anything.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <pwd.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "tests/integration/proxy/client_io.h"
#include "tests/integration/proxy/test_backend.h"
#include "tests/integration/support/netns.h"
#include "tests/integration/support/streams.h"
#include "tests/integration/support/tcp.h"

extern char** environ;

namespace seamless::packaging {
namespace {

namespace fs = std::filesystem;
using proxy::testing::BackendBehaviour;
using proxy::testing::TestBackend;
using seamless::testing::Endpoints;
using seamless::testing::InNetns;
using seamless::testing::StreamPump;
using seamless::testing::TwoHosts;
using seamless::testing::wait_until;

constexpr uint16_t kPrivilegedPort = 700;  // below 1024: needs CAP_NET_BIND_SERVICE
constexpr uint16_t kBackendPort = 7101;
constexpr const char* kAllCaps = "cap_net_admin,cap_net_raw,cap_net_bind_service+ep";

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// A line of /proc/<pid>/status, e.g. "CapEff", without the key.
std::string proc_status(pid_t pid, const std::string& key) {
  std::istringstream lines(read_file("/proc/" + std::to_string(pid) + "/status"));
  for (std::string line; std::getline(lines, line);) {
    if (line.starts_with(key + ":")) {
      const size_t value = line.find_first_not_of(" \t", key.size() + 1);
      return value == std::string::npos ? "" : line.substr(value);
    }
  }
  return "";
}

size_t count_lines_with(const std::string& text, const std::string& part) {
  std::istringstream lines(text);
  size_t n = 0;
  for (std::string line; std::getline(lines, line);) n += line.find(part) != std::string::npos;
  return n;
}

// A child process (argv as given) with stdout and stderr in a file; killed by PID at
// the end if still running.
class Child {
 public:
  Child(const std::vector<std::string>& args, const std::string& log_path) : log_(log_path) {
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&actions, 1, log_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    posix_spawn_file_actions_adddup2(&actions, 1, 2);
    std::vector<std::string> copy = args;
    std::vector<char*> argv;
    for (std::string& a : copy) argv.push_back(a.data());
    argv.push_back(nullptr);
    const int rc = ::posix_spawnp(&pid_, argv[0], &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    EXPECT_EQ(rc, 0) << "spawn " << args[0];
  }
  ~Child() {
    if (pid_ > 0 && !status_) {
      ::kill(pid_, SIGKILL);
      int status = 0;
      ::waitpid(pid_, &status, 0);
    }
  }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  pid_t pid() const { return pid_; }
  std::string log() const { return read_file(log_); }
  void signal(int signum) const {
    if (pid_ > 0 && !status_) ::kill(pid_, signum);
  }
  // The exit status (128+N for signal N), or nullopt on timeout.
  std::optional<int> wait_exit(std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    wait_until(
        [&] {
          int status = 0;
          if (status_ || ::waitpid(pid_, &status, WNOHANG) != pid_) return status_.has_value();
          status_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
          return true;
        },
        timeout);
    return status_;
  }

 private:
  std::string log_;
  pid_t pid_ = -1;
  std::optional<int> status_;
};

class FileCapsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const passwd* nobody = ::getpwnam("nobody");
    ASSERT_NE(nobody, nullptr) << "no user 'nobody' on this machine";
    uid_ = nobody->pw_uid;
    gid_ = nobody->pw_gid;
    ASSERT_NE(uid_, 0u);

    char dir[] = "/tmp/seamless-caps-test-XXXXXX";
    ASSERT_NE(::mkdtemp(dir), nullptr);
    dir_ = dir;
    // nobody must reach the binary and the config, and create the handoff dir in run/.
    ASSERT_EQ(::chmod(dir_.c_str(), 0755), 0);
    binary_ = dir_ + "/seamless";
    fs::copy_file(SEAMLESS_BINARY, binary_);
    ASSERT_EQ(::chmod(binary_.c_str(), 0755), 0);
    ASSERT_EQ(::mkdir((dir_ + "/run").c_str(), 0700), 0);
    ASSERT_EQ(::chown((dir_ + "/run").c_str(), uid_, gid_), 0);
    handoff_dir_ = dir_ + "/run/seamless";
  }

  void TearDown() override {
    if (!dir_.empty()) fs::remove_all(dir_);
  }

  void set_caps(const std::string& caps) {
    seamless::testing::must_sh("setcap " + caps + " " + binary_);
  }

  std::string write_config(uint16_t port) {
    const std::string path = dir_ + "/seamless.yaml";
    std::ofstream(path) << "services:\n"
                        << "  - name: echo\n"
                        << "    listen: \"" << TwoHosts::kHost4 << ":" << port << "\"\n"
                        << "    backends:\n"
                        << "      - address: \"" << TwoHosts::kPeer4 << ":" << kBackendPort
                        << "\"\n"
                        << "handoff:\n"
                        << "  dir: " << handoff_dir_ << "\n"
                        << "  nft_table: seamless_caps_" << ::getpid() << "\n"
                        << "metrics:\n"
                        << "  listen: \"127.0.0.1:9100\"\n";
    ::chmod(path.c_str(), 0644);
    return path;
  }

  // `seamless run` as nobody in the host namespace: setpriv drops every id and
  // capability of root, so whatever the process holds comes from the file.
  std::unique_ptr<Child> run_as_nobody(const std::string& config_path) {
    return std::make_unique<Child>(
        std::vector<std::string>{"ip", "netns", "exec", hosts_.host.name(), "setpriv",
                                 "--reuid=" + std::to_string(uid_),
                                 "--regid=" + std::to_string(gid_), "--clear-groups",
                                 "--inh-caps=-all", "--", binary_, "run", "--config", config_path},
        dir_ + "/seamless.log");
  }

  // A connect from the peer namespace: the fd, or -errno.
  int try_connect(uint16_t port) {
    int fd = -1;
    {
      InNetns in(hosts_.peer);
      fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    }
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    ::inet_pton(AF_INET, TwoHosts::kHost4, &addr.sin_addr);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
      const int err = errno;
      ::close(fd);
      return -err;
    }
    seamless::testing::set_nonblocking(fd);
    return fd;
  }

  TwoHosts hosts_;
  uid_t uid_ = 0;
  gid_t gid_ = 0;
  std::string dir_, binary_, handoff_dir_;
};

TEST_F(FileCapsTest, NonRootWithFileCapsListensOnAPrivilegedPortAndForwards) {
  set_caps(kAllCaps);
  TestBackend echo(&hosts_.peer, TwoHosts::kPeer4, kBackendPort, BackendBehaviour{});
  std::unique_ptr<Child> proxy = run_as_nobody(write_config(kPrivilegedPort));

  int fd = -ECONNREFUSED;
  ASSERT_TRUE(wait_until([&] {
    if (proxy->wait_exit(std::chrono::milliseconds(0))) return true;  // died: stop waiting
    fd = try_connect(kPrivilegedPort);
    return fd >= 0;
  })) << proxy->log();
  ASSERT_GE(fd, 0) << "connect: " << std::strerror(-fd) << "\n" << proxy->log();
  UniqueFd client(fd);

  // It really is nobody, holding exactly the file's capabilities.
  EXPECT_EQ(proc_status(proxy->pid(), "Uid").substr(0, std::to_string(uid_).size()),
            std::to_string(uid_));
  const uint64_t effective = std::stoull(proc_status(proxy->pid(), "CapEff"), nullptr, 16);
  EXPECT_EQ(effective, (1ull << 10) | (1ull << 12) | (1ull << 13))  // BIND_SERVICE, ADMIN, RAW
      << "CapEff " << proc_status(proxy->pid(), "CapEff");

  // 4 MiB each way, every byte checked, no reset and no EOF.
  constexpr uint64_t kBytes = 4 << 20;
  StreamPump pump({Endpoints{client.get(), {7, 0, 0}, {7, 0, 0}}}, kBytes);
  const bool done = wait_until(
      [&] {
        const std::vector<Endpoints> ends = pump.progress();
        return !pump.errors().empty() || ends[0].in.received == kBytes;
      },
      std::chrono::seconds(60));
  pump.stop();
  EXPECT_TRUE(done) << "stream did not complete";
  EXPECT_EQ(pump.errors(), std::vector<std::string>{});
  EXPECT_EQ(echo.data_connections(), 1u);
  EXPECT_NE(proxy::testing::scrape(hosts_.host, 9100).find("seamless_connections_total"),
            std::string::npos);
  client.reset();

  proxy->signal(SIGTERM);
  EXPECT_EQ(proxy->wait_exit(std::chrono::seconds(30)), 0) << proxy->log();
  EXPECT_EQ(count_lines_with(proxy->log(), "seamless: needs"), 0u) << proxy->log();
}

TEST_F(FileCapsTest, TheSameCopyWithoutCapsRefusesWithOneLineEach) {
  const std::string config = write_config(kPrivilegedPort);
  std::unique_ptr<Child> proxy = run_as_nobody(config);
  EXPECT_EQ(proxy->wait_exit(), 1) << proxy->log();
  const std::string log = proxy->log();
  EXPECT_EQ(count_lines_with(log,
                             "seamless: needs CAP_NET_ADMIN (TCP_REPAIR and the nftables "
                             "flow lock); run as root or grant it: setcap "
                             "cap_net_admin,cap_net_raw,cap_net_bind_service+ep " +
                                 binary_),
            1u)
      << log;
  EXPECT_EQ(count_lines_with(log, "seamless: needs CAP_NET_RAW"), 1u) << log;
  EXPECT_EQ(count_lines_with(log, "seamless: needs CAP_NET_BIND_SERVICE"), 1u) << log;
  EXPECT_EQ(count_lines_with(log, "seamless: needs"), 3u) << log;

  // Nothing was touched: no listener, no handoff dir.
  EXPECT_EQ(try_connect(kPrivilegedPort), -ECONNREFUSED);
  EXPECT_FALSE(fs::exists(handoff_dir_));

  // Only the bind capability missing: that line alone.
  set_caps("cap_net_admin,cap_net_raw+ep");
  proxy = run_as_nobody(config);
  EXPECT_EQ(proxy->wait_exit(), 1) << proxy->log();
  EXPECT_EQ(count_lines_with(proxy->log(), "seamless: needs"), 1u) << proxy->log();
  EXPECT_EQ(count_lines_with(proxy->log(), "seamless: needs CAP_NET_BIND_SERVICE (to listen on " +
                                               std::string(TwoHosts::kHost4) + ":700"),
            1u)
      << proxy->log();
}

TEST_F(FileCapsTest, AHandoffDirItCannotCreateIsOneLine) {
  set_caps(kAllCaps);
  // root's and 0755: nobody can look in but not create the handoff dir there.
  ASSERT_EQ(::chown((dir_ + "/run").c_str(), 0, 0), 0);
  ASSERT_EQ(::chmod((dir_ + "/run").c_str(), 0755), 0);
  std::unique_ptr<Child> proxy = run_as_nobody(write_config(kPrivilegedPort));
  EXPECT_EQ(proxy->wait_exit(), 1) << proxy->log();
  EXPECT_EQ(count_lines_with(proxy->log(), "seamless: needs"), 1u) << proxy->log();
  EXPECT_EQ(count_lines_with(proxy->log(), "seamless: needs handoff.dir " + handoff_dir_), 1u)
      << proxy->log();
  EXPECT_EQ(try_connect(kPrivilegedPort), -ECONNREFUSED);
}

}  // namespace
}  // namespace seamless::packaging
