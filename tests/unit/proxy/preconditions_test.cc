#include "proxy/preconditions.h"

#include <gtest/gtest.h>
#include <linux/capability.h>

#include <map>
#include <string>
#include <vector>

namespace seamless::proxy {
namespace {

constexpr uint64_t bit(int capability) { return uint64_t{1} << capability; }
constexpr uint64_t kAllNeeded = bit(CAP_NET_ADMIN) | bit(CAP_NET_RAW) | bit(CAP_NET_BIND_SERVICE);
constexpr uid_t kUid = 997;

// A machine described by fields: a recent kernel, every capability, /run writable.
struct FakeProbe final : PreconditionProbe {
  Result<std::string> release = std::string("6.1.0-18-amd64");
  Result<uint64_t> caps = kAllNeeded;
  Result<uint32_t> port_start = 1024u;
  std::map<std::string, PathInfo> paths = {
      {"/", {PathInfo::Kind::kDirectory, 0, 040755}},
      {"/run", {PathInfo::Kind::kDirectory, 0, 040755}},
  };
  std::vector<std::string> writable = {"/run"};
  Error path_error{0, ""};  // returned by path_info when its message is set

  Result<std::string> kernel_release() const override { return release; }
  Result<uint64_t> effective_capabilities() const override { return caps; }
  Result<uint32_t> unprivileged_port_start() const override { return port_start; }
  uid_t effective_uid() const override { return kUid; }
  Result<PathInfo> path_info(const std::string& path) const override {
    if (!path_error.message.empty()) return path_error;
    auto it = paths.find(path);
    return it == paths.end() ? PathInfo{} : it->second;
  }
  bool can_write_dir(const std::string& path) const override {
    for (const std::string& w : writable) {
      if (w == path) return true;
    }
    return false;
  }
  std::string executable_path() const override { return "/usr/local/bin/seamless"; }
};

config::SocketAddress address(const std::string& text) {
  Result<config::SocketAddress> parsed = config::SocketAddress::parse(text);
  EXPECT_TRUE(parsed.ok()) << text;
  return parsed ? *parsed : config::SocketAddress{};
}

config::Config config_with(const std::vector<std::string>& listens,
                           const std::string& metrics = "127.0.0.1:9100") {
  config::Config config;
  for (size_t i = 0; i < listens.size(); ++i) {
    config::Service service;
    service.name = "svc" + std::to_string(i);
    service.listen = address(listens[i]);
    service.backends.push_back({address("198.18.0.1:7101"), 1});
    config.services.push_back(service);
  }
  if (metrics.empty()) {
    config.metrics.listen.reset();
  } else {
    config.metrics.listen = address(metrics);
  }
  config.handoff.dir = "/run/seamless";
  return config;
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

TEST(Preconditions, AllMetGivesNoLinesAndOkStatus) {
  const FakeProbe probe;
  const config::Config config = config_with({"198.18.0.2:7000"});
  EXPECT_EQ(unmet_preconditions(config, probe), std::vector<std::string>{});
  EXPECT_TRUE(check_preconditions(config, probe).ok());
}

TEST(Preconditions, ParsesKernelReleases) {
  struct Case {
    std::string release;
    KernelVersion version;
  };
  for (const Case& c : std::vector<Case>{{"5.3.0", {5, 3}},
                                         {"4.19.0-21-amd64", {4, 19}},
                                         {"6.18.44-fc-v782", {6, 18}},
                                         {"5.10", {5, 10}},
                                         {"10.0-rc1", {10, 0}}}) {
    const Result<KernelVersion> v = parse_kernel_release(c.release);
    ASSERT_TRUE(v.ok()) << c.release;
    EXPECT_EQ(*v, c.version) << c.release;
  }
  for (const std::string bad : {"", "5", "5.", "x.1", "5.x", "-5.3", "5.-3"}) {
    EXPECT_FALSE(parse_kernel_release(bad).ok()) << bad;
  }
}

TEST(Preconditions, KernelBelow53IsOneLineNamingTheRelease) {
  FakeProbe probe;
  const config::Config config = config_with({"198.18.0.2:7000"});
  probe.release = std::string("5.2.21");
  std::vector<std::string> lines = unmet_preconditions(config, probe);
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0],
            "seamless: needs Linux 5.3 or later (pidfd_open; TCP_REPAIR_OFF_NO_WP needs 4.17); "
            "this kernel is 5.2.21");
  probe.release = std::string("4.19.0-21-amd64");
  EXPECT_EQ(unmet_preconditions(config, probe).size(), 1u);
  for (const std::string ok : {"5.3.0", "5.4.0-150-generic", "6.0"}) {
    probe.release = ok;
    EXPECT_EQ(unmet_preconditions(config, probe), std::vector<std::string>{}) << ok;
  }
}

TEST(Preconditions, UnreadableKernelReleaseIsReported) {
  FakeProbe probe;
  probe.release = std::string("linux-next");
  std::vector<std::string> lines = unmet_preconditions(config_with({"198.18.0.2:7000"}), probe);
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_TRUE(contains(lines[0], "needs Linux 5.3")) << lines[0];
  EXPECT_TRUE(contains(lines[0], "\"linux-next\"")) << lines[0];
  probe.release = Error::from_errno("uname", EFAULT);
  lines = unmet_preconditions(config_with({"198.18.0.2:7000"}), probe);
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_TRUE(contains(lines[0], "uname: Bad address")) << lines[0];
}

TEST(Preconditions, NoCapabilitiesIsOneLineEachWithTheSetcapHint) {
  FakeProbe probe;
  probe.caps = uint64_t{0};
  const std::vector<std::string> lines =
      unmet_preconditions(config_with({"198.18.0.2:7000"}), probe);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0],
            "seamless: needs CAP_NET_ADMIN (TCP_REPAIR and the nftables flow lock); run as root "
            "or grant it: setcap cap_net_admin,cap_net_raw+ep /usr/local/bin/seamless");
  EXPECT_TRUE(lines[1].starts_with("seamless: needs CAP_NET_RAW (")) << lines[1];
  EXPECT_TRUE(contains(lines[1], "setcap cap_net_admin,cap_net_raw+ep /usr/local/bin/seamless"))
      << lines[1];
  for (const std::string& line : lines) EXPECT_FALSE(contains(line, "\n"));
}

TEST(Preconditions, EachCapabilityIsCheckedOnItsOwn) {
  FakeProbe probe;
  const config::Config config = config_with({"198.18.0.2:7000"});
  probe.caps = kAllNeeded & ~bit(CAP_NET_RAW);
  std::vector<std::string> lines = unmet_preconditions(config, probe);
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_TRUE(lines[0].starts_with("seamless: needs CAP_NET_RAW")) << lines[0];
  probe.caps = kAllNeeded & ~bit(CAP_NET_ADMIN);
  lines = unmet_preconditions(config, probe);
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_TRUE(lines[0].starts_with("seamless: needs CAP_NET_ADMIN")) << lines[0];
  // The capability numbers are bits of the whole 64-bit set, not of a 32-bit half.
  probe.caps = (kAllNeeded << 32) | bit(CAP_NET_BIND_SERVICE);
  EXPECT_EQ(unmet_preconditions(config, probe).size(), 2u);
}

TEST(Preconditions, BindServiceOnlyForLowPorts) {
  FakeProbe probe;
  probe.caps = bit(CAP_NET_ADMIN) | bit(CAP_NET_RAW);
  EXPECT_EQ(unmet_preconditions(config_with({"198.18.0.2:1024"}, "127.0.0.1:9100"), probe),
            std::vector<std::string>{});

  std::vector<std::string> lines = unmet_preconditions(
      config_with({"198.18.0.2:7000", "[::]:443", "198.18.0.1:25"}, "127.0.0.1:9100"), probe);
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0],
            "seamless: needs CAP_NET_BIND_SERVICE (to listen on [::]:443 (service svc1), "
            "198.18.0.1:25 (service svc2): ports below net.ipv4.ip_unprivileged_port_start 1024); "
            "run as root or grant it: setcap cap_net_admin,cap_net_raw,cap_net_bind_service+ep "
            "/usr/local/bin/seamless");

  // The metrics listener counts too; a disabled one does not.
  lines = unmet_preconditions(config_with({"198.18.0.2:7000"}, "127.0.0.1:80"), probe);
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_TRUE(contains(lines[0], "127.0.0.1:80 (metrics)")) << lines[0];
  EXPECT_EQ(unmet_preconditions(config_with({"198.18.0.2:7000"}, ""), probe),
            std::vector<std::string>{});
}

TEST(Preconditions, BindServiceFollowsTheUnprivilegedPortSysctl) {
  FakeProbe probe;
  probe.caps = bit(CAP_NET_ADMIN) | bit(CAP_NET_RAW);
  probe.port_start = 0u;  // what container runtimes set
  EXPECT_EQ(unmet_preconditions(config_with({"198.18.0.2:80"}), probe), std::vector<std::string>{});
  probe.port_start = 8000u;
  EXPECT_EQ(unmet_preconditions(config_with({"198.18.0.2:7000"}), probe).size(), 1u);
  probe.port_start = Error::logic("cannot read");  // falls back to the kernel default
  EXPECT_EQ(unmet_preconditions(config_with({"198.18.0.2:7000"}), probe),
            std::vector<std::string>{});
  EXPECT_EQ(unmet_preconditions(config_with({"198.18.0.2:1023"}), probe).size(), 1u);
}

TEST(Preconditions, UnreadableCapabilitiesAreOneLine) {
  FakeProbe probe;
  probe.caps = Error::from_errno("capget", EPERM);
  const std::vector<std::string> lines =
      unmet_preconditions(config_with({"198.18.0.2:7000"}), probe);
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_TRUE(contains(lines[0], "capget: Operation not permitted")) << lines[0];
}

TEST(Preconditions, HandoffDirThatExistsMustBeOursAndPrivate) {
  FakeProbe probe;
  const config::Config config = config_with({"198.18.0.2:7000"});
  probe.paths["/run/seamless"] = {PathInfo::Kind::kDirectory, kUid, 040700};
  probe.writable.push_back("/run/seamless");
  EXPECT_EQ(unmet_preconditions(config, probe), std::vector<std::string>{});

  probe.paths["/run/seamless"] = {PathInfo::Kind::kDirectory, 0, 040700};
  std::vector<std::string> lines = unmet_preconditions(config, probe);
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_TRUE(lines[0].starts_with("seamless: needs handoff.dir /run/seamless owned by uid 997"))
      << lines[0];

  probe.paths["/run/seamless"] = {PathInfo::Kind::kDirectory, kUid, 041777};
  lines = unmet_preconditions(config, probe);
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_TRUE(contains(lines[0], "mode is 1777")) << lines[0];

  probe.paths["/run/seamless"] = {PathInfo::Kind::kDirectory, kUid, 040500};
  probe.writable = {"/run"};
  lines = unmet_preconditions(config, probe);
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_TRUE(lines[0].starts_with("seamless: needs write access to handoff.dir /run/seamless"))
      << lines[0];

  probe.paths["/run/seamless"] = {PathInfo::Kind::kSymlink, kUid, 0120777};
  lines = unmet_preconditions(config, probe);
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_TRUE(contains(lines[0], "not a symlink")) << lines[0];

  probe.paths["/run/seamless"] = {PathInfo::Kind::kOther, kUid, 0100600};
  EXPECT_EQ(unmet_preconditions(config, probe).size(), 1u);
}

TEST(Preconditions, MissingHandoffDirNeedsAWritableParent) {
  FakeProbe probe;
  config::Config config = config_with({"198.18.0.2:7000"});
  EXPECT_EQ(unmet_preconditions(config, probe), std::vector<std::string>{});  // /run writable

  probe.writable.clear();
  std::vector<std::string> lines = unmet_preconditions(config, probe);
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0],
            "seamless: needs handoff.dir /run/seamless (cannot create it in /run; create it "
            "0700 owned by uid 997)");

  // Only the last component is created, as the checkpoint writer does.
  config.handoff.dir = "/var/lib/seamless/handoff/";
  lines = unmet_preconditions(config, probe);
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_TRUE(contains(lines[0],
                       "handoff.dir /var/lib/seamless/handoff or at least its parent "
                       "/var/lib/seamless"))
      << lines[0];

  probe.path_error = Error::from_errno("lstat /run/seamless", EACCES);
  lines = unmet_preconditions(config_with({"198.18.0.2:7000"}), probe);
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0],
            "seamless: cannot check handoff.dir /run/seamless: lstat /run/seamless: Permission "
            "denied");
}

TEST(Preconditions, EveryProblemIsItsOwnLineInAFixedOrder) {
  FakeProbe probe;
  probe.release = std::string("4.9.0");
  probe.caps = uint64_t{0};
  probe.writable.clear();
  const config::Config config = config_with({"198.18.0.2:443"});
  const std::vector<std::string> lines = unmet_preconditions(config, probe);
  ASSERT_EQ(lines.size(), 5u);
  EXPECT_TRUE(lines[0].starts_with("seamless: needs Linux 5.3"));
  EXPECT_TRUE(lines[1].starts_with("seamless: needs CAP_NET_ADMIN"));
  EXPECT_TRUE(lines[2].starts_with("seamless: needs CAP_NET_RAW"));
  EXPECT_TRUE(lines[3].starts_with("seamless: needs CAP_NET_BIND_SERVICE"));
  EXPECT_TRUE(lines[4].starts_with("seamless: needs handoff.dir"));
  const Status status = check_preconditions(config, probe);
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.error().message,
            lines[0] + "\n" + lines[1] + "\n" + lines[2] + "\n" + lines[3] + "\n" + lines[4]);
}

// The real probe on this machine: it must at least read what it claims to read.
TEST(Preconditions, SystemProbeReadsThisProcess) {
  const SystemPreconditionProbe probe;
  const Result<std::string> release = probe.kernel_release();
  ASSERT_TRUE(release.ok());
  EXPECT_TRUE(parse_kernel_release(*release).ok()) << *release;
  EXPECT_TRUE(probe.effective_capabilities().ok());
  const Result<PathInfo> root = probe.path_info("/");
  ASSERT_TRUE(root.ok());
  EXPECT_EQ(root->kind, PathInfo::Kind::kDirectory);
  const Result<PathInfo> missing = probe.path_info("/nonexistent-seamless-test-path");
  ASSERT_TRUE(missing.ok());
  EXPECT_EQ(missing->kind, PathInfo::Kind::kMissing);
  EXPECT_TRUE(probe.executable_path().ends_with("proxy_unit_test")) << probe.executable_path();
}

}  // namespace
}  // namespace seamless::proxy
