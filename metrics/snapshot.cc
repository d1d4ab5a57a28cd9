#include "metrics/snapshot.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <tuple>

namespace seamless::metrics {
namespace {

using std::memory_order_acquire;
using std::memory_order_relaxed;

std::uint64_t load(std::uint64_t& field) {
  return layout::atomic(field).load(memory_order_relaxed);
}

bool is_listed_and_ready(std::uint64_t& state, std::uint64_t& listed) {
  // acquire: the slot's key, written before ready was stored, is visible after this.
  return layout::atomic(state).load(memory_order_acquire) == layout::kSlotReady &&
         load(listed) != 0;
}

std::string text(const char* stored, std::size_t capacity) {
  return std::string(stored, ::strnlen(stored, capacity));
}

void read_services(layout::Segment& segment, Snapshot& out) {
  for (layout::ServiceSlot& slot : segment.services) {
    if (!is_listed_and_ready(slot.state, slot.listed)) continue;
    ServiceSample sample;
    sample.name = text(slot.name, layout::kNameBytes);
    sample.active = layout::atomic(slot.active).load(memory_order_relaxed);
    sample.total = load(slot.total);
    for (std::size_t d = 0; d < kDirectionCount; ++d) sample.bytes[d] = load(slot.bytes[d]);
    for (std::size_t r = 0; r < kRejectReasonCount; ++r) {
      sample.rejected[r] = load(slot.rejected[r]);
    }
    out.services.push_back(std::move(sample));
  }
  std::sort(out.services.begin(), out.services.end(),
            [](const ServiceSample& a, const ServiceSample& b) { return a.name < b.name; });
}

void read_backends(layout::Segment& segment, Snapshot& out) {
  for (layout::BackendSlot& slot : segment.backends) {
    if (!is_listed_and_ready(slot.state, slot.listed)) continue;
    BackendSample sample;
    sample.service = text(slot.service, layout::kNameBytes);
    sample.address = text(slot.address, layout::kAddressBytes);
    const std::uint64_t health = load(slot.health);
    if (health != layout::kHealthUnknown) sample.up = health == layout::kHealthUp;
    sample.connect_failures = load(slot.connect_failures);
    out.backends.push_back(std::move(sample));
  }
  std::sort(out.backends.begin(), out.backends.end(),
            [](const BackendSample& a, const BackendSample& b) {
              return std::tie(a.service, a.address) < std::tie(b.service, b.address);
            });
}

void read_phases(layout::Segment& segment, Snapshot& out) {
  for (std::size_t p = 0; p < kHandoffPhaseCount; ++p) {
    layout::PhaseHistogram& histogram = segment.phases[p];
    PhaseSample& sample = out.phases[p];
    for (std::size_t b = 0; b < layout::kPhaseBuckets; ++b) {
      sample.buckets[b] = load(histogram.buckets[b]);
      sample.count += sample.buckets[b];
    }
    sample.sum_seconds = static_cast<double>(load(histogram.sum_ns)) / 1e9;
  }
}

void read_tables(layout::Segment& segment, Snapshot& out) {
  for (std::size_t r = 0; r < kHandoffReasonCount; ++r) {
    for (std::size_t s = 0; s < kHandoffResultCount; ++s) {
      out.handoffs[r][s] = load(segment.handoffs[r][s]);
    }
  }
  for (std::size_t i = 0; i < kHandoffConnectionResultCount; ++i) {
    out.handoff_connections[i] = load(segment.handoff_connections[i]);
  }
  for (std::size_t i = 0; i < kWorkerRestartCauseCount; ++i) {
    out.worker_restarts[i] = load(segment.worker_restarts[i]);
  }
}

}  // namespace

Snapshot take_snapshot(layout::Segment& segment) {
  Snapshot out;
  layout::Header& header = segment.header;
  out.generation = load(header.generation);
  out.process_start_time = std::bit_cast<double>(load(header.process_start_bits));
  out.locked_flows = layout::atomic(header.locked_flows).load(memory_order_relaxed);
  out.queued_bytes = load(header.queued_bytes);
  read_services(segment, out);
  read_backends(segment, out);
  read_phases(segment, out);
  read_tables(segment, out);
  return out;
}

}  // namespace seamless::metrics
