// Helpers shared by the metrics unit tests.
#pragma once

#include <chrono>
#include <functional>
#include <thread>

namespace seamless::metrics::testing {

// Polls `condition` until it holds or `timeout` passes; returns its last value. The short
// pause between polls only paces the loop: the condition is what synchronises.
inline bool wait_until(const std::function<bool()>& condition,
                       std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!condition()) {
    if (std::chrono::steady_clock::now() > deadline) return condition();
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

}  // namespace seamless::metrics::testing
