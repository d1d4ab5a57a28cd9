// Closed sets of label values for seamless metrics, and their names on the wire.
//
// Each enum indexes a fixed table in the shared segment (segment_layout.h). The tables are
// sized by the kMax* capacities there, not by these enums, so adding a value here (up to the
// capacity) keeps the layout, and an older or newer binary can still adopt the segment.
// Never renumber or reuse a value: the index is what the segment stores.
#pragma once

#include <cstddef>
#include <string_view>

namespace seamless::metrics {

// seamless_bytes_total{direction}: "in" is read from clients (and sent to backends), "out"
// is read from backends (and sent to clients), as seen from the client's side.
enum class Direction { kIn = 0, kOut = 1 };
inline constexpr std::size_t kDirectionCount = 2;

// seamless_handoffs_total{reason}: what started the handoff.
enum class HandoffReason { kUpgrade = 0, kReload = 1, kCrash = 2 };
inline constexpr std::size_t kHandoffReasonCount = 3;

// seamless_handoffs_total{result}: how it ended; every failure names the step that failed.
enum class HandoffResult {
  kSuccess = 0,
  kPreflightFailed = 1,  // candidate binary refused by `check` or the capability test
  kNoSpace = 2,          // queued bytes would not fit in handoff.dir or in memory
  kQuiesceFailed = 3,    // the worker missed its quiesce deadline and was killed
  kLockFailed = 4,
  kDumpFailed = 5,
  kWriteFailed = 6,
  kExecFailed = 7,
  kRestoreFailed = 8,
};
inline constexpr std::size_t kHandoffResultCount = 9;

// seamless_handoff_phase_seconds{phase}: DESIGN.md §4 steps, plus the whole handoff.
enum class HandoffPhase {
  kLock = 0,
  kDump = 1,
  kWrite = 2,
  kExec = 3,
  kRestore = 4,
  kUnlock = 5,
  kTotal = 6,
};
inline constexpr std::size_t kHandoffPhaseCount = 7;

// seamless_handoff_connections_total{result}: what became of each pair carried by a handoff.
enum class HandoffConnectionResult {
  kRestored = 0,            // both legs restored
  kBackendReconnected = 1,  // client leg restored, backend was still connecting: fresh connect
  kClosed = 2,              // carried bytes and EOF written, then shut down in order
  kAborted = 3,             // could not be restored (or lock about to expire): both got RST
};
inline constexpr std::size_t kHandoffConnectionResultCount = 4;

// seamless_worker_restarts_total{cause}: why the keeper started a new worker.
enum class WorkerRestartCause {
  kSignal = 0,          // died of a signal (SIGSEGV, SIGABRT, SIGKILL, ...)
  kExit = 1,            // exited without having confirmed a quiesce
  kOom = 2,             // killed by the OOM killer
  kQuiesceTimeout = 3,  // missed its quiesce deadline and was SIGKILLed
  kReload = 4,          // replaced on SIGHUP
  kUpgrade = 5,         // replaced after an exec of a new binary
};
inline constexpr std::size_t kWorkerRestartCauseCount = 6;

// seamless_connections_rejected_total{reason}: why a client was closed without being served.
enum class RejectReason {
  kMaxConnections = 0,  // the service was at max_connections: closed right after accept
  kNoBackend = 1,       // every healthy backend refused or timed out (or none was up): RST
};
inline constexpr std::size_t kRejectReasonCount = 2;

std::string_view label_value(Direction value);
std::string_view label_value(HandoffReason value);
std::string_view label_value(HandoffResult value);
std::string_view label_value(HandoffPhase value);
std::string_view label_value(HandoffConnectionResult value);
std::string_view label_value(WorkerRestartCause value);
std::string_view label_value(RejectReason value);

}  // namespace seamless::metrics
