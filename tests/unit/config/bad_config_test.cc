// The bad-config corpus: each file is wrong in one way (or, at the end, several),
// and the test pins the exact message and its line:column, so that a reworded or
// misplaced error is a visible change. Positions are 1-based, as editors show them.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "config/load.h"

namespace seamless::config {
namespace {

struct BadConfig {
  const char* name;
  std::string_view yaml;
  std::vector<std::string> errors;  // every one, in document order
};

// A valid service to build on; its lines are 1-5 wherever it opens a file:
//   services:
//     - name: web                          name at 2:5, value at 2:11
//       listen: "127.0.0.1:8080"           value at 3:13
//       backends:                          key at 4:5
//         - address: "127.0.0.1:9000"      value at 5:18
#define WEB_SERVICE                  \
  "services:\n"                      \
  "  - name: web\n"                  \
  "    listen: \"127.0.0.1:8080\"\n" \
  "    backends:\n"                  \
  "      - address: \"127.0.0.1:9000\"\n"

const std::string kKnownServiceKeys =
    "(expected one of: name, listen, v6only, backends, balance, connect_timeout, idle_timeout, "
    "max_connections, proxy_protocol, health_check)";

const std::vector<BadConfig> kBadConfigs = {
    // --- YAML itself ---
    {"SyntaxUnclosedFlow",
     "services: [\n",
     {"t.yaml:2:1: invalid YAML: end of sequence flow not found"}},
    {"SyntaxIllegalMapValue", "services: a: b\n", {"t.yaml:1:12: invalid YAML: illegal map value"}},
    {"SyntaxBadIndent",
     "services:\n  - name: web\n   listen: x\n",
     {"t.yaml:3:4: invalid YAML: end of sequence not found"}},
    {"TwoDocuments",
     WEB_SERVICE "---\nservices: []\n",
     {"t.yaml:6:1: expected one YAML document, but another starts here"}},
    // yaml-cpp's LoadAll never returns on this one (found by the fuzzer).
    {"StrayCommaAfterDocument",
     "{services: [{name: web, listen: \"127.0.0.1:80\", backends: [{address: "
     "\"127.0.0.1:81\"}]}]},\n",
     {"t.yaml:1:89: expected one YAML document, but another starts here"}},
    {"EmptyFile", "", {"t.yaml:1:1: services: missing required key"}},
    {"OnlyComments", "# nothing here\n", {"t.yaml:1:1: services: missing required key"}},
    {"TopLevelSequence", "- a\n- b\n", {"t.yaml:1:1: expected a mapping, got a sequence"}},
    {"TopLevelScalar", "services\n", {"t.yaml:1:1: expected a mapping, got \"services\""}},

    // --- keys ---
    {"UnknownTopLevelKey",
     WEB_SERVICE "servces: []\n",
     {"t.yaml:6:1: servces: unknown key (expected one of: services, handoff, drain_timeout, "
      "metrics, log)"}},
    {"UnknownServiceKey",
     WEB_SERVICE "    colour: blue\n",
     {"t.yaml:6:5: services[0].colour: unknown key " + kKnownServiceKeys}},
    {"UnknownBackendKey",
     WEB_SERVICE "        port: 80\n",
     {"t.yaml:6:9: services[0].backends[0].port: unknown key (expected one of: address, weight)"}},
    {"UnknownHealthCheckKey",
     WEB_SERVICE "    health_check: {interval: 2s, path: /}\n",
     {"t.yaml:6:34: services[0].health_check.path: unknown key (expected one of: interval, "
      "timeout, rise, fall)"}},
    {"UnknownHandoffKey",
     WEB_SERVICE "handoff:\n  directory: /run\n",
     {"t.yaml:7:3: handoff.directory: unknown key (expected one of: dir, lock_timeout, "
      "nft_table)"}},
    {"UnknownMetricsKey",
     WEB_SERVICE "metrics: {port: 9100}\n",
     {"t.yaml:6:11: metrics.port: unknown key (expected one of: listen)"}},
    {"UnknownLogKey",
     WEB_SERVICE "log: {file: /var/log/x}\n",
     {"t.yaml:6:7: log.file: unknown key (expected one of: level, format)"}},
    {"MergeKeyIsNotSupported",
     WEB_SERVICE "    <<: {balance: least_conn}\n",
     {"t.yaml:6:5: services[0].\"<<\": unknown key " + kKnownServiceKeys}},
    {"DuplicateKey",
     WEB_SERVICE "    listen: \"127.0.0.1:8081\"\n",
     {"t.yaml:6:5: services[0].listen: duplicate key (first at 3:5)"}},
    {"NonStringKey",
     WEB_SERVICE "    [a, b]: 1\n",
     {"t.yaml:6:5: services[0]: expected a string key, got a sequence"}},

    // --- required keys and empty lists ---
    {"MissingServices", "log: {level: info}\n", {"t.yaml:1:1: services: missing required key"}},
    {"EmptyServices", "services: []\n", {"t.yaml:1:11: services: must list at least one service"}},
    {"MissingName",
     "services:\n  - listen: \"127.0.0.1:8080\"\n    backends: [{address: \"127.0.0.1:9000\"}]\n",
     {"t.yaml:2:5: services[0].name: missing required key"}},
    {"MissingListen",
     "services:\n  - name: web\n    backends: [{address: \"127.0.0.1:9000\"}]\n",
     {"t.yaml:2:5: services[0].listen: missing required key"}},
    {"MissingBackends",
     "services:\n  - name: web\n    listen: \"127.0.0.1:8080\"\n",
     {"t.yaml:2:5: services[0].backends: missing required key"}},
    {"MissingBackendAddress",
     WEB_SERVICE "      - weight: 2\n",
     {"t.yaml:6:9: services[0].backends[1].address: missing required key"}},
    {"EmptyBackends",
     "services:\n  - name: web\n    listen: \"127.0.0.1:8080\"\n    backends: []\n",
     {"t.yaml:4:15: services[0].backends: must list at least one backend"}},

    // --- wrong types ---
    {"ServicesIsAMapping",
     "services: {name: web}\n",
     {"t.yaml:1:11: services: expected a sequence, got a mapping"}},
    {"ServiceIsAScalar",
     "services: [web]\n",
     {"t.yaml:1:12: services[0]: expected a mapping, got \"web\""}},
    {"NameIsAMapping",
     "services:\n  - name: {first: web}\n    listen: \"127.0.0.1:8080\"\n"
     "    backends: [{address: \"127.0.0.1:9000\"}]\n",
     {"t.yaml:2:11: services[0].name: expected a string, got a mapping"}},
    {"BackendsIsAScalar",
     "services:\n  - name: web\n    listen: \"127.0.0.1:8080\"\n    backends: 127.0.0.1:9000\n",
     {"t.yaml:4:15: services[0].backends: expected a sequence, got \"127.0.0.1:9000\""}},
    {"EmptyValue",
     WEB_SERVICE "    connect_timeout:\n",
     {"t.yaml:6:5: services[0].connect_timeout: expected a duration, got an empty value"}},
    {"HealthCheckIsAScalar",
     WEB_SERVICE "    health_check: 2s\n",
     {"t.yaml:6:19: services[0].health_check: expected a mapping, got \"2s\""}},
    {"DrainTimeoutIsASequence",
     WEB_SERVICE "drain_timeout: [30s]\n",
     {"t.yaml:6:16: drain_timeout: expected a duration, got a sequence"}},
    {"WeightIsASequence",
     WEB_SERVICE "        weight: [1]\n",
     {"t.yaml:6:17: services[0].backends[0].weight: expected an integer from 1 to 256, got a "
      "sequence"}},

    // --- names ---
    {"NameUppercase",
     "services:\n  - name: Web\n    listen: \"127.0.0.1:8080\"\n"
     "    backends: [{address: \"127.0.0.1:9000\"}]\n",
     {"t.yaml:2:11: services[0].name: invalid service name \"Web\" (expected 1 to 64 characters "
      "from a-z, 0-9, _ and -)"}},
    {"NameEmpty",
     "services:\n  - name: \"\"\n    listen: \"127.0.0.1:8080\"\n"
     "    backends: [{address: \"127.0.0.1:9000\"}]\n",
     {"t.yaml:2:11: services[0].name: invalid service name \"\" (expected 1 to 64 characters "
      "from a-z, 0-9, _ and -)"}},
    {"DuplicateServiceName",
     WEB_SERVICE "  - name: web\n    listen: \"127.0.0.1:8081\"\n"
                 "    backends: [{address: \"127.0.0.1:9000\"}]\n",
     {"t.yaml:6:11: services[1].name: duplicate service name \"web\" (first at 2:11)"}},

    // --- addresses ---
    {"ListenPortTooLarge",
     "services:\n  - name: web\n    listen: \"127.0.0.1:99999\"\n"
     "    backends: [{address: \"127.0.0.1:9000\"}]\n",
     {"t.yaml:3:13: services[0].listen: invalid port \"99999\" (expected 1-65535)"}},
    {"BackendPortTooLarge",
     "services:\n  - name: web\n    listen: \"127.0.0.1:8080\"\n    backends:\n"
     "      - address: \"127.0.0.1:9000\"\n      - address: \"127.0.0.1:99999\"\n",
     {"t.yaml:6:18: services[0].backends[1].address: invalid port \"99999\" (expected 1-65535)"}},
    {"ListenPortZero",
     "services:\n  - name: web\n    listen: 0.0.0.0:0\n"
     "    backends: [{address: \"127.0.0.1:9000\"}]\n",
     {"t.yaml:3:13: services[0].listen: invalid port \"0\" (expected 1-65535)"}},
    {"ListenHostName",
     "services:\n  - name: web\n    listen: localhost:8080\n"
     "    backends: [{address: \"127.0.0.1:9000\"}]\n",
     {"t.yaml:3:13: services[0].listen: invalid address \"localhost:8080\" (expected "
      "\"1.2.3.4:80\" or \"[::1]:80\"; host names are not resolved)"}},
    {"ListenIpv6WithoutBrackets",
     "services:\n  - name: web\n    listen: \"::1:8080\"\n"
     "    backends: [{address: \"127.0.0.1:9000\"}]\n",
     {"t.yaml:3:13: services[0].listen: invalid address \"::1:8080\" (an IPv6 address needs "
      "brackets: \"[::1]:80\")"}},
    {"ListenWithoutPort",
     "services:\n  - name: web\n    listen: 127.0.0.1\n"
     "    backends: [{address: \"127.0.0.1:9000\"}]\n",
     {"t.yaml:3:13: services[0].listen: invalid address \"127.0.0.1\" (missing \":port\")"}},
    {"BackendIsWildcard",
     "services:\n  - name: web\n    listen: \"127.0.0.1:8080\"\n"
     "    backends: [{address: \"0.0.0.0:9000\"}]\n",
     {"t.yaml:4:26: services[0].backends[0].address: 0.0.0.0:9000 is a wildcard; a backend "
      "needs a specific address"}},
    {"BackendTwice",
     WEB_SERVICE "      - address: 127.0.0.1:9000\n",
     {"t.yaml:6:18: services[0].backends[1].address: duplicate backend 127.0.0.1:9000 (first at "
      "5:18)"}},

    // --- listeners that would collide ---
    {"SameListenTwice",
     WEB_SERVICE "  - name: api\n    listen: \"127.0.0.1:8080\"\n"
                 "    backends: [{address: \"127.0.0.1:9001\"}]\n",
     {"t.yaml:7:13: services[1].listen: 127.0.0.1:8080 is already taken by services[0].listen "
      "at 3:13"}},
    {"Ipv4WildcardBesideDualStack",
     "services:\n"
     "  - {name: a, listen: \"[::]:80\", backends: [{address: \"127.0.0.1:9000\"}]}\n"
     "  - {name: b, listen: \"0.0.0.0:80\", backends: [{address: \"127.0.0.1:9000\"}]}\n",
     {"t.yaml:3:23: services[1].listen: 0.0.0.0:80 overlaps [::]:80 of services[0].listen at "
      "2:23; a dual-stack [::] listener also takes IPv4, v6only: true keeps it to IPv6"}},
    {"WildcardBesideSpecificAddress",
     "services:\n"
     "  - {name: a, listen: \"0.0.0.0:80\", backends: [{address: \"127.0.0.1:9000\"}]}\n"
     "  - {name: b, listen: \"127.0.0.1:80\", backends: [{address: \"127.0.0.1:9000\"}]}\n",
     {"t.yaml:3:23: services[1].listen: 127.0.0.1:80 overlaps 0.0.0.0:80 of services[0].listen "
      "at 2:23"}},
    {"MetricsOnAServicePort",
     WEB_SERVICE "metrics: {listen: \"0.0.0.0:8080\"}\n",
     {"t.yaml:6:19: metrics.listen: 0.0.0.0:8080 overlaps 127.0.0.1:8080 of services[0].listen "
      "at 3:13"}},
    {"V6onlyOnIpv4Listener",
     WEB_SERVICE "    v6only: true\n",
     {"t.yaml:6:13: services[0].v6only: v6only: true needs an IPv6 listen address, not "
      "127.0.0.1:8080"}},
    {"V6onlyNotABool",
     WEB_SERVICE "    v6only: yes\n",
     {"t.yaml:6:13: services[0].v6only: invalid value \"yes\" (expected true or false)"}},

    // --- numbers, enums, durations ---
    {"WeightZero",
     WEB_SERVICE "        weight: 0\n",
     {"t.yaml:6:17: services[0].backends[0].weight: invalid value \"0\" (expected an integer "
      "from 1 to 256)"}},
    {"WeightTooLarge",
     WEB_SERVICE "        weight: 257\n",
     {"t.yaml:6:17: services[0].backends[0].weight: invalid value \"257\" (expected an integer "
      "from 1 to 256)"}},
    {"WeightNegative",
     WEB_SERVICE "        weight: -1\n",
     {"t.yaml:6:17: services[0].backends[0].weight: invalid value \"-1\" (expected an integer "
      "from 1 to 256)"}},
    {"MaxConnectionsTooLarge",
     WEB_SERVICE "    max_connections: 99999999999\n",
     {"t.yaml:6:22: services[0].max_connections: invalid value \"99999999999\" (expected an "
      "integer from 1 to 1000000)"}},
    {"BalanceUnknown",
     WEB_SERVICE "    balance: random\n",
     {"t.yaml:6:14: services[0].balance: invalid value \"random\" (expected round_robin, "
      "least_conn or source_hash)"}},
    {"ProxyProtocolUnknown",
     WEB_SERVICE "    proxy_protocol: v3\n",
     {"t.yaml:6:21: services[0].proxy_protocol: invalid value \"v3\" (expected off, v1 or v2)"}},
    {"DurationWithoutUnit",
     WEB_SERVICE "    connect_timeout: 5\n",
     {"t.yaml:6:22: services[0].connect_timeout: invalid duration \"5\" (expected an integer "
      "and a unit: 250ms, 5s, 2m, 1h)"}},
    {"DurationFraction",
     WEB_SERVICE "drain_timeout: 1.5s\n",
     {"t.yaml:6:16: drain_timeout: invalid duration \"1.5s\" (expected an integer and a unit: "
      "250ms, 5s, 2m, 1h)"}},
    {"DurationTooLarge",
     WEB_SERVICE "    idle_timeout: 9999999999999h\n",
     {"t.yaml:6:19: services[0].idle_timeout: duration \"9999999999999h\" is too large"}},
    {"ConnectTimeoutZero",
     WEB_SERVICE "    connect_timeout: 0s\n",
     {"t.yaml:6:22: services[0].connect_timeout: duration \"0s\" is too short (at least 1ms)"}},
    {"HealthTimeoutEqualsInterval",
     WEB_SERVICE "    health_check: {interval: 1s, timeout: 1s}\n",
     {"t.yaml:6:43: services[0].health_check.timeout: timeout 1s must be shorter than interval "
      "1s"}},
    {"HealthIntervalBelowDefaultTimeout",
     WEB_SERVICE "    health_check:\n      interval: 500ms\n",
     {"t.yaml:7:17: services[0].health_check.interval: timeout 1s must be shorter than interval "
      "500ms"}},
    {"HealthRiseZero",
     WEB_SERVICE "    health_check: {rise: 0}\n",
     {"t.yaml:6:26: services[0].health_check.rise: invalid value \"0\" (expected an integer "
      "from 1 to 100)"}},
    {"HandoffDirRelative",
     WEB_SERVICE "handoff: {dir: run/seamless}\n",
     {"t.yaml:6:16: handoff.dir: invalid directory \"run/seamless\" (expected an absolute path)"}},
    {"HandoffDirControlCharacter",
     WEB_SERVICE "handoff: {dir: \"/run/a\\tb\"}\n",
     {"t.yaml:6:16: handoff.dir: invalid directory \"/run/a\\x09b\" (control characters)"}},
    {"NftTableWithSpace",
     WEB_SERVICE "handoff: {nft_table: \"my table\"}\n",
     {"t.yaml:6:22: handoff.nft_table: invalid nftables table name \"my table\" (expected a "
      "letter or _, then letters, digits, _, . or -; at most 255 characters)"}},
    {"NftTableStartsWithDigit",
     WEB_SERVICE "handoff: {nft_table: 1seamless}\n",
     {"t.yaml:6:22: handoff.nft_table: invalid nftables table name \"1seamless\" (expected a "
      "letter or _, then letters, digits, _, . or -; at most 255 characters)"}},
    {"LockTimeoutZero",
     WEB_SERVICE "handoff: {lock_timeout: 0ms}\n",
     {"t.yaml:6:25: handoff.lock_timeout: duration \"0ms\" is too short (at least 1ms)"}},
    {"MetricsListenInvalid",
     WEB_SERVICE "metrics: {listen: \"127.0.0.1\"}\n",
     {"t.yaml:6:19: metrics.listen: invalid address \"127.0.0.1\" (missing \":port\")"}},
    {"LogLevelUnknown",
     WEB_SERVICE "log: {level: verbose}\n",
     {"t.yaml:6:14: log.level: invalid value \"verbose\" (expected debug, info, warn or error)"}},
    {"LogFormatUnknown",
     WEB_SERVICE "log: {format: xml}\n",
     {"t.yaml:6:15: log.format: invalid value \"xml\" (expected text or json)"}},

    // --- all errors at once, in document order, not just the first ---
    {"EveryErrorIsReported",
     "log: {level: loud}\n"
     "services:\n"
     "  - name: web\n"
     "    listen: \"127.0.0.1:99999\"\n"
     "    backends:\n"
     "      - address: \"127.0.0.1:9000\"\n"
     "        weight: 0\n"
     "      - adress: \"127.0.0.1:9001\"\n"
     "  - name: web\n"
     "    listen: \"[::]:81\"\n"
     "    backends: []\n"
     "drain_timeout: soon\n",
     {
         "t.yaml:1:14: log.level: invalid value \"loud\" (expected debug, info, warn or error)",
         "t.yaml:4:13: services[0].listen: invalid port \"99999\" (expected 1-65535)",
         "t.yaml:7:17: services[0].backends[0].weight: invalid value \"0\" (expected an integer "
         "from 1 to 256)",
         "t.yaml:8:9: services[0].backends[1].adress: unknown key (expected one of: address, "
         "weight)",
         "t.yaml:8:9: services[0].backends[1].address: missing required key",
         "t.yaml:9:11: services[1].name: duplicate service name \"web\" (first at 3:11)",
         "t.yaml:11:15: services[1].backends: must list at least one backend",
         "t.yaml:12:16: drain_timeout: invalid duration \"soon\" (expected an integer and a "
         "unit: 250ms, 5s, 2m, 1h)",
     }},
};

// Test names in failures, not 48-byte dumps.
void PrintTo(const BadConfig& bad, std::ostream* out) { *out << bad.name; }

class config_BadConfig : public ::testing::TestWithParam<BadConfig> {};

TEST_P(config_BadConfig, ReportsExactlyTheseErrors) {
  const BadConfig& bad = GetParam();
  const ConfigParse parsed = parse_config(bad.yaml, "t.yaml");
  EXPECT_FALSE(parsed.ok());
  EXPECT_EQ(parsed.errors, bad.errors) << bad.yaml;
}

INSTANTIATE_TEST_SUITE_P(Corpus, config_BadConfig, ::testing::ValuesIn(kBadConfigs),
                         [](const auto& info) { return std::string(info.param.name); });

TEST(config_BadConfigCorpus, HasAtLeastThirtyCases) { EXPECT_GE(kBadConfigs.size(), 30u); }

// yaml-cpp stops at 500 levels of nesting (its stack guard) with the message "bad
// file"; the error says what is actually wrong.
TEST(config_BadConfigCorpus, DeepNestingIsAnErrorNotACrash) {
  const std::string yaml = "services: " + std::string(600, '[') + std::string(600, ']') + "\n";
  const ConfigParse parsed = parse_config(yaml, "t.yaml");
  EXPECT_EQ(parsed.errors, std::vector<std::string>{
                               "t.yaml:1:1211: invalid YAML: nested more than 499 levels deep"});
}

// Aliases let a few kilobytes name a million bad backends (found by the fuzzer:
// 1 GB of error strings); the reader stops at Diagnostics::kMaxErrors instead.
TEST(config_BadConfigCorpus, AliasBombStopsAfterAHundredErrors) {
  std::string yaml =
      "x: &b {address: \"1.2.3.4:5\", weight: 0}\nservices: [&s {name: A, backends: [*b";
  for (int i = 0; i < 500; ++i) yaml += ", *b";
  yaml += "]}";
  for (int i = 0; i < 500; ++i) yaml += ", *s";
  yaml += "]\n";
  const ConfigParse parsed = parse_config(yaml, "t.yaml");
  ASSERT_EQ(parsed.errors.size(), 101u);
  EXPECT_EQ(parsed.errors.back(), "t.yaml: stopped after 100 errors");
}

}  // namespace
}  // namespace seamless::config
