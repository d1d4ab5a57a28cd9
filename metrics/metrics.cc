#include "metrics/metrics.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <string>

#include "metrics/slot_table.h"

namespace seamless::metrics {
namespace {

using std::memory_order_relaxed;

Status check_text(const char* what, std::string_view text, std::size_t capacity) {
  if (text.empty() || text.size() >= capacity || text.find('\0') != std::string_view::npos) {
    return Error::logic("metrics: " + std::string(what) + " \"" + std::string(text) +
                        "\" must be 1.." + std::to_string(capacity - 1) + " bytes without NUL");
  }
  return {};
}

bool same_text(const char* stored, std::size_t capacity, std::string_view text) {
  return ::strnlen(stored, capacity) == text.size() &&
         std::memcmp(stored, text.data(), text.size()) == 0;
}

auto service_matches(std::string_view name) {
  return [name](const layout::ServiceSlot& slot) {
    return same_text(slot.name, layout::kNameBytes, name);
  };
}

auto backend_matches(std::string_view service, std::string_view address) {
  return [service, address](const layout::BackendSlot& slot) {
    return same_text(slot.service, layout::kNameBytes, service) &&
           same_text(slot.address, layout::kAddressBytes, address);
  };
}

// Observations are clamped to a day so that no sum of realistic length can overflow the
// 64-bit nanosecond sum (2^64 ns is 584 years, i.e. 213,000 day-long observations).
std::uint64_t to_clamped_ns(double seconds) {
  constexpr double kMaxSeconds = 86'400;
  if (!(seconds > 0)) return 0;  // also catches NaN
  return static_cast<std::uint64_t>(std::llround(std::min(seconds, kMaxSeconds) * 1e9));
}

std::size_t bucket_index(std::uint64_t ns) {
  std::size_t i = 0;
  while (i < layout::kPhaseFiniteBuckets && ns > layout::kPhaseBucketBoundsNs[i]) ++i;
  return i;  // == kPhaseFiniteBuckets: the +Inf bucket
}

}  // namespace

std::int64_t ServiceMetrics::active() const {
  return layout::atomic(slot_->active).load(memory_order_relaxed);
}
std::uint64_t ServiceMetrics::total() const {
  return layout::atomic(slot_->total).load(memory_order_relaxed);
}
std::uint64_t ServiceMetrics::bytes(Direction direction) const {
  return layout::atomic(slot_->bytes[static_cast<std::size_t>(direction)])
      .load(memory_order_relaxed);
}
std::uint64_t ServiceMetrics::rejected(RejectReason reason) const {
  return layout::atomic(slot_->rejected[static_cast<std::size_t>(reason)])
      .load(memory_order_relaxed);
}

std::optional<bool> BackendMetrics::up() const {
  const std::uint64_t health = layout::atomic(slot_->health).load(memory_order_relaxed);
  if (health == layout::kHealthUnknown) return std::nullopt;
  return health == layout::kHealthUp;
}
std::uint64_t BackendMetrics::connect_failures() const {
  return layout::atomic(slot_->connect_failures).load(memory_order_relaxed);
}

Result<ServiceMetrics> Metrics::service(std::string_view name) {
  if (Status ok = check_text("service name", name, layout::kNameBytes); !ok) return ok.error();
  auto write_key = [name](layout::ServiceSlot& slot) {
    slots::store_text(slot.name, layout::kNameBytes, name);
  };
  Result<layout::ServiceSlot*> slot =
      slots::find_or_insert(segment_->services, layout::kMaxServices, slots::fnv1a(name),
                            service_matches(name), write_key, "service");
  if (!slot) return slot.error().context("service " + std::string(name));
  layout::atomic((*slot)->listed).store(1, memory_order_relaxed);
  return ServiceMetrics(*slot);
}

Result<BackendMetrics> Metrics::backend(std::string_view service, std::string_view address) {
  if (Status ok = check_text("service name", service, layout::kNameBytes); !ok) return ok.error();
  if (Status ok = check_text("backend address", address, layout::kAddressBytes); !ok) {
    return ok.error();
  }
  auto write_key = [service, address](layout::BackendSlot& slot) {
    slots::store_text(slot.service, layout::kNameBytes, service);
    slots::store_text(slot.address, layout::kAddressBytes, address);
  };
  Result<layout::BackendSlot*> slot = slots::find_or_insert(
      segment_->backends, layout::kMaxBackends, slots::fnv1a(service, address),
      backend_matches(service, address), write_key, "backend");
  if (!slot) return slot.error().context("backend " + std::string(address));
  layout::atomic((*slot)->listed).store(1, memory_order_relaxed);
  return BackendMetrics(*slot);
}

std::optional<ServiceMetrics> Metrics::find_service(std::string_view name) const {
  layout::ServiceSlot* slot = slots::find(segment_->services, layout::kMaxServices,
                                          slots::fnv1a(name), service_matches(name));
  if (slot == nullptr) return std::nullopt;
  return ServiceMetrics(slot);
}

std::optional<BackendMetrics> Metrics::find_backend(std::string_view service,
                                                    std::string_view address) const {
  layout::BackendSlot* slot =
      slots::find(segment_->backends, layout::kMaxBackends, slots::fnv1a(service, address),
                  backend_matches(service, address));
  if (slot == nullptr) return std::nullopt;
  return BackendMetrics(slot);
}

void Metrics::retire_service(std::string_view name) {
  if (auto found = find_service(name)) {
    layout::atomic(found->slot_->listed).store(0, memory_order_relaxed);
  }
}

void Metrics::retire_backend(std::string_view service, std::string_view address) {
  if (auto found = find_backend(service, address)) {
    layout::atomic(found->slot_->listed).store(0, memory_order_relaxed);
  }
}

Status Metrics::connection_opened(std::string_view service_name) {
  Result<ServiceMetrics> found = service(service_name);
  if (!found) return found.error();
  found->connection_opened();
  return {};
}

Status Metrics::connection_closed(std::string_view service_name) {
  Result<ServiceMetrics> found = service(service_name);
  if (!found) return found.error();
  found->connection_closed();
  return {};
}

Status Metrics::add_bytes(std::string_view service_name, Direction direction, std::uint64_t n) {
  Result<ServiceMetrics> found = service(service_name);
  if (!found) return found.error();
  found->add_bytes(direction, n);
  return {};
}

Status Metrics::set_backend_up(std::string_view service_name, std::string_view address, bool up) {
  Result<BackendMetrics> found = backend(service_name, address);
  if (!found) return found.error();
  found->set_up(up);
  return {};
}

Status Metrics::backend_connect_failed(std::string_view service_name, std::string_view address) {
  Result<BackendMetrics> found = backend(service_name, address);
  if (!found) return found.error();
  found->connect_failed();
  return {};
}

std::optional<bool> Metrics::backend_up(std::string_view service_name,
                                        std::string_view address) const {
  std::optional<BackendMetrics> found = find_backend(service_name, address);
  return found ? found->up() : std::nullopt;
}

void Metrics::record_handoff(HandoffReason reason, HandoffResult result) {
  layout::atomic(
      segment_->handoffs[static_cast<std::size_t>(reason)][static_cast<std::size_t>(result)])
      .fetch_add(1, memory_order_relaxed);
}

void Metrics::observe_phase(HandoffPhase phase, double seconds) {
  const std::uint64_t ns = to_clamped_ns(seconds);
  layout::PhaseHistogram& histogram = segment_->phases[static_cast<std::size_t>(phase)];
  layout::atomic(histogram.sum_ns).fetch_add(ns, memory_order_relaxed);
  layout::atomic(histogram.buckets[bucket_index(ns)]).fetch_add(1, memory_order_relaxed);
}

void Metrics::observe_phase(HandoffPhase phase, std::chrono::nanoseconds duration) {
  observe_phase(phase, std::chrono::duration<double>(duration).count());
}

void Metrics::record_handoff_connections(HandoffConnectionResult result, std::uint64_t n) {
  layout::atomic(segment_->handoff_connections[static_cast<std::size_t>(result)])
      .fetch_add(n, memory_order_relaxed);
}

void Metrics::set_queued_bytes(std::uint64_t bytes) {
  layout::atomic(segment_->header.queued_bytes).store(bytes, memory_order_relaxed);
}

void Metrics::worker_restarted(WorkerRestartCause cause) {
  layout::atomic(segment_->worker_restarts[static_cast<std::size_t>(cause)])
      .fetch_add(1, memory_order_relaxed);
}

void Metrics::set_locked_flows(std::int64_t flows) {
  layout::atomic(segment_->header.locked_flows).store(flows, memory_order_relaxed);
}

std::uint64_t Metrics::bump_generation() {
  return layout::atomic(segment_->header.generation).fetch_add(1, memory_order_relaxed) + 1;
}

std::uint64_t Metrics::generation() const {
  return layout::atomic(segment_->header.generation).load(memory_order_relaxed);
}

void Metrics::set_process_start_time(double unix_seconds) {
  layout::atomic(segment_->header.process_start_bits)
      .store(std::bit_cast<std::uint64_t>(unix_seconds), memory_order_relaxed);
}

}  // namespace seamless::metrics
