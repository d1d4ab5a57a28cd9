// The upgrade preflight (DESIGN §2, §4 step 1): before anything is locked, open the
// binary now on disk at the path the keeper was started with, and prove on *that open
// file* that it will start: it accepts the config (`check`), it reads this binary's
// handoff format, it will hold CAP_NET_ADMIN after exec, and the handoff dir and the
// memory have room for the queued bytes. The keeper then execs the same open file
// (execveat), so what was checked is what runs.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "base/result.h"
#include "base/unique_fd.h"

namespace seamless::proxy {

struct PreflightRequest {
  std::string binary_path;  // as the keeper was started with
  std::string config_path;
  std::string handoff_dir;
  uint64_t queued_bytes = 0;  // SIOCINQ + SIOCOUTQ over every held socket
  std::chrono::milliseconds timeout{10000};
};

struct CheckedBinary {
  UniqueFd exe;  // open, ready for execveat
  // Its `check` listed kept_sockets.h's feature: the exec may pass the dumped sockets.
  bool takes_kept_sockets = false;
};

// The checked binary. An error with code ENOSPC means the queued bytes would not fit
// in the handoff dir, ENOMEM in memory.
Result<CheckedBinary> preflight(const PreflightRequest& request);

// Whether `check` output lists `feature` on its "upgrade features:" line.
bool check_output_lists(const std::string& output, std::string_view feature);

// Memory the handoff needs beyond what is in use (DESIGN §4 step 1): the restored
// sockets' queues fill before the originals are freed, and a handoff file on tmpfs
// holds its bytes in RAM as well. Fails with the numbers (code ENOMEM) when
// `mem_available` (/proc/meminfo's MemAvailable) is short of that.
Status check_memory_headroom(uint64_t mem_available, uint64_t queued, bool file_in_ram);
// MemAvailable from /proc/meminfo's text, in bytes.
Result<uint64_t> parse_mem_available(const std::string& meminfo);

// Whether an exec of `exe_fd` keeps CAP_NET_ADMIN: root, an ambient capability, or
// file capabilities on the file (a replaced file has lost those of the old one).
Status check_keeps_capabilities(int exe_fd);

}  // namespace seamless::proxy
