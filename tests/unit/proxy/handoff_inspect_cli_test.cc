// `seamless handoff inspect` on the command line: exit codes (0 ok, 1 unreadable or
// corrupt file, 2 usage), one error line on stderr naming the file, nothing on
// stdout for a refused file. Run both in process (run_cli) and as the built binary.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <spawn.h>
#include <sys/wait.h>

#include <cstring>
#include <string>
#include <vector>

#include "proxy/cli.h"
#include "tests/unit/repair/handoff_test_util.h"

extern char** environ;

namespace seamless {
namespace {

using repair::testing::read_file;
using repair::testing::TempDir;

struct Outcome {
  int rc = -1;
  std::string out;
  std::string err;
};

class ProxyHandoffInspectCli : public ::testing::Test {
 protected:
  void SetUp() override {
    repair::PairRecord r = repair::testing::full_record(7, 40);
    r.service = "pg";
    good_ = repair::testing::write_handoff(dir_.path(), repair::testing::sample_header(), {r});
    ASSERT_FALSE(good_.empty());
    std::string bytes = read_file(good_);
    bytes[bytes.size() / 2] = static_cast<char>(bytes[bytes.size() / 2] ^ 1);
    corrupt_ = dir_ / "corrupt.bin";
    repair::testing::write_file(corrupt_, bytes);
  }

  static std::vector<std::string> with_program(std::vector<std::string> args) {
    args.insert(args.begin(), "seamless");
    return args;
  }

  static Outcome in_process(std::vector<std::string> args) {
    args = with_program(std::move(args));
    std::vector<char*> argv;
    for (std::string& arg : args) argv.push_back(arg.data());
    ::testing::internal::CaptureStdout();
    ::testing::internal::CaptureStderr();
    Outcome run;
    run.rc = run_cli(static_cast<int>(argv.size()), argv.data());
    run.out = ::testing::internal::GetCapturedStdout();
    run.err = ::testing::internal::GetCapturedStderr();
    return run;
  }

  // The built binary, its stdout and stderr sent to files.
  Outcome subprocess(std::vector<std::string> args) {
    args = with_program(std::move(args));
    std::vector<char*> argv;
    for (std::string& arg : args) argv.push_back(arg.data());
    argv.push_back(nullptr);
    const std::string out_path = dir_ / "stdout";
    const std::string err_path = dir_ / "stderr";
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 1, out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                     0600);
    posix_spawn_file_actions_addopen(&actions, 2, err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                     0600);
    pid_t pid = -1;
    const int spawned = posix_spawn(&pid, SEAMLESS_BINARY, &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    Outcome run;
    if (spawned != 0) {
      ADD_FAILURE() << "spawn " << SEAMLESS_BINARY << ": " << std::strerror(spawned);
      return run;
    }
    int status = 0;
    if (::waitpid(pid, &status, 0) != pid || !WIFEXITED(status)) {
      ADD_FAILURE() << "seamless did not exit normally (status " << status << ")";
      return run;
    }
    run.rc = WEXITSTATUS(status);
    run.out = read_file(out_path);
    run.err = read_file(err_path);
    return run;
  }

  // Both ways of running must agree.
  std::vector<Outcome> both(const std::vector<std::string>& args) {
    return {in_process(args), subprocess(args)};
  }

  TempDir dir_;
  std::string good_;
  std::string corrupt_;
};

bool one_line(const std::string& text) {
  return !text.empty() && text.find('\n') == text.size() - 1;
}

TEST_F(ProxyHandoffInspectCli, GoodFileExits0) {
  for (const Outcome& run : both({"handoff", "inspect", good_})) {
    EXPECT_EQ(run.rc, 0) << run.err;
    EXPECT_TRUE(run.out.starts_with("handoff file    " + good_ + "\n")) << run.out;
    EXPECT_NE(run.out.find("\nsummary: 1 pair (1 client, 1 backend sockets)"), std::string::npos);
    EXPECT_EQ(run.err, "");
  }
  for (const Outcome& run : both({"handoff", "inspect", "--json", "--payload", good_})) {
    EXPECT_EQ(run.rc, 0) << run.err;
    EXPECT_TRUE(run.out.starts_with("{\n  \"file\": ")) << run.out;
    EXPECT_NE(run.out.find("\"data_base64\": "), std::string::npos);
    EXPECT_TRUE(run.out.ends_with("\n}\n"));
  }
}

TEST_F(ProxyHandoffInspectCli, CorruptFileExits1WithOneLine) {
  for (const Outcome& run : both({"handoff", "inspect", corrupt_})) {
    EXPECT_EQ(run.rc, 1);
    EXPECT_EQ(run.out, "");
    EXPECT_TRUE(run.err.starts_with("handoff file " + corrupt_ + ": ")) << run.err;
    EXPECT_TRUE(one_line(run.err)) << run.err;
  }
}

TEST_F(ProxyHandoffInspectCli, MissingFileExits1WithOneLine) {
  const std::string missing = dir_ / "missing.bin";
  for (const Outcome& run : both({"handoff", "inspect", "--json", missing})) {
    EXPECT_EQ(run.rc, 1);
    EXPECT_EQ(run.out, "");
    EXPECT_EQ(run.err, "handoff file " + missing + ": open: No such file or directory\n");
  }
}

TEST_F(ProxyHandoffInspectCli, ALineBreakInThePathStaysOnOneLine) {
  const std::string odd = dir_ / "two\nlines.bin";
  for (const Outcome& run : both({"handoff", "inspect", odd})) {
    EXPECT_EQ(run.rc, 1);
    EXPECT_TRUE(one_line(run.err)) << run.err;
  }
}

TEST_F(ProxyHandoffInspectCli, UsageErrorsExit2) {
  const std::vector<std::vector<std::string>> usages = {
      {"handoff"},                                  // no subcommand
      {"handoff", "inspect"},                       // no FILE
      {"handoff", "inspect", "--colour", good_},    // unknown flag
      {"handoff", "inspect", good_, "extra-file"},  // two files
      {"handoff", "bogus", good_},
  };
  for (const std::vector<std::string>& args : usages) {
    for (const Outcome& run : both(args)) {
      EXPECT_EQ(run.rc, 2) << args.size() << " args: " << run.err;
      EXPECT_NE(run.err, "");
    }
  }
}

TEST_F(ProxyHandoffInspectCli, HelpExits0) {
  for (const Outcome& run : both({"handoff", "inspect", "--help"})) {
    EXPECT_EQ(run.rc, 0);
    EXPECT_NE(run.out.find("--payload"), std::string::npos) << run.out;
  }
}

}  // namespace
}  // namespace seamless
