// `seamless ctl status|reload|upgrade` against a real `seamless run` in a test
// namespace: the command's exit code and text, and that what it reports really
// happened (the new backend is used, a connection crosses the upgrade byte-exact).
// Each test has its own handoff.dir, so its control socket is its own.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "tests/integration/proxy/proxy_fixture.h"

extern char** environ;

namespace seamless::proxy::testing {
namespace {

struct CtlRun {
  int exit_code = -1;
  std::string output;  // stdout and stderr
};

// A temp dir that goes away with the test.
class TempDir {
 public:
  TempDir() {
    char dir[] = "/tmp/seamless-ctl-test-XXXXXX";
    EXPECT_NE(::mkdtemp(dir), nullptr);
    path_ = dir;
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Runs `seamless ctl ARGS...` from the test's own namespace (a unix socket path works
// across network namespaces) and waits for it; it has its own --timeout.
CtlRun run_ctl(const std::vector<std::string>& ctl_args) {
  TempDir out;
  const std::string out_path = out.path() + "/out";
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                   0600);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  std::vector<std::string> args = {SEAMLESS_BINARY, "ctl"};
  args.insert(args.end(), ctl_args.begin(), ctl_args.end());
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = -1;
  const int rc = ::posix_spawn(&pid, SEAMLESS_BINARY, &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  CtlRun run;
  if (rc != 0) {
    ADD_FAILURE() << "spawn seamless ctl: " << rc;
    return run;
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  std::stringstream text;
  text << std::ifstream(out_path).rdbuf();
  run.output = text.str();
  return run;
}

// The config file a `seamless run` reads: the argument after --config on its command
// line (SeamlessProcess keeps it in its own temp dir).
std::string config_path_of(pid_t pid) {
  std::stringstream text;
  text << std::ifstream("/proc/" + std::to_string(pid) + "/cmdline").rdbuf();
  std::vector<std::string> args;
  std::string arg;
  while (std::getline(text, arg, '\0')) args.push_back(arg);
  for (size_t i = 0; i + 1 < args.size(); ++i) {
    if (args[i] == "--config") return args[i + 1];
  }
  ADD_FAILURE() << "no --config on the command line of " << pid;
  return "";
}

class CtlTest : public ProxyTest {
 protected:
  // The proxy stops before dir_ (its handoff dir and binary) goes.
  void TearDown() override { proxy.reset(); }

  std::string handoff_dir() const { return dir_.path() + "/handoff"; }
  std::string socket() const { return handoff_dir() + "/ctl.sock"; }
  std::string config(const std::vector<std::string>& backends) const {
    ServiceSpec service;
    service.backends = backends;
    return config_yaml(service, "handoff:\n  dir: \"" + handoff_dir() + "\"\n");
  }
  CtlRun ctl(const std::string& action) {
    return run_ctl({action, "--socket", socket(), "--timeout", "60s"});
  }
  void rewrite_config(const std::string& yaml) const {
    std::ofstream(config_path_of(proxy->pid()), std::ios::trunc) << yaml;
  }
  // Starts seamless from a copy of the binary in a temp dir, for upgrade tests: the
  // keeper execs the path it was started from, and the test may delete it.
  std::string start_from_copy(const std::string& yaml) {
    const std::string copy = dir_.path() + "/seamless";
    std::filesystem::copy_file(SEAMLESS_BINARY, copy);
    const std::string wrapper = dir_.path() + "/exec-copy.sh";
    // Called as: wrapper <SEAMLESS_BINARY> run --config F (see SeamlessProcess).
    std::ofstream(wrapper) << "#!/bin/sh\nshift\nexec " << copy << " \"$@\"\n";
    ::chmod(wrapper.c_str(), 0700);
    start(yaml, wrapper);
    return copy;
  }

  TempDir dir_;
};

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

TEST_F(CtlTest, CtlStatusPrintsTheKeepersPidAndState) {
  auto echo = backend(7101);
  start(config({"198.18.0.1:7101"}));
  const CtlRun run = ctl("status");
  EXPECT_EQ(run.exit_code, 0) << run.output;
  EXPECT_EQ(run.output.rfind("ok seamless ", 0), 0u) << run.output;
  EXPECT_TRUE(contains(run.output, "\npid: " + std::to_string(proxy->pid()) + "\n"))
      << run.output;
  EXPECT_TRUE(contains(run.output, "\nstate: serving\n")) << run.output;
  EXPECT_TRUE(contains(run.output, "\ngeneration: 0\n")) << run.output;
  const std::string config_path = config_path_of(proxy->pid());
  EXPECT_TRUE(contains(run.output, "\nconfig: " + config_path + "\n")) << run.output;
  EXPECT_TRUE(contains(run.output, "\nbinary: ")) << run.output;
  // The socket is found from the config as well, and is the keeper's alone.
  const CtlRun by_config = run_ctl({"status", "--config", config_path});
  EXPECT_EQ(by_config.exit_code, 0) << by_config.output;
  EXPECT_TRUE(contains(by_config.output, "pid: " + std::to_string(proxy->pid())));
  struct stat st {};
  ASSERT_EQ(::lstat(socket().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  // A clean exit removes it.
  proxy->signal(SIGTERM);
  EXPECT_EQ(proxy->wait_exit(), 0);
  EXPECT_NE(::access(socket().c_str(), F_OK), 0);
}

TEST(CtlCommandTest, CtlWithoutARunningSeamlessSaysSo) {
  TempDir dir;
  const std::string path = dir.path() + "/ctl.sock";
  const CtlRun run = run_ctl({"status", "--socket", path, "--timeout", "2s"});
  EXPECT_EQ(run.exit_code, 1);
  EXPECT_TRUE(contains(run.output, "is seamless running? no control socket at " + path))
      << run.output;
  const CtlRun usage = run_ctl({"restart", "--socket", path});
  EXPECT_EQ(usage.exit_code, 2) << usage.output;
}

TEST_F(CtlTest, CtlReloadAnswersOnceTheNewWorkerServesTheNewBackend) {
  auto old_backend = backend(7101);
  auto new_backend = backend(7102);
  start(config({"198.18.0.1:7101"}));
  UniqueFd before = client();
  ASSERT_TRUE(echo_roundtrip(before.get()));
  EXPECT_EQ(old_backend->data_connections(), 1u);

  rewrite_config(config({"198.18.0.1:7102"}));
  const CtlRun run = ctl("reload");
  EXPECT_EQ(run.exit_code, 0) << run.output;
  EXPECT_EQ(run.output.rfind("ok reload done: worker ", 0), 0u) << run.output;
  // Answered after the handoff, so the very next connection already goes to the new one.
  UniqueFd after = client();
  ASSERT_TRUE(echo_roundtrip(after.get()));
  EXPECT_EQ(new_backend->data_connections(), 1u);
  // The old connection kept its backend, untouched.
  EXPECT_TRUE(echo_roundtrip(before.get(), "still here"));
  EXPECT_EQ(old_backend->data_connections(), 1u);
  EXPECT_EQ(old_backend->resets() + old_backend->eofs(), 0u);
  const CtlRun status = ctl("status");
  EXPECT_TRUE(contains(status.output, "\npairs: 2\n")) << status.output;
}

TEST_F(CtlTest, CtlReloadOfABrokenConfigFailsWithTheKeepersReason) {
  auto echo = backend(7101);
  start(config({"198.18.0.1:7101"}));
  rewrite_config(config({"198.18.0.1:7101"}) + "bogus_key: 1\n");
  // --config finds the socket even in a config that does not validate.
  const CtlRun run =
      run_ctl({"reload", "--config", config_path_of(proxy->pid()), "--timeout", "60s"});
  EXPECT_EQ(run.exit_code, 1) << run.output;
  EXPECT_EQ(run.output.rfind("error reload refused, nothing changed", 0), 0u) << run.output;
  EXPECT_TRUE(contains(run.output, "bogus_key")) << run.output;
  // Nothing changed: still serving on the same worker.
  const CtlRun status = ctl("status");
  EXPECT_EQ(status.exit_code, 0);
  EXPECT_TRUE(contains(status.output, "state: serving")) << status.output;
  UniqueFd c = client();
  EXPECT_TRUE(echo_roundtrip(c.get()));
}

TEST_F(CtlTest, CtlUpgradeAnswersFromTheNewKeeperAndTheStreamsCrossIt) {
  auto echo = backend(7101);
  start_from_copy(config({"198.18.0.1:7101"}));
  constexpr uint64_t kTarget = 16 << 20;
  std::vector<UniqueFd> fds;
  std::vector<Endpoints> ends;
  for (uint32_t i = 0; i < 4; ++i) {
    fds.push_back(client());
    ends.push_back(Endpoints{fds.back().get(), {100 + i, 0, 0}, {100 + i, 0, 0}});
  }
  StreamPump pump(std::move(ends), kTarget);
  ASSERT_TRUE(wait_until([&] {
    for (const Endpoints& e : pump.progress()) {
      if (e.in.received < (1 << 20)) return false;
    }
    return true;
  }));

  const CtlRun run = ctl("upgrade");
  EXPECT_EQ(run.exit_code, 0) << run.output << proxy->log();
  EXPECT_EQ(run.output.rfind("ok upgrade done: keeper " + std::to_string(proxy->pid()), 0), 0u)
      << run.output;
  // It answered after the restore: the new image is already serving.
  const CtlRun status = ctl("status");
  EXPECT_TRUE(contains(status.output, "\ngeneration: 1\n")) << status.output;
  EXPECT_TRUE(contains(status.output, "\nstate: serving\n")) << status.output;

  ASSERT_TRUE(wait_until(
      [&] {
        if (!pump.errors().empty()) return true;
        for (const Endpoints& e : pump.progress()) {
          if (e.in.received < kTarget) return false;
        }
        return true;
      },
      std::chrono::seconds(120)));
  pump.stop();
  EXPECT_EQ(pump.errors(), std::vector<std::string>{});
  EXPECT_EQ(echo->resets(), 0u);
  EXPECT_EQ(echo->eofs(), 0u);
}

TEST_F(CtlTest, CtlUpgradeFailsWhenTheBinaryIsGone) {
  auto echo = backend(7101);
  const std::string binary = start_from_copy(config({"198.18.0.1:7101"}));
  UniqueFd before = client();
  ASSERT_TRUE(echo_roundtrip(before.get()));
  ASSERT_EQ(::unlink(binary.c_str()), 0);
  const CtlRun run = ctl("upgrade");
  EXPECT_EQ(run.exit_code, 1) << run.output;
  EXPECT_EQ(run.output.rfind("error upgrade refused, nothing changed: preflight", 0), 0u)
      << run.output;
  EXPECT_TRUE(contains(run.output, binary)) << run.output;
  // Still the same keeper and worker, serving.
  const CtlRun status = ctl("status");
  EXPECT_EQ(status.exit_code, 0);
  EXPECT_TRUE(contains(status.output, "\ngeneration: 0\n")) << status.output;
  EXPECT_TRUE(echo_roundtrip(before.get(), "after"));
}

}  // namespace
}  // namespace seamless::proxy::testing
