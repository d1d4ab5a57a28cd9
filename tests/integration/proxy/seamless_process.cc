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
                                 const std::string& wrapper) {
  char dir[] = "/tmp/seamless-proxy-test-XXXXXX";
  EXPECT_NE(::mkdtemp(dir), nullptr);
  dir_ = dir;
  const std::string config_path = dir_ + "/seamless.yaml";
  std::ofstream(config_path) << config_yaml;
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
  for (const char* a : {SEAMLESS_BINARY, "run", "--config"}) args.push_back(a);
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
    ::kill(pid_, SIGKILL);
    int status = 0;
    ::waitpid(pid_, &status, 0);
  }
  if (!dir_.empty()) std::filesystem::remove_all(dir_);
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
