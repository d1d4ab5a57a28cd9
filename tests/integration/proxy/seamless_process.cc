#include "tests/integration/proxy/seamless_process.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

#include "tests/integration/support/tcp.h"

extern char** environ;

namespace seamless::proxy::testing {

SeamlessProcess::SeamlessProcess(const std::string& netns, const std::string& config_yaml,
                                 const std::string& wrapper, const std::string& binary) {
  char dir[] = "/tmp/seamless-proxy-test-XXXXXX";
  EXPECT_NE(::mkdtemp(dir), nullptr);
  dir_ = dir;
  const std::string config_path = this->config_path();
  rewrite_config(config_yaml);
  log_path_ = dir_ + "/seamless.log";

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, log_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                   0600);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  std::vector<std::string> args = {"ip", "netns", "exec", netns};
  std::istringstream words(wrapper);
  for (std::string w; words >> w;) args.push_back(w);
  args.push_back(binary.empty() ? std::string(SEAMLESS_BINARY) : binary);
  for (const char* a : {"run", "--config"}) args.push_back(a);
  args.push_back(config_path);
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  // `ip netns exec` execs the command in place: the PID is seamless's own.
  const int rc = ::posix_spawnp(&pid_, "ip", &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  EXPECT_EQ(rc, 0) << "spawn seamless";
}

SeamlessProcess::~SeamlessProcess() {
  if (pid_ > 0 && !status_) {
    // The worker first: without its keeper it would drain for drain_timeout.
    if (const pid_t worker = worker_pid(); worker > 0) ::kill(worker, SIGKILL);
    ::kill(pid_, SIGKILL);
    int status = 0;
    ::waitpid(pid_, &status, 0);
  }
  if (!dir_.empty()) std::filesystem::remove_all(dir_);
}

std::string SeamlessProcess::with_handoff_dir(const std::string& config_yaml) const {
  if (config_yaml.find("\nhandoff:") != std::string::npos) return config_yaml;
  return config_yaml + "handoff:\n  dir: \"" + dir_ + "/run\"\n";
}

void SeamlessProcess::rewrite_config(const std::string& config_yaml) const {
  // Written aside and renamed: a reload never reads a half-written file.
  const std::string tmp = config_path() + ".tmp";
  std::ofstream(tmp) << with_handoff_dir(config_yaml);
  std::filesystem::rename(tmp, config_path());
}

pid_t SeamlessProcess::worker_pid() const {
  if (pid_ <= 0) return -1;
  std::ifstream children("/proc/" + std::to_string(pid_) + "/task/" + std::to_string(pid_) +
                         "/children");
  pid_t child = -1;
  children >> child;
  return child;
}

size_t SeamlessProcess::count_in_log(const std::string& text) const {
  const std::string all = log();
  size_t n = 0;
  for (size_t at = all.find(text); at != std::string::npos; at = all.find(text, at + 1)) ++n;
  return n;
}

bool SeamlessProcess::wait_for_count(const std::string& text, size_t n,
                                     std::chrono::milliseconds timeout) const {
  if (seamless::testing::wait_until([&] { return count_in_log(text) >= n; }, timeout)) return true;
  ADD_FAILURE() << "fewer than " << n << " \"" << text << "\" in the log:\n" << log();
  return false;
}

std::string SeamlessProcess::log() const {
  std::ifstream in(log_path_);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

bool SeamlessProcess::wait_for_log(const std::string& text,
                                   std::chrono::milliseconds timeout) const {
  if (seamless::testing::wait_until([&] { return log().find(text) != std::string::npos; },
                                    timeout)) {
    return true;
  }
  ADD_FAILURE() << "no \"" << text << "\" in the log:\n" << log();
  return false;
}

void SeamlessProcess::signal(int signum) const {
  if (pid_ > 0 && !status_) ::kill(pid_, signum);
}

std::optional<int> SeamlessProcess::wait_exit(std::chrono::milliseconds timeout) {
  if (status_) return status_;
  seamless::testing::wait_until(
      [&] {
        int status = 0;
        if (::waitpid(pid_, &status, WNOHANG) != pid_) return false;
        status_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        return true;
      },
      timeout);
  return status_;
}

}  // namespace seamless::proxy::testing
