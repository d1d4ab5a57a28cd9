// The restoring worker's side of an upgrade (DESIGN §4 step 7): every pair of the
// handoff file restored, handed to the keeper while still in repair mode, taken out
// of repair, unlocked per batch, probed and served. Two threads share the file when
// it is large enough: the restore is CPU-bound (~100 µs a pair, nearly all of it in
// the kernel) and the machine has more than one core.
#pragma once

#include <cstdint>
#include <string>
#include <unordered_set>
#include <vector>

#include "base/result.h"
#include "metrics/metrics.h"
#include "proxy/control_channel.h"
#include "proxy/keeper_link.h"
#include "proxy/logging.h"
#include "proxy/worker.h"
#include "repair/flow_lock.h"

namespace seamless::proxy {

// Restores the file's pairs but those already `adopted` live, one share per flow-lock
// socket in `locks` (at most two; one if the file is small), and gives each pair to
// `worker` as soon as its batch is unlocked. Runs on the worker's loop thread, which
// alone touches `worker`. Returns the summary for kReady.
Result<std::string> restore_handoff_file(std::vector<repair::FlowLock>& locks,
                                         const std::string& path,
                                         const std::unordered_set<uint64_t>& adopted,
                                         Worker& worker, KeeperLink& link, ControlChannel& channel,
                                         metrics::Metrics& metrics, const Logger& log);

}  // namespace seamless::proxy
