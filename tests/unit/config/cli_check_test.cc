// `seamless check`: the exit code is the contract the upgrade preflight relies on
// (0 valid, 2 invalid, unreadable or misused), and errors go to stderr one per line.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "proxy/cli.h"

namespace seamless {
namespace {

class config_CheckCommand : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("seamless-cli-check-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string write(const std::string& name, const std::string& text) {
    const std::filesystem::path path = dir_ / name;
    std::ofstream(path) << text;
    return path.string();
  }

  // Runs the CLI, keeping what it printed.
  int run(std::vector<std::string> args) {
    args.insert(args.begin(), "seamless");
    std::vector<char*> argv;
    for (std::string& arg : args) argv.push_back(arg.data());
    ::testing::internal::CaptureStdout();
    ::testing::internal::CaptureStderr();
    const int rc = run_cli(static_cast<int>(argv.size()), argv.data());
    out_ = ::testing::internal::GetCapturedStdout();
    err_ = ::testing::internal::GetCapturedStderr();
    return rc;
  }

  std::filesystem::path dir_;
  std::string out_;
  std::string err_;
};

TEST_F(config_CheckCommand, ValidConfigPrintsOkAndDigest) {
  EXPECT_EQ(run({"check", "--config", "config/examples/default.yaml"}), 0);
  EXPECT_TRUE(out_.starts_with("ok digest ")) << out_;
  EXPECT_EQ(out_.size(), std::string("ok digest \n").size() + 64) << out_;
  EXPECT_EQ(err_, "");
}

TEST_F(config_CheckCommand, PrintEffectiveWritesValidYaml) {
  EXPECT_EQ(run({"check", "-c", "config/examples/default.yaml", "--print-effective"}), 0);
  EXPECT_NE(out_.find("connect_timeout: 5s"), std::string::npos) << out_;
  const std::string effective = write("effective.yaml", out_);
  EXPECT_EQ(run({"check", "--config", effective}), 0) << err_;
}

TEST_F(config_CheckCommand, EveryErrorOnItsOwnLineAndExit2) {
  const std::string path = write("bad.yaml",
                                 "services:\n"
                                 "  - name: web\n"
                                 "    listen: \"127.0.0.1:99999\"\n"
                                 "    backends: []\n"
                                 "    colour: blue\n");
  EXPECT_EQ(run({"check", "--config", path}), 2);
  EXPECT_EQ(out_, "");
  EXPECT_EQ(err_, path + ":3:13: services[0].listen: invalid port \"99999\" (expected 1-65535)\n" +
                      path + ":4:15: services[0].backends: must list at least one backend\n" +
                      path + ":5:5: services[0].colour: unknown key (expected one of: name, " +
                      "listen, v6only, backends, balance, connect_timeout, idle_timeout, " +
                      "max_connections, proxy_protocol, health_check)\n");
}

TEST_F(config_CheckCommand, UnreadableFileExits2) {
  const std::string path = (dir_ / "missing.yaml").string();
  EXPECT_EQ(run({"check", "--config", path}), 2);
  EXPECT_EQ(err_, "read config " + path + ": No such file or directory\n");
}

TEST_F(config_CheckCommand, MissingConfigOptionExits2) {
  EXPECT_EQ(run({"check"}), 2);
  EXPECT_NE(err_.find("--config is required"), std::string::npos) << err_;
}

}  // namespace
}  // namespace seamless
