#include "proxy/preconditions.h"

#include <fcntl.h>
#include <linux/capability.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdio>
#include <filesystem>
#include <fstream>

namespace seamless::proxy {
namespace {

std::string octal_mode(mode_t mode) {
  char text[8];
  std::snprintf(text, sizeof(text), "%04o", static_cast<unsigned>(mode & 07777));
  return text;
}

bool has_capability(uint64_t set, int capability) { return ((set >> capability) & 1u) != 0; }

std::string kernel_problem(const PreconditionProbe& probe) {
  const std::string need = "seamless: needs Linux " + std::to_string(kMinimumKernel.major) + "." +
                           std::to_string(kMinimumKernel.minor) +
                           " or later (pidfd_open; TCP_REPAIR_OFF_NO_WP needs 4.17)";
  const Result<std::string> release = probe.kernel_release();
  if (!release) return need + "; cannot tell this kernel's version: " + release.error().message;
  const Result<KernelVersion> version = parse_kernel_release(*release);
  if (!version) return need + "; " + version.error().message;
  if (*version < kMinimumKernel) return need + "; this kernel is " + *release;
  return "";
}

// Every configured listener (services, then metrics) whose port needs
// CAP_NET_BIND_SERVICE, as "address (who)".
std::vector<std::string> privileged_listeners(const config::Config& config, uint32_t first_free) {
  std::vector<std::string> found;
  for (const config::Service& service : config.services) {
    if (service.listen.port < first_free) {
      found.push_back(service.listen.to_string() + " (service " + service.name + ")");
    }
  }
  if (config.metrics.listen && config.metrics.listen->port < first_free) {
    found.push_back(config.metrics.listen->to_string() + " (metrics)");
  }
  return found;
}

std::string join(const std::vector<std::string>& parts, const std::string& separator) {
  std::string out;
  for (const std::string& part : parts) {
    if (!out.empty()) out += separator;
    out += part;
  }
  return out;
}

void add_capability_problems(const config::Config& config, const PreconditionProbe& probe,
                             std::vector<std::string>& problems) {
  const Result<uint64_t> caps = probe.effective_capabilities();
  if (!caps) {
    problems.push_back("seamless: cannot read this process's capabilities: " +
                       caps.error().message);
    return;
  }
  const Result<uint32_t> sysctl = probe.unprivileged_port_start();
  const uint32_t first_free = sysctl ? *sysctl : 1024;  // the kernel's default
  const std::vector<std::string> low = privileged_listeners(config, first_free);

  // The hint grants what this config needs, nothing more.
  std::string grant = "cap_net_admin,cap_net_raw";
  if (!low.empty()) grant += ",cap_net_bind_service";
  const std::string hint =
      "; run as root or grant it: setcap " + grant + "+ep " + probe.executable_path();

  if (!has_capability(*caps, CAP_NET_ADMIN)) {
    problems.push_back("seamless: needs CAP_NET_ADMIN (TCP_REPAIR and the nftables flow lock)" +
                       hint);
  }
  if (!has_capability(*caps, CAP_NET_RAW)) {
    problems.push_back(
        "seamless: needs CAP_NET_RAW (a restored half-closed connection gets its peer's FIN "
        "through a raw socket)" +
        hint);
  }
  if (!low.empty() && !has_capability(*caps, CAP_NET_BIND_SERVICE)) {
    problems.push_back("seamless: needs CAP_NET_BIND_SERVICE (to listen on " + join(low, ", ") +
                       ": ports below net.ipv4.ip_unprivileged_port_start " +
                       std::to_string(first_free) + ")" + hint);
  }
}

// The checkpoint writer (repair/handoff_writer.cc) creates the dir with one mkdir(0700)
// and refuses one it does not own or that others can write: check the same things.
std::string handoff_dir_problem(const std::string& configured, const PreconditionProbe& probe) {
  std::filesystem::path dir = std::filesystem::path(configured).lexically_normal();
  if (dir.has_relative_path() && !dir.has_filename()) dir = dir.parent_path();  // "/a/b/"
  const std::string name = "handoff.dir " + dir.string();
  const Result<PathInfo> info = probe.path_info(dir.string());
  if (!info) return "seamless: cannot check " + name + ": " + info.error().message;

  const std::string uid = std::to_string(probe.effective_uid());
  switch (info->kind) {
    case PathInfo::Kind::kDirectory:
      if (info->owner != probe.effective_uid()) {
        return "seamless: needs " + name + " owned by uid " + uid + " (it is owned by uid " +
               std::to_string(info->owner) + "; it will hold connection payload)";
      }
      if ((info->mode & (S_IWGRP | S_IWOTH)) != 0) {
        return "seamless: needs " + name + " writable by its owner alone (mode is " +
               octal_mode(info->mode) + "; chmod 0700 it)";
      }
      if (!probe.can_write_dir(dir.string())) {
        return "seamless: needs write access to " + name + " (mode " + octal_mode(info->mode) +
               ", read-only file system?)";
      }
      return "";
    case PathInfo::Kind::kSymlink:
      return "seamless: needs " + name + " to be a directory, not a symlink";
    case PathInfo::Kind::kOther:
      return "seamless: needs " + name + " to be a directory (something else is there)";
    case PathInfo::Kind::kMissing:
      break;
  }
  const std::string parent = dir.parent_path().string();
  const Result<PathInfo> parent_info = probe.path_info(parent);
  if (!parent_info || parent_info->kind != PathInfo::Kind::kDirectory) {
    return "seamless: needs " + name + " or at least its parent " + parent +
           " (only the last component is created)";
  }
  if (!probe.can_write_dir(parent)) {
    return "seamless: needs " + name + " (cannot create it in " + parent +
           "; create it 0700 owned by uid " + uid + ")";
  }
  return "";
}

}  // namespace

Result<KernelVersion> parse_kernel_release(const std::string& release) {
  KernelVersion version;
  const char* const end = release.data() + release.size();
  const auto [after_major, major_error] = std::from_chars(release.data(), end, version.major);
  if (major_error != std::errc() || after_major == end || *after_major != '.') {
    return Error::logic("unexpected kernel release \"" + release + "\"");
  }
  const auto [after_minor, minor_error] = std::from_chars(after_major + 1, end, version.minor);
  if (minor_error != std::errc() || version.major < 0 || version.minor < 0) {
    return Error::logic("unexpected kernel release \"" + release + "\"");
  }
  return version;
}

std::vector<std::string> unmet_preconditions(const config::Config& config,
                                             const PreconditionProbe& probe) {
  std::vector<std::string> problems;
  if (std::string line = kernel_problem(probe); !line.empty()) problems.push_back(line);
  add_capability_problems(config, probe, problems);
  if (std::string line = handoff_dir_problem(config.handoff.dir, probe); !line.empty()) {
    problems.push_back(line);
  }
  return problems;
}

Status check_preconditions(const config::Config& config, const PreconditionProbe& probe) {
  const std::vector<std::string> problems = unmet_preconditions(config, probe);
  if (problems.empty()) return {};
  return Error::logic(join(problems, "\n"));
}

bool preconditions_met(const config::Config& config, const PreconditionProbe& probe,
                       const Logger& log) {
  const std::vector<std::string> problems = unmet_preconditions(config, probe);
  for (const std::string& line : problems) log->error("{}", line);
  return problems.empty();
}

// --- the real probe ---

Result<std::string> SystemPreconditionProbe::kernel_release() const {
  utsname names{};
  if (::uname(&names) != 0) return Error::from_errno("uname");
  return std::string(names.release);
}

Result<uint64_t> SystemPreconditionProbe::effective_capabilities() const {
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = {};
  if (::syscall(SYS_capget, &header, data) != 0) return Error::from_errno("capget");
  return uint64_t{data[1].effective} << 32 | data[0].effective;
}

Result<uint32_t> SystemPreconditionProbe::unprivileged_port_start() const {
  const char* const path = "/proc/sys/net/ipv4/ip_unprivileged_port_start";
  std::ifstream in(path);
  uint32_t port = 0;
  if (!(in >> port)) return Error::logic(std::string("cannot read ") + path);
  return port;
}

uid_t SystemPreconditionProbe::effective_uid() const { return ::geteuid(); }

Result<PathInfo> SystemPreconditionProbe::path_info(const std::string& path) const {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return PathInfo{};
    return Error::from_errno("lstat " + path);
  }
  PathInfo info{PathInfo::Kind::kOther, st.st_uid, st.st_mode};
  if (S_ISDIR(st.st_mode)) info.kind = PathInfo::Kind::kDirectory;
  if (S_ISLNK(st.st_mode)) info.kind = PathInfo::Kind::kSymlink;
  return info;
}

bool SystemPreconditionProbe::can_write_dir(const std::string& path) const {
  return ::faccessat(AT_FDCWD, path.c_str(), W_OK | X_OK, AT_EACCESS) == 0;
}

std::string SystemPreconditionProbe::executable_path() const {
  std::error_code error;
  const std::filesystem::path exe = std::filesystem::read_symlink("/proc/self/exe", error);
  return error ? std::string("seamless") : exe.string();
}

}  // namespace seamless::proxy
