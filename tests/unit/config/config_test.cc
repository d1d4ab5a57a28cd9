// Good configs: what a valid file turns into, and every documented default.
#include "config/config.h"

#include <gtest/gtest.h>

#include "config/load.h"

namespace seamless::config {
namespace {

using std::chrono::milliseconds;

Config parse_ok(std::string_view yaml) {
  ConfigParse parsed = parse_config(yaml, "t.yaml");
  for (const std::string& error : parsed.errors) ADD_FAILURE() << error;
  return parsed.ok() ? *parsed.config : Config{};
}

constexpr std::string_view kMinimal = R"(
services:
  - name: web
    listen: "127.0.0.1:8080"
    backends:
      - address: "127.0.0.1:9000"
)";

// Spelled out value by value, so that a changed default fails here and reminds
// whoever changed it to update config.h and config/README.md too.
TEST(config_Parse, MinimalFileTakesEveryDocumentedDefault) {
  const Config config = parse_ok(kMinimal);
  ASSERT_EQ(config.services.size(), 1u);
  const Service& web = config.services[0];
  EXPECT_EQ(web.name, "web");
  EXPECT_EQ(web.listen.to_string(), "127.0.0.1:8080");
  EXPECT_FALSE(web.v6only);
  ASSERT_EQ(web.backends.size(), 1u);
  EXPECT_EQ(web.backends[0].address.to_string(), "127.0.0.1:9000");
  EXPECT_EQ(web.backends[0].weight, 1u);
  EXPECT_EQ(web.balance, Balance::kRoundRobin);
  EXPECT_EQ(web.connect_timeout, milliseconds(5'000));
  EXPECT_EQ(web.idle_timeout, milliseconds(0));
  EXPECT_EQ(web.max_connections, 10'000u);
  EXPECT_EQ(web.proxy_protocol, ProxyProtocol::kOff);
  EXPECT_EQ(web.health_check.interval, milliseconds(2'000));
  EXPECT_EQ(web.health_check.timeout, milliseconds(1'000));
  EXPECT_EQ(web.health_check.rise, 2u);
  EXPECT_EQ(web.health_check.fall, 3u);
  EXPECT_EQ(config.handoff.dir, "/run/seamless");
  EXPECT_EQ(config.handoff.lock_timeout, milliseconds(30'000));
  EXPECT_EQ(config.handoff.nft_table, "seamless");
  EXPECT_EQ(config.drain_timeout, milliseconds(30'000));
  ASSERT_TRUE(config.metrics.listen.has_value());
  EXPECT_EQ(config.metrics.listen->to_string(), "127.0.0.1:9100");
  EXPECT_EQ(config.log.level, LogLevel::kInfo);
  EXPECT_EQ(config.log.format, LogFormat::kText);
}

TEST(config_Parse, ReadsEveryField) {
  const Config config = parse_ok(R"(
services:
  - name: db_1-a
    listen: "[::]:5432"
    v6only: true
    backends:
      - address: "[2001:db8::1]:5432"
        weight: 256
      - address: "198.18.0.2:5432"
    balance: least_conn
    connect_timeout: 250ms
    idle_timeout: 1h
    max_connections: 1000000
    proxy_protocol: v2
    health_check: {interval: 10s, timeout: 9999ms, rise: 1, fall: 100}
handoff: {dir: /var/lib/seamless, lock_timeout: 2m, nft_table: _seamless.prod-2}
drain_timeout: 0s
metrics: {listen: "[::1]:9200"}
log: {level: debug, format: json}
)");
  ASSERT_EQ(config.services.size(), 1u);
  const Service& db = config.services[0];
  EXPECT_EQ(db.name, "db_1-a");
  EXPECT_EQ(db.listen.to_string(), "[::]:5432");
  EXPECT_TRUE(db.v6only);
  ASSERT_EQ(db.backends.size(), 2u);
  EXPECT_EQ(db.backends[0].address.to_string(), "[2001:db8::1]:5432");
  EXPECT_EQ(db.backends[0].weight, 256u);
  EXPECT_EQ(db.backends[1].address.to_string(), "198.18.0.2:5432");
  EXPECT_EQ(db.backends[1].weight, 1u);
  EXPECT_EQ(db.balance, Balance::kLeastConn);
  EXPECT_EQ(db.connect_timeout, milliseconds(250));
  EXPECT_EQ(db.idle_timeout, milliseconds(3'600'000));
  EXPECT_EQ(db.max_connections, 1'000'000u);
  EXPECT_EQ(db.proxy_protocol, ProxyProtocol::kV2);
  EXPECT_EQ(db.health_check, (HealthCheck{milliseconds(10'000), milliseconds(9'999), 1, 100}));
  EXPECT_EQ(config.handoff.dir, "/var/lib/seamless");
  EXPECT_EQ(config.handoff.lock_timeout, milliseconds(120'000));
  EXPECT_EQ(config.handoff.nft_table, "_seamless.prod-2");
  EXPECT_EQ(config.drain_timeout, milliseconds(0));
  EXPECT_EQ(config.metrics.listen->to_string(), "[::1]:9200");
  EXPECT_EQ(config.log.level, LogLevel::kDebug);
  EXPECT_EQ(config.log.format, LogFormat::kJson);
}

TEST(config_Parse, EnumsTakeEverySpelling) {
  const Config config = parse_ok(R"(
services:
  - {name: a, listen: "127.0.0.1:1", backends: [{address: "127.0.0.1:2"}], balance: round_robin, proxy_protocol: off}
  - {name: b, listen: "127.0.0.1:3", backends: [{address: "127.0.0.1:2"}], balance: source_hash, proxy_protocol: v1}
log: {level: warn}
)");
  ASSERT_EQ(config.services.size(), 2u);
  EXPECT_EQ(config.services[0].balance, Balance::kRoundRobin);
  EXPECT_EQ(config.services[0].proxy_protocol, ProxyProtocol::kOff);
  EXPECT_EQ(config.services[1].balance, Balance::kSourceHash);
  EXPECT_EQ(config.services[1].proxy_protocol, ProxyProtocol::kV1);
  EXPECT_EQ(config.log.level, LogLevel::kWarn);
  EXPECT_EQ(parse_ok(std::string(kMinimal) + "log: {level: error}\n").log.level, LogLevel::kError);
}

TEST(config_Parse, MetricsCanBeSwitchedOff) {
  for (const char* listen : {"off", "\"\"", "''", "", "~", "null"}) {
    const Config config = parse_ok(std::string(kMinimal) + "metrics:\n  listen: " + listen + "\n");
    EXPECT_FALSE(config.metrics.listen.has_value()) << listen;
  }
}

TEST(config_Parse, DurationsInEveryUnit) {
  const Config config = parse_ok(R"(
services:
  - name: web
    listen: "127.0.0.1:8080"
    backends: [{address: "127.0.0.1:9000"}]
    connect_timeout: 1500ms
    idle_timeout: 2m
handoff: {lock_timeout: 1h}
drain_timeout: 45s
)");
  EXPECT_EQ(config.services[0].connect_timeout, milliseconds(1'500));
  EXPECT_EQ(config.services[0].idle_timeout, milliseconds(120'000));
  EXPECT_EQ(config.handoff.lock_timeout, milliseconds(3'600'000));
  EXPECT_EQ(config.drain_timeout, milliseconds(45'000));
}

// The listeners that may share a port: different families or specific addresses,
// and an IPv6-only wildcard beside an IPv4 one.
TEST(config_Parse, ListenersThatDoNotOverlap) {
  const Config config = parse_ok(R"(
services:
  - {name: v6, listen: "[::]:80", v6only: true, backends: [{address: "[::1]:8080"}]}
  - {name: v4, listen: "0.0.0.0:80", backends: [{address: "127.0.0.1:8080"}]}
  - {name: lo4, listen: "127.0.0.1:81", backends: [{address: "127.0.0.1:8080"}]}
  - {name: lo6, listen: "[::1]:81", backends: [{address: "127.0.0.1:8080"}]}
  - {name: other, listen: "127.0.0.2:81", backends: [{address: "127.0.0.1:8080"}]}
metrics: {listen: "0.0.0.0:9100"}
)");
  EXPECT_EQ(config.services.size(), 5u);
  EXPECT_TRUE(config.services[0].v6only);
}

TEST(config_Parse, AnchorsAndAliasesAreYaml) {
  const Config config = parse_ok(R"(
services:
  - name: a
    listen: "127.0.0.1:1"
    backends: &pool
      - address: "198.18.0.1:80"
      - address: "198.18.0.2:80"
    health_check: &fast {interval: 500ms, timeout: 100ms}
  - name: b
    listen: "127.0.0.1:2"
    backends: *pool
    health_check: *fast
)");
  ASSERT_EQ(config.services.size(), 2u);
  EXPECT_EQ(config.services[0].backends, config.services[1].backends);
  EXPECT_EQ(config.services[1].health_check.timeout, milliseconds(100));
}

TEST(config_Parse, LoadConfigFileNamesPathAndErrno) {
  const Result<Config> missing = load_config_file("/nonexistent/seamless.yaml");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code, ENOENT);
  EXPECT_EQ(missing.error().message,
            "read config /nonexistent/seamless.yaml: No such file or directory");

  const Result<Config> directory = load_config_file("config");
  ASSERT_FALSE(directory.ok());
  EXPECT_EQ(directory.error().code, EISDIR);
  EXPECT_EQ(directory.error().message, "read config config: Is a directory");
}

}  // namespace
}  // namespace seamless::config
