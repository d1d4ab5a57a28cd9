// A real protocol through the proxy: redis-benchmark against redis-server, 20,000
// requests of each kind over 50 connections, and not one error.
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <sstream>

#include "tests/integration/proxy/proxy_fixture.h"

extern char** environ;

namespace seamless::proxy::testing {
namespace {

constexpr uint16_t kRedisPort = 6379;  // free: the host namespace is the test's own

// redis-server in a namespace, in a temp dir, killed by PID at the end.
class RedisServer {
 public:
  explicit RedisServer(const seamless::testing::NetNamespace& ns) {
    char dir[] = "/tmp/seamless-redis-XXXXXX";
    EXPECT_NE(::mkdtemp(dir), nullptr);
    dir_ = dir;
    std::vector<std::string> args = {"ip",
                                     "netns",
                                     "exec",
                                     ns.name(),
                                     "redis-server",
                                     "--port",
                                     std::to_string(kRedisPort),
                                     "--bind",
                                     "127.0.0.1",
                                     "--save",
                                     "",
                                     "--appendonly",
                                     "no",
                                     "--dir",
                                     dir_};
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 1, (dir_ + "/redis.log").c_str(),
                                     O_WRONLY | O_CREAT | O_TRUNC, 0600);
    posix_spawn_file_actions_adddup2(&actions, 1, 2);
    EXPECT_EQ(::posix_spawnp(&pid_, "ip", &actions, nullptr, argv.data(), environ), 0);
    posix_spawn_file_actions_destroy(&actions);
  }
  ~RedisServer() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      int status = 0;
      ::waitpid(pid_, &status, 0);
    }
    std::filesystem::remove_all(dir_);
  }

 private:
  std::string dir_;
  pid_t pid_ = -1;
};

// Runs a shell command; returns its exit status and fills `output` (stdout + stderr).
int run(const std::string& command, std::string* output) {
  FILE* pipe = ::popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) return -1;
  char buf[4096];
  size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof(buf), pipe)) > 0) output->append(buf, n);
  const int status = ::pclose(pipe);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

TEST_F(ProxyTest, RedisBenchmarkThroughTheProxyHasNoErrors) {
  if (::access("/usr/bin/redis-server", X_OK) != 0 ||
      ::access("/usr/bin/redis-benchmark", X_OK) != 0) {
    GTEST_SKIP() << "redis-server / redis-tools not installed (scripts/deps.sh installs them)";
  }
  RedisServer redis(hosts.host);
  ASSERT_TRUE(wait_until([&] {
    std::string out;
    return run(hosts.host.exec("redis-cli -p 6379 ping"), &out) == 0 &&
           out.find("PONG") != std::string::npos;
  }));
  ServiceSpec s;
  s.backends = {"127.0.0.1:" + std::to_string(kRedisPort)};
  start(config_yaml(s));

  std::string out;
  const int rc = run(hosts.peer.exec("redis-benchmark -h 198.18.0.2 -p 7000 -n 20000 -c 50 "
                                     "-t set,get -q"),
                     &out);
  EXPECT_EQ(rc, 0) << out;
  // -q prints progress lines ending in \r, then one final line per test.
  std::replace(out.begin(), out.end(), '\r', '\n');
  std::istringstream lines(out);
  bool set = false, get = false;
  for (std::string line; std::getline(lines, line);) {
    if (line.find("requests per second") == std::string::npos) continue;
    if (line.rfind("SET: ", 0) == 0) set = true;
    if (line.rfind("GET: ", 0) == 0) get = true;
  }
  EXPECT_TRUE(set && get) << out;
  EXPECT_EQ(out.find("rror"), std::string::npos) << out;
  EXPECT_TRUE(wait_until([&] {
    return metric_value(metrics(), "seamless_connections_active", "service=\"pg\"") == 0.0;
  }));
}

}  // namespace
}  // namespace seamless::proxy::testing
