// MetricsSegment: the shared memory that holds every seamless counter, gauge, histogram and
// backend health state, so that none of them falls back to zero when a worker crashes or
// the keeper execs a new binary (Prometheus rate() would read that as a counter reset).
//
// Protocol:
//   1. The keeper calls create() once, at its first start. The memfd is sealed against
//      shrinking and growing, so no process can truncate it under another's mapping.
//   2. Before it spawns a worker or execs itself it calls set_inherit_on_exec(true) and
//      passes fd() to the new image (kFdEnvVar is the conventional variable).
//   3. The new image (worker, or the keeper after exec) calls adopt() on that fd number,
//      which checks magic, layout version and size and refuses anything else. A keeper
//      that is refused (e.g. a downgrade across a layout change) may create() a fresh
//      segment: counters then restart from zero once, which it should log.
// The mapping is MAP_SHARED: every process sees every other's updates at once. Values
// outlive any one process for as long as some process (the keeper) holds the fd.
#pragma once

#include <cstddef>
#include <string_view>
#include <utility>

#include "base/result.h"
#include "base/unique_fd.h"
#include "metrics/segment_layout.h"

namespace seamless::metrics {

// The environment variable through which a process tells its new image the fd number.
inline constexpr const char* kFdEnvVar = "SEAMLESS_METRICS_FD";

// Parses a decimal fd number (e.g. the value of kFdEnvVar).
Result<int> parse_fd_number(std::string_view text);

// RAII for one mmap()ed region.
class Mapping {
 public:
  Mapping() = default;
  Mapping(void* addr, std::size_t length) : addr_(addr), length_(length) {}
  ~Mapping() { reset(); }
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
  Mapping(Mapping&& other) noexcept;
  Mapping& operator=(Mapping&& other) noexcept;

  void* get() const { return addr_; }
  std::size_t length() const { return length_; }
  void reset();

 private:
  void* addr_ = nullptr;
  std::size_t length_ = 0;
};

class MetricsSegment {
 public:
  // A new, zeroed, sealed memfd of the current layout, with FD_CLOEXEC set.
  static Result<MetricsSegment> create();
  // Maps an inherited segment. Takes the fd; sets FD_CLOEXEC on it (call
  // set_inherit_on_exec(true) to pass it on). Refuses a foreign, older or newer layout.
  static Result<MetricsSegment> adopt(UniqueFd fd);

  MetricsSegment(MetricsSegment&&) noexcept = default;
  MetricsSegment& operator=(MetricsSegment&&) noexcept = default;

  int fd() const { return fd_.get(); }  // borrowed
  // Clears (true) or sets (false) FD_CLOEXEC, so the fd survives an execve.
  Status set_inherit_on_exec(bool inherit);

  layout::Segment& data() const { return *static_cast<layout::Segment*>(mapping_.get()); }

 private:
  MetricsSegment(UniqueFd fd, Mapping mapping) : fd_(std::move(fd)), mapping_(std::move(mapping)) {}

  UniqueFd fd_;
  Mapping mapping_;
};

}  // namespace seamless::metrics
