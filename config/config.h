// Config: the validated configuration as a plain value. Every field carries its
// default, so a Config{} with services added is what a file with only `services`
// means; load.h turns YAML into one, digest.h fingerprints one.
//
// Defaults (also listed in config/README.md):
//   services[].v6only                  false (a "[::]" listener is dual-stack)
//   services[].backends[].weight       1      (1-256)
//   services[].balance                 round_robin
//   services[].connect_timeout         5s     (at least 1ms)
//   services[].idle_timeout            0s     (0 = never)
//   services[].max_connections         10000  (1-1000000)
//   services[].proxy_protocol          off
//   services[].health_check.interval   2s     (at least 1ms)
//   services[].health_check.timeout    1s     (at least 1ms, below interval)
//   services[].health_check.rise       2      (1-100)
//   services[].health_check.fall       3      (1-100)
//   handoff.dir                        /run/seamless
//   handoff.lock_timeout               30s    (at least 1ms)
//   handoff.nft_table                  seamless
//   drain_timeout                      30s
//   metrics.listen                     127.0.0.1:9100 ("off" or empty disables it)
//   log.level                          info
//   log.format                         text
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/socket_address.h"

namespace seamless::config {

using std::chrono::milliseconds;

enum class Balance { kRoundRobin, kLeastConn, kSourceHash };
enum class ProxyProtocol { kOff, kV1, kV2 };  // the PROXY header sent to the backend
enum class LogLevel { kDebug, kInfo, kWarn, kError };
enum class LogFormat { kText, kJson };

// The spelling in the config file: "round_robin", "v2", "warn", "json".
std::string_view to_string(Balance value);
std::string_view to_string(ProxyProtocol value);
std::string_view to_string(LogLevel value);
std::string_view to_string(LogFormat value);

struct Backend {
  SocketAddress address;  // required; a pair remembers its backend by this, not by index
  uint32_t weight = 1;

  bool operator==(const Backend&) const = default;
};

struct HealthCheck {
  milliseconds interval{2000};
  milliseconds timeout{1000};
  uint32_t rise = 2;  // consecutive successes before a down backend is up again
  uint32_t fall = 3;  // consecutive failures before an up backend is down

  bool operator==(const HealthCheck&) const = default;
};

struct Service {
  std::string name;               // required, unique, [a-z0-9_-]{1,64}: it labels metrics
  SocketAddress listen;           // required
  bool v6only = false;            // IPv6 listeners only
  std::vector<Backend> backends;  // required, not empty, no address twice
  Balance balance = Balance::kRoundRobin;
  milliseconds connect_timeout{5000};
  milliseconds idle_timeout{0};
  uint32_t max_connections = 10000;
  ProxyProtocol proxy_protocol = ProxyProtocol::kOff;
  HealthCheck health_check;

  bool operator==(const Service&) const = default;
};

struct Handoff {
  std::string dir = "/run/seamless";  // an absolute path
  milliseconds lock_timeout{30000};
  std::string nft_table = "seamless";  // [A-Za-z_][A-Za-z0-9_.-]*, at most 255 bytes

  bool operator==(const Handoff&) const = default;
};

// The default metrics listener, 127.0.0.1:9100.
SocketAddress default_metrics_listen();

struct Metrics {
  std::optional<SocketAddress> listen = default_metrics_listen();  // nullopt: no exposer

  bool operator==(const Metrics&) const = default;
};

struct Log {
  LogLevel level = LogLevel::kInfo;
  LogFormat format = LogFormat::kText;

  bool operator==(const Log&) const = default;
};

struct Config {
  std::vector<Service> services;  // required, not empty
  Handoff handoff;
  milliseconds drain_timeout{30000};
  Metrics metrics;
  Log log;

  bool operator==(const Config&) const = default;
};

}  // namespace seamless::config
