#include "metrics/labels.h"

#include <array>

namespace seamless::metrics {
namespace {

// Looks a name up by the enum's index; an out-of-range value (a bug) reads "unknown" rather
// than past the table.
template <typename Enum, std::size_t N>
std::string_view name_of(Enum value, const std::array<std::string_view, N>& names) {
  const auto index = static_cast<std::size_t>(value);
  return index < N ? names[index] : std::string_view("unknown");
}

}  // namespace

std::string_view label_value(Direction value) {
  static constexpr std::array<std::string_view, kDirectionCount> kNames = {"in", "out"};
  return name_of(value, kNames);
}

std::string_view label_value(HandoffReason value) {
  static constexpr std::array<std::string_view, kHandoffReasonCount> kNames = {"upgrade", "reload",
                                                                               "crash"};
  return name_of(value, kNames);
}

std::string_view label_value(HandoffResult value) {
  static constexpr std::array<std::string_view, kHandoffResultCount> kNames = {
      "success",     "preflight_failed", "no_space",    "quiesce_failed", "lock_failed",
      "dump_failed", "write_failed",     "exec_failed", "restore_failed"};
  return name_of(value, kNames);
}

std::string_view label_value(HandoffPhase value) {
  static constexpr std::array<std::string_view, kHandoffPhaseCount> kNames = {
      "lock", "dump", "write", "exec", "restore", "unlock", "total"};
  return name_of(value, kNames);
}

std::string_view label_value(HandoffConnectionResult value) {
  static constexpr std::array<std::string_view, kHandoffConnectionResultCount> kNames = {
      "restored", "backend_reconnected", "closed", "aborted"};
  return name_of(value, kNames);
}

std::string_view label_value(WorkerRestartCause value) {
  static constexpr std::array<std::string_view, kWorkerRestartCauseCount> kNames = {
      "signal", "exit", "oom", "quiesce_timeout", "reload", "upgrade"};
  return name_of(value, kNames);
}

std::string_view label_value(RejectReason value) {
  static constexpr std::array<std::string_view, kRejectReasonCount> kNames = {"max_connections",
                                                                              "no_backend"};
  return name_of(value, kNames);
}

}  // namespace seamless::metrics
