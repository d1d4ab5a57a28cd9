// The Docker and systemd files, checked without a container engine or a running
// systemd: the example config passes `seamless check`, compose.yaml parses and agrees
// with seamless.yaml, prometheus.yml and the Dockerfile, the Dockerfile's runtime stage
// installs the Debian package of every shared library `ldd` lists for the built binary,
// and the unit passes `systemd-analyze verify`.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "config/load.h"

namespace seamless::packaging {
namespace {

namespace fs = std::filesystem;

const fs::path kSource = SEAMLESS_SOURCE_DIR;
const fs::path kDocker = kSource / "docker";

struct Output {
  int status = -1;
  std::string text;  // stdout and stderr
};

// Runs `command` through /bin/sh and collects what it prints.
Output run(const std::string& command) {
  Output out;
  FILE* pipe = ::popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) return out;
  char buffer[4096];
  for (size_t n; (n = std::fread(buffer, 1, sizeof(buffer), pipe)) > 0;) out.text.append(buffer, n);
  const int status = ::pclose(pipe);
  out.status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return out;
}

std::string read_text(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

std::vector<std::string> words(const std::string& text) {
  std::istringstream in(text);
  std::vector<std::string> out;
  for (std::string w; in >> w;) out.push_back(w);
  return out;
}

// The Dockerfile as instructions (continuation lines joined, comments dropped), and the
// facts the other files must agree with.
struct Dockerfile {
  std::vector<std::string> instructions;
  size_t last_stage = 0;  // index of the last FROM

  static Dockerfile load(const fs::path& path) {
    Dockerfile file;
    std::istringstream lines(read_text(path));
    std::string current;
    for (std::string line; std::getline(lines, line);) {
      const size_t start = line.find_first_not_of(" \t");
      if (start == std::string::npos || line[start] == '#') continue;
      const bool continued = line.back() == '\\';
      current += (continued ? line.substr(0, line.size() - 1) : line) + " ";
      if (continued) continue;
      if (current.starts_with("FROM ")) file.last_stage = file.instructions.size();
      file.instructions.push_back(current);
      current.clear();
    }
    return file;
  }

  // Packages of every `apt-get install` in the runtime (last) stage.
  std::set<std::string> runtime_packages() const {
    std::set<std::string> packages;
    for (size_t i = last_stage; i < instructions.size(); ++i) {
      const std::vector<std::string> w = words(instructions[i]);
      for (size_t j = 0; j + 1 < w.size(); ++j) {
        if (w[j] != "apt-get" || w[j + 1] != "install") continue;
        for (size_t k = j + 2; k < w.size() && w[k] != "&&"; ++k) {
          if (!w[k].starts_with("-")) packages.insert(w[k]);
        }
      }
    }
    return packages;
  }

  // The value after `flag` in the runtime stage's useradd, e.g. "--uid".
  std::string useradd_option(const std::string& flag) const {
    for (size_t i = last_stage; i < instructions.size(); ++i) {
      const std::vector<std::string> w = words(instructions[i]);
      const auto useradd = std::find(w.begin(), w.end(), "useradd");
      const auto found = std::find(useradd, w.end(), flag);
      if (found != w.end() && found + 1 != w.end()) return *(found + 1);
    }
    return "";
  }

  std::string instruction(const std::string& keyword) const {
    for (size_t i = last_stage; i < instructions.size(); ++i) {
      if (instructions[i].starts_with(keyword + " ")) return instructions[i];
    }
    return "";
  }
};

// "a:b:c" -> {"a", "b", "c"}
std::vector<std::string> split(const std::string& text, char separator) {
  std::vector<std::string> parts;
  std::istringstream in(text);
  for (std::string part; std::getline(in, part, separator);) parts.push_back(part);
  return parts;
}

std::set<std::string> string_set(const YAML::Node& sequence) {
  std::set<std::string> out;
  for (const YAML::Node& item : sequence) out.insert(item.as<std::string>());
  return out;
}

TEST(DockerFiles, ExampleConfigPassesSeamlessCheck) {
  const Output out =
      run(std::string(SEAMLESS_BINARY) + " check --config " + (kDocker / "seamless.yaml").string());
  EXPECT_EQ(out.status, 0) << out.text;
  EXPECT_TRUE(out.text.starts_with("ok digest ")) << out.text;
}

TEST(DockerFiles, ComposeParsesAndAgreesWithTheConfigAndTheDockerfile) {
  YAML::Node compose;
  ASSERT_NO_THROW(compose = YAML::LoadFile((kDocker / "compose.yaml").string()));
  const Result<config::Config> config = config::load_config_file(kDocker / "seamless.yaml");
  ASSERT_TRUE(config.ok()) << config.error().message;
  const Dockerfile dockerfile = Dockerfile::load(kDocker / "Dockerfile");

  const YAML::Node seamless = compose["services"]["seamless"];
  ASSERT_TRUE(seamless.IsMap()) << "no services.seamless in compose.yaml";
  EXPECT_TRUE(fs::exists(kDocker / seamless["build"]["context"].as<std::string>() /
                         seamless["build"]["dockerfile"].as<std::string>()));

  // The config the entrypoint reads is docker/seamless.yaml, mounted read-only.
  const std::vector<std::string> entrypoint = words(dockerfile.instruction("ENTRYPOINT"));
  const auto flag = std::find(entrypoint.begin(), entrypoint.end(), "\"--config\",");
  ASSERT_NE(flag, entrypoint.end()) << dockerfile.instruction("ENTRYPOINT");
  const std::string config_in_container = (flag + 1)->substr(1, (flag + 1)->find('"', 1) - 1);
  EXPECT_EQ(config_in_container, "/etc/seamless/seamless.yaml");
  bool mounted = false;
  for (const YAML::Node& volume : seamless["volumes"]) {
    const std::vector<std::string> parts = split(volume.as<std::string>(), ':');
    if (parts.size() >= 2 && parts[1] == config_in_container) {
      mounted = fs::equivalent(kDocker / parts[0], kDocker / "seamless.yaml");
    }
  }
  EXPECT_TRUE(mounted) << "compose.yaml does not mount seamless.yaml at " << config_in_container;

  // Capabilities the binary's file capabilities need from the container.
  const std::set<std::string> caps = string_set(seamless["cap_add"]);
  EXPECT_TRUE(caps.contains("NET_ADMIN") && caps.contains("NET_RAW"));

  // The handoff dir is a tmpfs owned by the image's user, private to it.
  const std::string uid = dockerfile.useradd_option("--uid");
  ASSERT_FALSE(uid.empty()) << "no useradd --uid in the Dockerfile's runtime stage";
  bool handoff_tmpfs = false;
  for (const YAML::Node& tmpfs : seamless["tmpfs"]) {
    const std::vector<std::string> parts = split(tmpfs.as<std::string>(), ':');
    if (parts[0] != config->handoff.dir || parts.size() != 2) continue;
    const std::vector<std::string> options = split(parts[1], ',');
    const auto has = [&](const std::string& o) {
      return std::find(options.begin(), options.end(), o) != options.end();
    };
    handoff_tmpfs = has("uid=" + uid) && has("mode=0700");
  }
  EXPECT_TRUE(handoff_tmpfs) << "no tmpfs at " << config->handoff.dir << " with uid=" << uid
                             << ",mode=0700";

  // The example backend is where the config sends connections, on the port it serves.
  const YAML::Node echo = compose["services"]["echo"];
  ASSERT_TRUE(echo.IsMap());
  const std::string backend = config->services.at(0).backends.at(0).address.to_string();
  const std::vector<std::string> command = echo["command"].as<std::vector<std::string>>();
  EXPECT_EQ(echo["networks"]["seamless"]["ipv4_address"].as<std::string>() + ":" + command.back(),
            backend);
  for (const YAML::Node& volume : echo["volumes"]) {
    EXPECT_TRUE(fs::exists(kDocker / split(volume.as<std::string>(), ':')[0]))
        << volume.as<std::string>();
  }

  // Prometheus scrapes the port seamless serves /metrics on.
  const YAML::Node prometheus = compose["services"]["prometheus"];
  ASSERT_TRUE(prometheus.IsMap());
  const std::string prometheus_yml = split(prometheus["volumes"][0].as<std::string>(), ':')[0];
  YAML::Node scrape;
  ASSERT_NO_THROW(scrape = YAML::LoadFile((kDocker / prometheus_yml).string()));
  ASSERT_TRUE(config->metrics.listen.has_value());
  EXPECT_EQ(scrape["scrape_configs"][0]["static_configs"][0]["targets"][0].as<std::string>(),
            "seamless:" + std::to_string(config->metrics.listen->port));
}

// The Debian package that holds `path`, trying the /usr-merged spelling too.
std::string package_of(const std::string& path) {
  std::vector<std::string> candidates = {path};
  std::error_code error;
  const fs::path real = fs::canonical(path, error);
  if (!error) candidates.push_back(real.string());
  for (const std::string& p : std::vector<std::string>(candidates)) {
    candidates.push_back(p.starts_with("/usr/") ? p.substr(4) : "/usr" + p);
  }
  for (const std::string& p : candidates) {
    const Output out = run("dpkg -S '" + p + "'");
    if (out.status != 0) continue;
    // "libuv1:amd64: /usr/lib/x86_64-linux-gnu/libuv.so.1"
    const std::string package = out.text.substr(0, out.text.find(':'));
    if (!package.empty() && package.find(' ') == std::string::npos) return package;
  }
  return "";
}

TEST(DockerFiles, RuntimeStageInstallsThePackageOfEverySharedLibrary) {
  const Output ldd = run(std::string("ldd ") + SEAMLESS_BINARY);
  ASSERT_EQ(ldd.status, 0) << ldd.text;
  EXPECT_EQ(ldd.text.find("not found"), std::string::npos) << ldd.text;
  const std::set<std::string> installed =
      Dockerfile::load(kDocker / "Dockerfile").runtime_packages();
  ASSERT_FALSE(installed.empty()) << "no apt-get install in the Dockerfile's last stage";

  std::map<std::string, std::string> needed;  // package -> a library from it
  std::istringstream lines(ldd.text);
  for (std::string line; std::getline(lines, line);) {
    // "\tlibuv.so.1 => /lib/x86_64-linux-gnu/libuv.so.1 (0x...)" or "\t/lib64/ld-linux..."
    const std::vector<std::string> w = words(line);
    std::string path;
    if (w.size() >= 3 && w[1] == "=>") path = w[2];
    if (w.size() == 2 && w[0].starts_with("/")) path = w[0];
    if (path.empty()) continue;  // linux-vdso.so.1: in the kernel
    const std::string package = package_of(path);
    ASSERT_FALSE(package.empty()) << "no Debian package holds " << path;
#ifdef SEAMLESS_SANITIZED
    // The image is built without sanitizers; this binary was not.
    if (package.starts_with("libasan") || package.starts_with("libubsan")) continue;
#endif
    needed.emplace(package, path);
  }
  EXPECT_GE(needed.size(), 5u) << ldd.text;
  for (const auto& [package, library] : needed) {
    EXPECT_TRUE(installed.contains(package))
        << "docker/Dockerfile's runtime stage does not install " << package << " (for " << library
        << ")";
  }
}

// The unit with its binary path replaced by `binary`, in a fresh temp dir.
fs::path unit_with_binary(const std::string& binary) {
  char dir[] = "/tmp/seamless-unit-test-XXXXXX";
  EXPECT_NE(::mkdtemp(dir), nullptr);
  std::string text = read_text(kSource / "packaging/systemd/seamless.service");
  const std::string installed = "/usr/local/bin/seamless";
  for (size_t at; (at = text.find(installed)) != std::string::npos;) {
    text.replace(at, installed.size(), binary);
  }
  const fs::path unit = fs::path(dir) / "seamless.service";
  std::ofstream(unit) << text;
  return unit;
}

TEST(SystemdUnit, PassesSystemdAnalyzeVerify) {
  if (run("command -v systemd-analyze").status != 0) {
    GTEST_SKIP() << "systemd-analyze is not installed (Debian package systemd; "
                    "scripts/deps.sh installs it)";
  }
  // The unit's ExecStart= and ExecReload= point at the built binary, so that verify
  // checks them against a real file, not whatever this machine has installed.
  // verify exits 0 on unknown keys and bad values (it only warns), so any output fails.
  const fs::path unit = unit_with_binary(SEAMLESS_BINARY);
  const Output out = run("SYSTEMD_LOG_LEVEL=warning systemd-analyze verify " + unit.string());
  EXPECT_EQ(out.status, 0) << out.text;
  EXPECT_EQ(out.text, "") << "systemd-analyze verify warned";
  fs::remove_all(unit.parent_path());

  // With a binary that is not there, verify must notice: the check above is no no-op.
  const fs::path broken = unit_with_binary("/nonexistent/seamless");
  const Output missing = run("SYSTEMD_LOG_LEVEL=warning systemd-analyze verify " + broken.string());
  EXPECT_NE(missing.status, 0);
  EXPECT_NE(missing.text.find("/nonexistent/seamless"), std::string::npos) << missing.text;
  fs::remove_all(broken.parent_path());
}

TEST(SystemdUnit, AgreesWithTheDefaultConfig) {
  const std::string unit = read_text(kSource / "packaging/systemd/seamless.service");
  const auto setting = [&](const std::string& key) {
    std::istringstream lines(unit);
    for (std::string line; std::getline(lines, line);) {
      if (line.starts_with(key + "=")) return line.substr(key.size() + 1);
    }
    return std::string();
  };
  // RuntimeDirectory=seamless is /run/seamless: the default handoff.dir, created 0700.
  const config::Config defaults;
  EXPECT_EQ("/run/" + setting("RuntimeDirectory"), defaults.handoff.dir);
  EXPECT_EQ(setting("RuntimeDirectoryMode"), "0700");
  EXPECT_EQ(setting("KillMode"), "mixed");
  for (const std::string key : {"AmbientCapabilities", "CapabilityBoundingSet"}) {
    const std::vector<std::string> caps = words(setting(key));
    EXPECT_EQ(std::set<std::string>(caps.begin(), caps.end()),
              (std::set<std::string>{"CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_NET_BIND_SERVICE"}))
        << key;
  }
  // TimeoutStopSec must leave the default drain_timeout time to finish.
  const std::string timeout = setting("TimeoutStopSec");
  ASSERT_TRUE(timeout.ends_with("s")) << timeout;
  EXPECT_GT(std::stoi(timeout) * 1000, defaults.drain_timeout.count());
}

}  // namespace
}  // namespace seamless::packaging
