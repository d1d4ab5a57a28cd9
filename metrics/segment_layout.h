// The byte layout of the shared metrics segment (a memfd; see segment.h).
//
// Several processes map this memory at once (the keeper, the worker, a worker's successor
// after a crash, the keeper's new image after exec) and update it concurrently, so:
//   * Every field is a plain integer or char array (the struct is trivially copyable and
//     standard layout; the memfd starts zero-filled, which is "empty" for every table).
//   * Every field that changes after publication is accessed only through std::atomic_ref,
//     whose 64-bit operations are lock-free and therefore address-free: they work across
//     processes that map the segment at different addresses.
//   * Counters only ever fetch_add, so a process killed at any instruction leaves each one
//     either before or after its increment, never torn and never lower.
//   * Doubles are avoided where they would need a CAS loop: histogram sums are kept as
//     integer nanoseconds (fetch_add); a gauge that is only ever set (start time) stores
//     the double's bits.
//
// Changing anything here (a field, a capacity, a bucket bound, the slot hash) changes what
// another binary reads: bump kLayoutVersion. Label enums (labels.h) may grow up to the
// kMax* capacities without a bump.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "metrics/labels.h"

namespace seamless::metrics::layout {

inline constexpr std::uint64_t kMagic = 0x3154454d4c4d4553;  // "SEMLMET1" little-endian
inline constexpr std::uint32_t kLayoutVersion = 2;           // 2: ServiceSlot::rejected

inline constexpr std::size_t kMaxServices = 256;
inline constexpr std::size_t kMaxBackends = 1024;
inline constexpr std::size_t kNameBytes = 64;      // service name, NUL-terminated
inline constexpr std::size_t kAddressBytes = 128;  // backend address, NUL-terminated
inline constexpr std::size_t kMaxReasons = 8;
inline constexpr std::size_t kMaxResults = 16;
inline constexpr std::size_t kMaxPhases = 8;
inline constexpr std::size_t kMaxConnectionResults = 8;
inline constexpr std::size_t kMaxRestartCauses = 8;
inline constexpr std::size_t kMaxRejectReasons = 4;

static_assert(kHandoffReasonCount <= kMaxReasons);
static_assert(kHandoffResultCount <= kMaxResults);
static_assert(kHandoffPhaseCount <= kMaxPhases);
static_assert(kHandoffConnectionResultCount <= kMaxConnectionResults);
static_assert(kWorkerRestartCauseCount <= kMaxRestartCauses);
static_assert(kRejectReasonCount <= kMaxRejectReasons);

// Upper bounds of seamless_handoff_phase_seconds, in nanoseconds: 100 µs to 30 s, roughly
// 1-2.5-5 per decade. A lock window is meant to be milliseconds; the long tail is there to
// show a write of large queues or a restore that waited on a slow peer.
inline constexpr std::uint64_t kPhaseBucketBoundsNs[] = {
    100'000,       250'000,       500'000,       1'000'000,      2'500'000,     5'000'000,
    10'000'000,    25'000'000,    50'000'000,    100'000'000,    250'000'000,   500'000'000,
    1'000'000'000, 2'500'000'000, 5'000'000'000, 10'000'000'000, 30'000'000'000};
inline constexpr std::size_t kPhaseFiniteBuckets = std::size(kPhaseBucketBoundsNs);
inline constexpr std::size_t kPhaseBuckets = kPhaseFiniteBuckets + 1;  // + the +Inf bucket

// A slot's state word. Slots go free -> claimed -> ready and never back, except that a
// claim whose holder died is taken over by the next inserter (slot_table.h).
inline constexpr std::uint64_t kSlotFree = 0;
inline constexpr std::uint64_t kSlotReady = 1;
inline constexpr std::uint64_t kSlotClaimTag = std::uint64_t{1} << 63;  // | the holder's tid

// Backend health as stored; "unknown" (never checked) is the zero of a fresh slot.
inline constexpr std::uint64_t kHealthUnknown = 0;
inline constexpr std::uint64_t kHealthDown = 1;
inline constexpr std::uint64_t kHealthUp = 2;

struct alignas(64) Header {
  std::uint64_t magic;           // written last by create(), with release ordering
  std::uint32_t layout_version;  // kLayoutVersion of the writer
  std::uint32_t header_bytes;    // sizeof(Header)
  std::uint64_t segment_bytes;   // sizeof(Segment): the memfd's exact size
  std::uint32_t max_services;
  std::uint32_t max_backends;
  std::uint64_t created_unix_ns;  // when the keeper first created the segment
  // Mutable from here on (atomic_ref only).
  std::uint64_t generation;          // seamless_restart_generation: +1 per exec
  std::uint64_t process_start_bits;  // bit_cast<double> seconds since the epoch
  std::int64_t locked_flows;         // seamless_locked_flows
  std::uint64_t queued_bytes;        // seamless_handoff_queued_bytes
};

struct alignas(64) ServiceSlot {
  std::uint64_t state;   // kSlotFree / kSlotReady / kSlotClaimTag | tid
  std::uint64_t listed;  // 1 = exported; 0 = retired (left the config), counters kept
  std::int64_t active;
  std::uint64_t total;
  std::uint64_t bytes[kDirectionCount];
  std::uint64_t rejected[kMaxRejectReasons];  // by RejectReason
  char name[kNameBytes];                      // immutable once state is kSlotReady
};

struct alignas(64) BackendSlot {
  std::uint64_t state;
  std::uint64_t listed;
  std::uint64_t health;  // kHealthUnknown / kHealthDown / kHealthUp
  std::uint64_t connect_failures;
  char service[kNameBytes];     // immutable once ready
  char address[kAddressBytes];  // immutable once ready
};

struct PhaseHistogram {
  // Per-bucket (not cumulative) counts; the sample count is their sum, so a scrape never
  // sees a count that disagrees with the +Inf bucket.
  std::uint64_t buckets[kPhaseBuckets];
  std::uint64_t sum_ns;
};

struct alignas(64) Segment {
  Header header;
  std::uint64_t handoffs[kMaxReasons][kMaxResults];
  std::uint64_t handoff_connections[kMaxConnectionResults];
  std::uint64_t worker_restarts[kMaxRestartCauses];
  PhaseHistogram phases[kMaxPhases];
  ServiceSlot services[kMaxServices];
  BackendSlot backends[kMaxBackends];
};

static_assert(std::is_trivially_copyable_v<Segment> && std::is_standard_layout_v<Segment>);
static_assert(std::atomic_ref<std::uint64_t>::is_always_lock_free);
static_assert(std::atomic_ref<std::int64_t>::is_always_lock_free);
static_assert(alignof(Segment) >= std::atomic_ref<std::uint64_t>::required_alignment);

// Shorthands for atomic access to a field of the segment.
inline std::atomic_ref<std::uint64_t> atomic(std::uint64_t& field) {
  return std::atomic_ref<std::uint64_t>(field);
}
inline std::atomic_ref<std::int64_t> atomic(std::int64_t& field) {
  return std::atomic_ref<std::int64_t>(field);
}

}  // namespace seamless::metrics::layout
