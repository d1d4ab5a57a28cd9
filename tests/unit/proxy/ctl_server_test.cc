// The control socket's server on a real loop and a real unix socket in a temp dir, with
// a fake keeper behind it: request parsing, answers, deferred answers, clients that
// misbehave, the socket file's life, and what an exec hands on.
#include "proxy/ctl_server.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include "proxy/ctl_waiters.h"

namespace seamless::proxy {
namespace {

using namespace std::chrono_literals;

class FakeKeeper : public CtlHandler {
 public:
  std::string status() override { return "fake keeper\npid: 42\n"; }
  void reload(CtlDone done) override { reloads.push_back(std::move(done)); }
  void upgrade(CtlDone done) override {
    if (refuse_upgrade) {
      done(false, "upgrade refused: preflight failed");  // answered at once, re-entrantly
      return;
    }
    upgrades.push_back(std::move(done));
  }
  std::vector<CtlDone> reloads, upgrades;
  bool refuse_upgrade = false;
};

UniqueFd connect_to(const std::string& path) {
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  path.copy(address.sun_path, path.size());
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&address), sizeof(address)) != 0) {
    return UniqueFd();
  }
  ::fcntl(fd.get(), F_SETFL, O_NONBLOCK);
  return fd;
}

class CtlServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char dir[] = "/tmp/seamless-ctl-test-XXXXXX";
    ASSERT_NE(::mkdtemp(dir), nullptr);
    dir_ = dir;
    path_ = ctl_socket_path(dir_ + "/handoff");
    ASSERT_EQ(uv_loop_init(&loop_), 0);
  }
  void TearDown() override {
    server_.reset();
    uv_run(&loop_, UV_RUN_DEFAULT);  // lets closed handles go
    EXPECT_EQ(uv_loop_close(&loop_), 0);
    std::filesystem::remove_all(dir_);
  }

  void start(CtlServerOptions options = {}) {
    server_ = std::make_unique<CtlServer>(&loop_, keeper_, null_logger(), options);
    const Status s = server_->listen(path_);
    ASSERT_TRUE(s.ok()) << s.error().message;
  }

  // Runs the loop until `fd` has reached EOF (the server closes after its answer) or
  // `timeout` passed; returns what arrived, nullopt if no EOF came.
  std::optional<std::string> read_answer(int fd, std::chrono::milliseconds timeout = 5s) {
    std::string got;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      uv_run(&loop_, UV_RUN_NOWAIT);
      char buf[4096];
      const ssize_t n = ::recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
      if (n > 0) {
        got.append(buf, size_t(n));
      } else if (n == 0) {
        return got;
      } else if (errno != EAGAIN) {
        return got.empty() ? std::nullopt : std::optional<std::string>(got);
      } else {
        ::usleep(1000);
      }
    }
    return std::nullopt;
  }

  // Runs the loop for a while (for things that must *not* happen).
  void spin(std::chrono::milliseconds duration) {
    const auto deadline = std::chrono::steady_clock::now() + duration;
    while (std::chrono::steady_clock::now() < deadline) {
      uv_run(&loop_, UV_RUN_NOWAIT);
      ::usleep(1000);
    }
  }

  std::optional<std::string> ask(const std::string& bytes) {
    UniqueFd fd = connect_to(path_);
    if (!fd) return std::nullopt;
    EXPECT_EQ(::send(fd.get(), bytes.data(), bytes.size(), MSG_NOSIGNAL), ssize_t(bytes.size()));
    return read_answer(fd.get());
  }

  std::string dir_, path_;
  uv_loop_t loop_{};
  FakeKeeper keeper_;
  std::unique_ptr<CtlServer> server_;
};

TEST(CtlRequestTest, ParsesTheThreeRequestsAndNothingElse) {
  EXPECT_EQ(parse_ctl_request("status"), CtlRequest::kStatus);
  EXPECT_EQ(parse_ctl_request("reload"), CtlRequest::kReload);
  EXPECT_EQ(parse_ctl_request("upgrade"), CtlRequest::kUpgrade);
  EXPECT_EQ(parse_ctl_request("  reload\r"), CtlRequest::kReload);
  EXPECT_EQ(parse_ctl_request("\tstatus "), CtlRequest::kStatus);
  for (const char* bad : {"", " ", "Status", "stat", "statusx", "reload now", "up grade", "\r"}) {
    EXPECT_EQ(parse_ctl_request(bad), std::nullopt) << bad;
  }
}

TEST(CtlRequestTest, RepliesStartWithOkOrErrorAndEndWithANewline) {
  EXPECT_EQ(format_ctl_reply(true, "done"), "ok done\n");
  EXPECT_EQ(format_ctl_reply(false, "bad\nline 2\n"), "error bad\nline 2\n");
  EXPECT_EQ(format_ctl_reply(true, ""), "ok\n");
  EXPECT_EQ(ctl_socket_path("/run/seamless"), "/run/seamless/ctl.sock");
  EXPECT_EQ(ctl_socket_path("/run/seamless/"), "/run/seamless/ctl.sock");
}

TEST_F(CtlServerTest, StatusIsAnsweredAtOnceAndTheConnectionClosed) {
  start();
  EXPECT_EQ(ask("status\n"), "ok fake keeper\npid: 42\n");
  EXPECT_EQ(server_->clients(), 0u);
}

TEST_F(CtlServerTest, TheSocketIsPrivateInAPrivateDirAndGoesAwayWithTheServer) {
  start();
  struct stat st {};
  ASSERT_EQ(::lstat(path_.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(::stat((dir_ + "/handoff").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  server_.reset();
  EXPECT_NE(::access(path_.c_str(), F_OK), 0);
}

TEST_F(CtlServerTest, UnknownLongAndEmptyRequestsGetAnError) {
  start();
  const std::optional<std::string> unknown = ask("restart\n");
  ASSERT_TRUE(unknown);
  EXPECT_EQ(unknown->rfind("error unknown request \"restart\"", 0), 0u) << *unknown;
  const std::optional<std::string> binary = ask(std::string("st\x01\xff\n", 5));
  ASSERT_TRUE(binary);
  EXPECT_EQ(binary->rfind("error unknown request \"st??\"", 0), 0u) << *binary;
  const std::optional<std::string> empty = ask("\n");
  ASSERT_TRUE(empty);
  EXPECT_EQ(empty->rfind("error unknown request", 0), 0u);
  const std::optional<std::string> flood = ask(std::string(1000, 's'));
  ASSERT_TRUE(flood);
  EXPECT_EQ(flood->rfind("error request too long", 0), 0u) << *flood;
  EXPECT_TRUE(keeper_.reloads.empty());
}

TEST_F(CtlServerTest, ARequestWithoutNewlineEndedByShutdownIsServed) {
  start();
  UniqueFd fd = connect_to(path_);
  ASSERT_TRUE(fd);
  ASSERT_EQ(::send(fd.get(), "status", 6, MSG_NOSIGNAL), 6);
  ::shutdown(fd.get(), SHUT_WR);
  EXPECT_EQ(read_answer(fd.get()), "ok fake keeper\npid: 42\n");
}

TEST_F(CtlServerTest, ReloadIsAnsweredWhenTheKeeperSaysItHasFinished) {
  start();
  UniqueFd fd = connect_to(path_);
  ASSERT_TRUE(fd);
  ASSERT_EQ(::send(fd.get(), "reload\n", 7, MSG_NOSIGNAL), 7);
  EXPECT_EQ(read_answer(fd.get(), 200ms), std::nullopt);  // still running
  ASSERT_EQ(keeper_.reloads.size(), 1u);
  keeper_.reloads[0](false, "reload refused, nothing changed: the config has errors\nx.yaml:1:1");
  keeper_.reloads[0](true, "a second answer is ignored");
  EXPECT_EQ(read_answer(fd.get()),
            "error reload refused, nothing changed: the config has errors\nx.yaml:1:1\n");
}

TEST_F(CtlServerTest, AnAnswerGivenDuringTheRequestReachesTheClient) {
  keeper_.refuse_upgrade = true;
  start();
  EXPECT_EQ(ask("upgrade\n"), "error upgrade refused: preflight failed\n");
  EXPECT_EQ(server_->clients(), 0u);
}

TEST_F(CtlServerTest, AClientThatLeftBeforeItsAnswerCostsNothing) {
  start();
  {
    UniqueFd fd = connect_to(path_);
    ASSERT_TRUE(fd);
    ASSERT_EQ(::send(fd.get(), "upgrade\n", 8, MSG_NOSIGNAL), 8);
    spin(50ms);
  }
  ASSERT_EQ(keeper_.upgrades.size(), 1u);
  keeper_.upgrades[0](true, "upgrade done");
  spin(20ms);
  EXPECT_EQ(server_->clients(), 0u);
  EXPECT_EQ(ask("status\n"), "ok fake keeper\npid: 42\n");  // still serving
}

TEST_F(CtlServerTest, ManyClientsAtOnceEachGetTheirOwnAnswer) {
  start();
  std::vector<UniqueFd> reloaders, statuses;
  for (int i = 0; i < 20; ++i) {
    reloaders.push_back(connect_to(path_));
    statuses.push_back(connect_to(path_));
    ASSERT_TRUE(reloaders.back() && statuses.back());
    ASSERT_EQ(::send(reloaders.back().get(), "reload\n", 7, MSG_NOSIGNAL), 7);
    ASSERT_EQ(::send(statuses.back().get(), "status\n", 7, MSG_NOSIGNAL), 7);
  }
  for (const UniqueFd& fd : statuses) EXPECT_EQ(read_answer(fd.get()), "ok fake keeper\npid: 42\n");
  ASSERT_EQ(keeper_.reloads.size(), 20u);
  for (size_t i = 0; i < 20; ++i) keeper_.reloads[i](true, "reload " + std::to_string(i));
  for (size_t i = 0; i < 20; ++i) {
    EXPECT_EQ(read_answer(reloaders[i].get()), "ok reload " + std::to_string(i) + "\n");
  }
}

TEST_F(CtlServerTest, ASilentClientIsDroppedAndDoesNotBlockOthers) {
  CtlServerOptions options;
  options.request_timeout = 100ms;
  start(options);
  UniqueFd silent = connect_to(path_);
  ASSERT_TRUE(silent);
  EXPECT_EQ(ask("status\n"), "ok fake keeper\npid: 42\n");
  const std::optional<std::string> dropped = read_answer(silent.get());
  ASSERT_TRUE(dropped);
  EXPECT_EQ(dropped->rfind("error no request", 0), 0u) << *dropped;
}

TEST_F(CtlServerTest, ClientsBeyondTheLimitAreTurnedAway) {
  CtlServerOptions options;
  options.max_clients = 2;
  start(options);
  UniqueFd a = connect_to(path_), b = connect_to(path_);
  spin(20ms);
  const std::optional<std::string> third = ask("status\n");
  ASSERT_TRUE(third);
  EXPECT_EQ(third->rfind("error too many control connections", 0), 0u) << *third;
  a.reset();
  ASSERT_EQ(::send(b.get(), "status\n", 7, MSG_NOSIGNAL), 7);
  EXPECT_EQ(read_answer(b.get()), "ok fake keeper\npid: 42\n");
}

TEST_F(CtlServerTest, AStaleSocketFileIsReplacedButALiveOneOrAFileIsNot) {
  start();
  server_.reset();
  // A keeper killed with SIGKILL leaves its socket file behind, with nobody listening.
  {
    UniqueFd stale(::socket(AF_UNIX, SOCK_STREAM, 0));
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    path_.copy(address.sun_path, path_.size());
    ASSERT_EQ(::bind(stale.get(), reinterpret_cast<const sockaddr*>(&address), sizeof(address)),
              0);
  }
  start();
  EXPECT_EQ(ask("status\n"), "ok fake keeper\npid: 42\n");
  // A second server on the same path would steal the first one's socket: refused.
  CtlServer second(&loop_, keeper_, null_logger());
  const Status s = second.listen(path_);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message.find("another process listens"), std::string::npos);
  server_.reset();
  std::ofstream(path_) << "not a socket";
  CtlServer third(&loop_, keeper_, null_logger());
  const Status t = third.listen(path_);
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.error().message.find("not a socket"), std::string::npos);
  EXPECT_EQ(std::ifstream(path_).peek(), 'n');  // left alone
}

TEST_F(CtlServerTest, AnswersAfterTheServerIsGoneAreHarmless) {
  start();
  UniqueFd fd = connect_to(path_);
  ASSERT_EQ(::send(fd.get(), "reload\n", 7, MSG_NOSIGNAL), 7);
  spin(50ms);
  ASSERT_EQ(keeper_.reloads.size(), 1u);
  server_.reset();  // a client still waiting hears why
  EXPECT_EQ(read_answer(fd.get()), "error seamless is stopping; the action did not finish\n");
  keeper_.reloads[0](true, "too late");
}

bool cloexec(int fd) { return (::fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0; }

TEST_F(CtlServerTest, AnExecHandsOnTheListenerAndTheWaitingClientsOnly) {
  start();
  UniqueFd waiting = connect_to(path_);
  ASSERT_EQ(::send(waiting.get(), "upgrade\n", 8, MSG_NOSIGNAL), 8);
  spin(50ms);
  const std::vector<std::string> env = server_->prepare_exec();
  std::vector<int> fds;
  for (const std::string& e : env) {
    const size_t eq = e.find('=');
    ASSERT_NE(eq, std::string::npos);
    ASSERT_EQ(::setenv(e.substr(0, eq).c_str(), e.substr(eq + 1).c_str(), 1), 0);
    if (e.find("_FD") != std::string::npos) fds.push_back(std::stoi(e.substr(eq + 1)));
  }
  ASSERT_EQ(fds.size(), 2u);  // the listener and the one waiting client
  for (int fd : fds) EXPECT_FALSE(cloexec(fd));
  server_->exec_failed();
  for (int fd : fds) EXPECT_TRUE(cloexec(fd));
  server_->prepare_exec();

  // The "new image": duplicates stand in for the fds an exec keeps.
  std::string listen_fd = std::getenv("SEAMLESS_CTL_LISTEN_FD");
  std::string waiting_fd = std::getenv("SEAMLESS_CTL_WAITING_FDS");
  const int listener_dup = ::dup(std::stoi(listen_fd));
  const int waiting_dup = ::dup(std::stoi(waiting_fd));
  UniqueFd not_a_socket(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  ASSERT_EQ(::setenv("SEAMLESS_CTL_LISTEN_FD", std::to_string(listener_dup).c_str(), 1), 0);
  ASSERT_EQ(::setenv("SEAMLESS_CTL_WAITING_FDS",
                     (std::to_string(waiting_dup) + ",notanfd," +
                      std::to_string(not_a_socket.get()))
                         .c_str(),
                     1),
            0);
  CtlInheritance inherited = CtlInheritance::from_environment();
  EXPECT_EQ(std::getenv("SEAMLESS_CTL_LISTEN_FD"), nullptr);
  EXPECT_EQ(std::getenv("SEAMLESS_CTL_PATH"), nullptr);
  EXPECT_EQ(std::getenv("SEAMLESS_CTL_WAITING_FDS"), nullptr);
  ASSERT_EQ(inherited.listener.get(), listener_dup);
  EXPECT_EQ(inherited.path, path_);
  ASSERT_EQ(inherited.waiting.size(), 1u);  // /dev/null is not a socket, "notanfd" no fd
  EXPECT_TRUE(cloexec(listener_dup));
  // The old image goes; its fds close, but the duplicates keep the sockets alive as an
  // exec would keep the originals. Handed on: no answer, and the socket file stays.
  server_.reset();
  EXPECT_EQ(::access(path_.c_str(), F_OK), 0);
  UniqueFd queued = connect_to(path_);  // waits in the backlog across the "exec"
  ASSERT_TRUE(queued);

  FakeKeeper next_keeper;
  CtlServer next(&loop_, next_keeper, null_logger());
  ASSERT_TRUE(next.listen(path_, std::move(inherited.listener), inherited.path).ok());
  std::vector<CtlDone> done = next.adopt_waiting(std::move(inherited.waiting));
  ASSERT_EQ(done.size(), 1u);
  // Not yet answered: the restore is still running.
  EXPECT_EQ(read_answer(waiting.get(), 100ms), std::nullopt);
  done[0](true, "upgrade done: keeper 2");
  EXPECT_EQ(read_answer(waiting.get()), "ok upgrade done: keeper 2\n");
  // The listener carried on: a client queued across the exec is served too.
  ASSERT_EQ(::send(queued.get(), "status\n", 7, MSG_NOSIGNAL), 7);
  EXPECT_EQ(read_answer(queued.get()), "ok fake keeper\npid: 42\n");
}

TEST(CtlWaitersTest, ARequestMadeDuringAHandoffWaitsForTheNextOne) {
  CtlWaiters waiters;
  std::vector<std::string> answers;
  auto record = [&](std::string who) {
    return [&answers, who](bool ok, std::string message) {
      answers.push_back(who + (ok ? " ok " : " error ") + message);
    };
  };
  waiters.add(CtlWaiters::Kind::kReload, record("first"));
  waiters.begin(CtlWaiters::Kind::kReload);
  waiters.add(CtlWaiters::Kind::kReload, record("second"));  // reads the newer config
  waiters.finish(true, "reload 1");
  EXPECT_EQ(answers, std::vector<std::string>{"first ok reload 1"});
  waiters.begin(CtlWaiters::Kind::kReload);
  waiters.finish(false, "reload 2 refused");
  EXPECT_EQ(answers.back(), "second error reload 2 refused");
  EXPECT_EQ(waiters.waiting(), 0u);
}

TEST(CtlWaitersTest, AnUpgradeAnswersPendingReloadsAndAFailedRestoreIsAFailure) {
  CtlWaiters waiters;
  std::vector<std::string> answers;
  auto record = [&](std::string who) {
    return [&answers, who](bool ok, std::string message) {
      answers.push_back(who + (ok ? " ok " : " error ") + message);
    };
  };
  waiters.add(CtlWaiters::Kind::kReload, record("reload"));
  waiters.add(CtlWaiters::Kind::kUpgrade, record("upgrade"));
  waiters.begin(CtlWaiters::Kind::kUpgrade);
  EXPECT_EQ(waiters.waiting(), 2u);
  waiters.restore_failed("handoff file corrupt");
  waiters.finish(true, "upgrade done");
  std::sort(answers.begin(), answers.end());
  EXPECT_EQ(answers, (std::vector<std::string>{
                         "reload error upgrade done\nrestore failed: handoff file corrupt",
                         "upgrade error upgrade done\nrestore failed: handoff file corrupt"}));
  // The failure belonged to that upgrade alone.
  waiters.adopt_running({record("next")});
  waiters.finish(true, "upgrade done");
  EXPECT_EQ(answers.back(), "next ok upgrade done");
}

}  // namespace
}  // namespace seamless::proxy
