// Start-up preconditions of `seamless run`: checked after the config is loaded and
// before anything is touched (no socket, no nftables table, no handoff dir), so that a
// proxy that could not hand its connections over never starts carrying them.
//
//   kernel    Linux >= 5.3: TCP_REPAIR_OFF_NO_WP (4.17) and pidfd_open (5.3)
//   caps      CAP_NET_ADMIN (TCP_REPAIR, the nftables flow lock), CAP_NET_RAW (FIN
//             injection), CAP_NET_BIND_SERVICE only when a configured listen port
//             (services or metrics) is below net.ipv4.ip_unprivileged_port_start
//   handoff   handoff.dir exists as a directory we own and others cannot write, or its
//             parent lets us create it (the checkpoint writer creates it 0700)
//
// Each unmet precondition is one line starting "seamless: needs ..." that says what to
// do. The kernel, the capabilities and the file system are read through a
// PreconditionProbe, so unit tests can fake all three.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "base/result.h"
#include "config/config.h"
#include "proxy/logging.h"

namespace seamless::proxy {

// What a directory entry is, as far as the handoff dir check cares.
struct PathInfo {
  enum class Kind { kMissing, kDirectory, kSymlink, kOther };
  Kind kind = Kind::kMissing;
  uid_t owner = 0;
  mode_t mode = 0;
};

class PreconditionProbe {
 public:
  virtual ~PreconditionProbe() = default;
  // uname(2)'s release, e.g. "6.1.0-18-amd64".
  virtual Result<std::string> kernel_release() const = 0;
  // The effective capability set, bit N = capability N (capget(2)).
  virtual Result<uint64_t> effective_capabilities() const = 0;
  // net.ipv4.ip_unprivileged_port_start of our network namespace (1024 unless lowered,
  // e.g. by a container runtime).
  virtual Result<uint32_t> unprivileged_port_start() const = 0;
  virtual uid_t effective_uid() const = 0;
  // lstat(2) of `path`, never following a final symlink.
  virtual Result<PathInfo> path_info(const std::string& path) const = 0;
  // Whether we may create entries in directory `path` (write and search, with our
  // effective ids and capabilities).
  virtual bool can_write_dir(const std::string& path) const = 0;
  // The running binary, for the setcap hint (/proc/self/exe).
  virtual std::string executable_path() const = 0;
};

// The real kernel and file system.
class SystemPreconditionProbe final : public PreconditionProbe {
 public:
  Result<std::string> kernel_release() const override;
  Result<uint64_t> effective_capabilities() const override;
  Result<uint32_t> unprivileged_port_start() const override;
  uid_t effective_uid() const override;
  Result<PathInfo> path_info(const std::string& path) const override;
  bool can_write_dir(const std::string& path) const override;
  std::string executable_path() const override;
};

// "5.10.0-28-amd64" -> {5, 10}; an error when the release does not start "N.N".
struct KernelVersion {
  int major = 0;
  int minor = 0;
  auto operator<=>(const KernelVersion&) const = default;
};
Result<KernelVersion> parse_kernel_release(const std::string& release);

inline constexpr KernelVersion kMinimumKernel{5, 3};

// One line per unmet precondition, in a fixed order (kernel, capabilities, handoff dir);
// empty when the proxy may start.
std::vector<std::string> unmet_preconditions(const config::Config& config,
                                             const PreconditionProbe& probe);

// The same as one Status (lines joined with '\n').
Status check_preconditions(const config::Config& config, const PreconditionProbe& probe);

// For run_command(): logs each unmet precondition as an error; true when none.
bool preconditions_met(const config::Config& config, const PreconditionProbe& probe,
                       const Logger& log);

}  // namespace seamless::proxy
