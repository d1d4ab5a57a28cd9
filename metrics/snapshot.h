// Snapshot: a plain copy of everything the segment holds, read at scrape time. It is what
// the collector turns into Prometheus families, and what tests and tools read values from.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "metrics/labels.h"
#include "metrics/segment_layout.h"

namespace seamless::metrics {

struct ServiceSample {
  std::string name;
  std::int64_t active = 0;
  std::uint64_t total = 0;
  std::array<std::uint64_t, kDirectionCount> bytes{};
  std::array<std::uint64_t, kRejectReasonCount> rejected{};
};

struct BackendSample {
  std::string service;
  std::string address;
  std::optional<bool> up;  // nullopt: not checked yet
  std::uint64_t connect_failures = 0;
};

struct PhaseSample {
  std::array<std::uint64_t, layout::kPhaseBuckets> buckets{};  // per bucket, not cumulative
  std::uint64_t count = 0;                                     // the sum of buckets
  double sum_seconds = 0;
};

struct Snapshot {
  std::uint64_t generation = 0;
  double process_start_time = 0;
  std::int64_t locked_flows = 0;
  std::uint64_t queued_bytes = 0;
  std::vector<ServiceSample> services;  // listed ones, by name
  std::vector<BackendSample> backends;  // listed ones, by (service, address)
  std::array<std::array<std::uint64_t, kHandoffResultCount>, kHandoffReasonCount> handoffs{};
  std::array<std::uint64_t, kHandoffConnectionResultCount> handoff_connections{};
  std::array<std::uint64_t, kWorkerRestartCauseCount> worker_restarts{};
  std::array<PhaseSample, kHandoffPhaseCount> phases{};
};

// Reads the segment with atomic loads; safe while other processes update it. Each value is
// exact; values are not a consistent cut across slots (nor need they be for Prometheus).
Snapshot take_snapshot(layout::Segment& segment);

}  // namespace seamless::metrics
