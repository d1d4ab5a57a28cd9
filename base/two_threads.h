// split_over_two_threads: a loop of independent steps over [0, n) run as two halves,
// the second on a helper thread. For the per-socket loops of a handoff that the
// clients wait on while the machine's other core is idle. Steps must not share
// mutable state; each half writes only its own indices.
#pragma once

#include <cstddef>
#include <system_error>
#include <thread>

namespace seamless {

// Below `min_to_split` steps (or when no thread can be started) everything runs on the
// caller's thread: starting one costs ~50 us.
template <typename Work>
void split_over_two_threads(size_t n, size_t min_to_split, const Work& work) {
  if (n < min_to_split) {
    work(size_t{0}, n);
    return;
  }
  const size_t half = n / 2;
  std::thread helper;
  try {
    helper = std::thread([&] { work(half, n); });
  } catch (const std::system_error&) {
    work(size_t{0}, n);
    return;
  }
  work(size_t{0}, half);
  helper.join();
}

}  // namespace seamless
