// Metrics: the typed API the proxy calls to update the shared segment (segment.h).
//
// Every value lives in the segment, not in this object, so it continues across a worker
// crash, a reload and an exec: a counter never goes backwards, and a new worker reads the
// health state its predecessor found (backend_up) instead of marking dead backends up.
//
// Data path: look a service (or backend) up once, keep the handle, and call it per event;
// each call is one relaxed atomic add on the shared slot, with no lookup and no lock.
//   Result<ServiceMetrics> pg = metrics.service("pg");   // at config load
//   pg->connection_opened(); pg->add_bytes(Direction::kIn, n);   // per event
// Handles point into the segment's mapping: they are valid while the MetricsSegment lives.
// The by-name calls further down look the slot up each time; use them off the data path.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string_view>

#include "base/result.h"
#include "metrics/labels.h"
#include "metrics/segment.h"
#include "metrics/segment_layout.h"

namespace seamless::metrics {

// One service's counters: seamless_connections_{active,total,rejected_total},
// seamless_bytes_total.
class ServiceMetrics {
 public:
  void connection_opened() const {
    layout::atomic(slot_->total).fetch_add(1, std::memory_order_relaxed);
    layout::atomic(slot_->active).fetch_add(1, std::memory_order_relaxed);
  }
  void connection_closed() const {
    layout::atomic(slot_->active).fetch_sub(1, std::memory_order_relaxed);
  }
  // Re-bases the active gauge, e.g. after a restore, to the number of pairs the worker
  // really carries: the predecessor may have died between a close and its decrement.
  void set_active(std::int64_t n) const {
    layout::atomic(slot_->active).store(n, std::memory_order_relaxed);
  }
  void add_bytes(Direction direction, std::uint64_t n) const {
    layout::atomic(slot_->bytes[static_cast<std::size_t>(direction)])
        .fetch_add(n, std::memory_order_relaxed);
  }
  // A client closed without being served. A kNoBackend client was accepted first (it is
  // in total(); call connection_closed() for it as usual); a kMaxConnections one was not.
  void connection_rejected(RejectReason reason) const {
    layout::atomic(slot_->rejected[static_cast<std::size_t>(reason)])
        .fetch_add(1, std::memory_order_relaxed);
  }

  std::string_view name() const { return slot_->name; }
  std::int64_t active() const;
  std::uint64_t total() const;
  std::uint64_t bytes(Direction direction) const;
  std::uint64_t rejected(RejectReason reason) const;

 private:
  friend class Metrics;
  explicit ServiceMetrics(layout::ServiceSlot* slot) : slot_(slot) {}
  layout::ServiceSlot* slot_;
};

// One backend's health and seamless_backend_connect_failures_total.
class BackendMetrics {
 public:
  void set_up(bool up) const {
    layout::atomic(slot_->health)
        .store(up ? layout::kHealthUp : layout::kHealthDown, std::memory_order_relaxed);
  }
  // nullopt until a health check (of this or an earlier worker) has decided.
  std::optional<bool> up() const;
  void connect_failed() const {
    layout::atomic(slot_->connect_failures).fetch_add(1, std::memory_order_relaxed);
  }
  std::uint64_t connect_failures() const;

  std::string_view service() const { return slot_->service; }
  std::string_view address() const { return slot_->address; }

 private:
  friend class Metrics;
  explicit BackendMetrics(layout::BackendSlot* slot) : slot_(slot) {}
  layout::BackendSlot* slot_;
};

class Metrics {
 public:
  // Borrows the segment, which must outlive this object and every handle it gives out.
  explicit Metrics(MetricsSegment& segment) : segment_(&segment.data()) {}

  // Find-or-insert (and re-list, if it was retired). Fails on a name that is empty or too
  // long for the layout (63 / 127 bytes), or a full table.
  Result<ServiceMetrics> service(std::string_view name);
  Result<BackendMetrics> backend(std::string_view service, std::string_view address);
  // Lookups that never insert.
  std::optional<ServiceMetrics> find_service(std::string_view name) const;
  std::optional<BackendMetrics> find_backend(std::string_view service,
                                             std::string_view address) const;
  // Stops exporting a service or backend that left the config. Its counters stay in the
  // segment and continue from where they were if it comes back.
  void retire_service(std::string_view name);
  void retire_backend(std::string_view service, std::string_view address);

  // By-name conveniences (one lookup per call).
  Status connection_opened(std::string_view service);
  Status connection_closed(std::string_view service);
  Status add_bytes(std::string_view service, Direction direction, std::uint64_t n);
  Status set_backend_up(std::string_view service, std::string_view backend, bool up);
  Status backend_connect_failed(std::string_view service, std::string_view backend);
  std::optional<bool> backend_up(std::string_view service, std::string_view backend) const;

  // Handoffs and the process (keeper) as a whole.
  void record_handoff(HandoffReason reason, HandoffResult result);
  void observe_phase(HandoffPhase phase, double seconds);
  void observe_phase(HandoffPhase phase, std::chrono::nanoseconds duration);
  void record_handoff_connections(HandoffConnectionResult result, std::uint64_t n = 1);
  void set_queued_bytes(std::uint64_t bytes);
  void worker_restarted(WorkerRestartCause cause);
  void set_locked_flows(std::int64_t flows);
  std::uint64_t bump_generation();  // returns the new generation
  std::uint64_t generation() const;
  void set_process_start_time(double unix_seconds);

 private:
  layout::Segment* segment_;
};

}  // namespace seamless::metrics
