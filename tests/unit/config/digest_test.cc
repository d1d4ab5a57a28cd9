// The digest fingerprints meaning, not spelling: formatting, comments, key order,
// quoting, duration units and defaults written out must not change it; any value must.
#include "config/digest.h"

#include <gtest/gtest.h>

#include "config/load.h"

namespace seamless::config {
namespace {

Config parse_ok(std::string_view yaml) {
  ConfigParse parsed = parse_config(yaml, "t.yaml");
  for (const std::string& error : parsed.errors) ADD_FAILURE() << error;
  return parsed.ok() ? *parsed.config : Config{};
}

constexpr std::string_view kBlockStyle = R"(
services:
  - name: web
    listen: "127.0.0.1:8080"
    backends:
      - address: "[2001:db8::1]:9000"
    connect_timeout: 60s
)";

constexpr std::string_view kSameMeaning = R"(
# Comments, flow style, other key order, no quotes, another unit, defaults spelled out.
log: {format: text, level: info}
services: [{backends: [{weight: 1, address: "[2001:DB8:0::1]:9000"}],
            connect_timeout: 1m, listen: 127.0.0.1:8080, name: 'web', v6only: false,
            health_check: {fall: 3, rise: 2, timeout: 1000ms, interval: 2s}}]
drain_timeout: 30s
metrics:
  listen: 127.0.0.1:9100   # the default
)";

TEST(config_Digest, IgnoresSpellingOfTheSameConfig) {
  const Config a = parse_ok(kBlockStyle);
  const Config b = parse_ok(kSameMeaning);
  EXPECT_EQ(a, b);
  EXPECT_EQ(canonical_yaml(a), canonical_yaml(b));
  EXPECT_EQ(config_digest(a), config_digest(b));
}

TEST(config_Digest, IsSixtyFourLowercaseHexDigits) {
  const std::string digest = config_digest(parse_ok(kBlockStyle));
  ASSERT_EQ(digest.size(), 64u);
  EXPECT_EQ(digest.find_first_not_of("0123456789abcdef"), std::string::npos);
}

TEST(config_Digest, ChangesWithEveryValue) {
  const Config base = parse_ok(kBlockStyle);
  const std::string base_digest = config_digest(base);
  std::vector<Config> variants(12, base);
  variants[0].services[0].name = "web2";
  variants[1].services[0].listen.port = 8081;
  variants[2].services[0].v6only = true;
  variants[3].services[0].backends[0].weight = 2;
  variants[4].services[0].balance = Balance::kSourceHash;
  variants[5].services[0].idle_timeout = std::chrono::milliseconds(1);
  variants[6].services[0].health_check.fall = 4;
  variants[7].handoff.nft_table = "other";
  variants[8].drain_timeout = std::chrono::milliseconds(29'999);
  variants[9].metrics.listen.reset();
  variants[10].log.format = LogFormat::kJson;
  variants[11].services.push_back(base.services[0]);
  for (std::size_t i = 0; i < variants.size(); ++i) {
    EXPECT_NE(config_digest(variants[i]), base_digest) << "variant " << i;
  }
}

TEST(config_Digest, CanonicalYamlParsesBackToTheSameConfig) {
  const Config config = parse_ok(R"(
services:
  - name: a
    listen: "[::]:443"
    v6only: true
    backends: [{address: "198.18.0.1:443", weight: 7}, {address: "[::1]:443"}]
    proxy_protocol: v1
    health_check: {interval: 1500ms, timeout: 1s}
handoff: {dir: "/run/a \"quoted\" \\ dir", nft_table: t}
metrics: {listen: off}
log: {level: error}
)");
  const std::string text = canonical_yaml(config);
  EXPECT_EQ(parse_ok(text), config) << text;
  EXPECT_EQ(canonical_yaml(parse_ok(text)), text);
}

// Pins the canonical form: the handoff file records digests, so a change here
// must be deliberate (and noted in the release).
TEST(config_Digest, CanonicalFormIsStable) {
  const Config config = parse_ok(kBlockStyle);
  EXPECT_EQ(canonical_yaml(config), R"(services:
  - name: "web"
    listen: "127.0.0.1:8080"
    v6only: false
    backends:
      - address: "[2001:db8::1]:9000"
        weight: 1
    balance: round_robin
    connect_timeout: 1m
    idle_timeout: 0s
    max_connections: 10000
    proxy_protocol: off
    health_check:
      interval: 2s
      timeout: 1s
      rise: 2
      fall: 3
handoff:
  dir: "/run/seamless"
  lock_timeout: 30s
  nft_table: "seamless"
drain_timeout: 30s
metrics:
  listen: "127.0.0.1:9100"
log:
  level: info
  format: text
)");
  EXPECT_EQ(config_digest(config),
            "0683ebaf1295f65f897c683e356e8848fd1954a70284e72d862714a5c814f2d3");
}

}  // namespace
}  // namespace seamless::config
