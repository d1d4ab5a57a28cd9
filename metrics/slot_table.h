// Find-or-insert of named slots in the shared segment, safe against concurrent inserters in
// several processes and against an inserter that dies at any instruction.
//
// The scheme (internal to metrics/):
//   * Open addressing: a key's probe sequence starts at fnv1a(key) % capacity and walks
//     forward. The hash is fixed (not std::hash), so every binary probes the same way.
//   * A slot's state goes free -> claimed(tid) -> ready, by one CAS free->claimed, then
//     the key is written, then a release store of ready. The key is immutable afterwards,
//     and slots never return to free, so a key's slot always sits before the first free
//     slot on its probe sequence and two inserters of one key meet on the same slot: the
//     loser of the CAS waits for ready and then finds the key there.
//   * The claim names the holder by thread id (unique among live threads system-wide). A
//     claim whose holder died (the tid no longer exists, or is a zombie) is taken over by
//     CAS claimed(dead tid) -> claimed(own tid); the dead holder can write nothing more, so
//     its half-written key is simply overwritten. A claim bearing the prober's own tid is
//     abandoned too (a dead holder's tid was recycled to us, and we are not mid-claim).
//     A live holder finishes within nanoseconds; if it does not within kClaimWait (it is
//     stopped, or the tid was recycled to another thread), the insert fails with an Error
//     instead of spinning forever; nothing else in the table is blocked.
//   * Readers (lookups, scrapes) only look at ready slots.
// Assumes every process that maps the segment shares one pid namespace (keeper and worker).
#pragma once

#include <sys/types.h>
#include <unistd.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "base/result.h"
#include "metrics/segment_layout.h"

namespace seamless::metrics::slots {

inline constexpr std::chrono::milliseconds kClaimWait{1000};

std::uint64_t fnv1a(std::string_view first, std::string_view second = {});

// True if thread `tid` can no longer be writing a claim: gone, a zombie, or the caller.
bool holder_is_dead(pid_t tid);

// Copies `text` into a NUL-terminated char array of `capacity` bytes.
void store_text(char* dest, std::size_t capacity, std::string_view text);

// What happened at one slot during a probe.
enum class Probe { kMine, kMatch, kOther, kTimedOut };

// Examines one slot for an inserter: claims it if free (or abandoned) and writes the key
// with write_key, waits out a live claim, and reports whether the probe can stop here.
template <typename Slot, typename Matches, typename WriteKey>
Probe probe_slot(Slot& slot, Matches matches, WriteKey write_key,
                 std::chrono::steady_clock::time_point deadline);

template <typename Slot, typename Matches, typename WriteKey>
Result<Slot*> find_or_insert(Slot* slots, std::size_t capacity, std::uint64_t hash, Matches matches,
                             WriteKey write_key, const char* table) {
  const auto deadline = std::chrono::steady_clock::now() + kClaimWait;
  for (std::size_t i = 0; i < capacity; ++i) {
    Slot& slot = slots[(hash + i) % capacity];
    switch (probe_slot(slot, matches, write_key, deadline)) {
      case Probe::kMine:
      case Probe::kMatch:
        return &slot;
      case Probe::kOther:
        continue;
      case Probe::kTimedOut:
        return Error::logic(std::string("metrics ") + table + " slot " +
                            std::to_string(&slot - slots) + " stays claimed by a live thread");
    }
  }
  return Error::logic(std::string("metrics ") + table + " table is full (" +
                      std::to_string(capacity) + " slots)");
}

// A lookup that never inserts nor waits: a slot still being claimed holds no key yet.
template <typename Slot, typename Matches>
Slot* find(Slot* slots, std::size_t capacity, std::uint64_t hash, Matches matches) {
  for (std::size_t i = 0; i < capacity; ++i) {
    Slot& slot = slots[(hash + i) % capacity];
    const std::uint64_t state = layout::atomic(slot.state).load(std::memory_order_acquire);
    if (state == layout::kSlotFree) return nullptr;
    if (state == layout::kSlotReady && matches(slot)) return &slot;
  }
  return nullptr;
}

// Claims `slot` from `expected` (free, or a dead holder's claim) and publishes the key.
template <typename Slot, typename WriteKey>
bool claim_and_publish(Slot& slot, std::uint64_t expected, WriteKey write_key) {
  const std::uint64_t mine = layout::kSlotClaimTag | static_cast<std::uint64_t>(::gettid());
  if (!layout::atomic(slot.state)
           .compare_exchange_strong(expected, mine, std::memory_order_acq_rel)) {
    return false;
  }
  write_key(slot);
  layout::atomic(slot.state).store(layout::kSlotReady, std::memory_order_release);
  return true;
}

void pause_briefly();

template <typename Slot, typename Matches, typename WriteKey>
Probe probe_slot(Slot& slot, Matches matches, WriteKey write_key,
                 std::chrono::steady_clock::time_point deadline) {
  for (;;) {
    const std::uint64_t state = layout::atomic(slot.state).load(std::memory_order_acquire);
    if (state == layout::kSlotReady) return matches(slot) ? Probe::kMatch : Probe::kOther;
    const bool abandoned = state != layout::kSlotFree &&
                           holder_is_dead(static_cast<pid_t>(state & ~layout::kSlotClaimTag));
    if (state == layout::kSlotFree || abandoned) {
      if (claim_and_publish(slot, state, write_key)) return Probe::kMine;
      continue;  // someone else moved the state first: look again
    }
    if (std::chrono::steady_clock::now() > deadline) return Probe::kTimedOut;
    pause_briefly();
  }
}

}  // namespace seamless::metrics::slots
