// The worker's live view of each configured service: its config, metrics handles,
// backends with their health and load, the balancer, and admission counts. Built once
// from the Config; a Pair points at its ServiceRuntime (and BackendRuntime), which the
// worker keeps at stable addresses for as long as any pair lives.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "config/config.h"
#include "metrics/metrics.h"
#include "proxy/balancer.h"
#include "repair/endpoint.h"

namespace seamless::proxy {

struct BackendRuntime {
  std::string address;        // as configured, "198.18.0.1:7001": metrics label, pair record
  repair::Endpoint endpoint;  // where to connect
  uint32_t weight = 1;
  uint64_t identity = 0;  // hash of `address`, for source_hash
  bool healthy = true;    // the health checker's verdict
  uint32_t active = 0;    // pairs on this backend, including connects in progress
  metrics::BackendMetrics metrics;
};

struct ServiceRuntime {
  config::Service config;
  metrics::ServiceMetrics metrics;
  std::vector<BackendRuntime> backends;  // config order; never resized after build
  Balancer balancer;
  uint32_t active = 0;  // pairs of this service, including those still connecting

  // max_connections rejections: the total, and what the last log line has not yet said.
  uint64_t rejected = 0;
  uint64_t rejected_unlogged = 0;
  uint64_t last_reject_log_ms = 0;

  // A healthy backend not in `tried` (indexes into `backends`), by the service's policy.
  std::optional<size_t> choose_backend(const std::vector<bool>& tried, uint64_t client_hash);
  // nullptr when `address` is not (or no longer) one of this service's backends.
  BackendRuntime* find_backend(std::string_view address);
};

// One runtime per service. A backend's health starts as the shared segment last saw it
// (a restarted worker must not mark dead backends up again), else up.
Result<std::vector<std::unique_ptr<ServiceRuntime>>> build_services(const config::Config& config,
                                                                    metrics::Metrics& metrics);

}  // namespace seamless::proxy
