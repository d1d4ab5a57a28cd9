#include "proxy/preflight.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string_view>

#include "proxy/child_process.h"
#include "proxy/kept_sockets.h"
#include "repair/handoff_file.h"

namespace seamless::proxy {
namespace {

constexpr int kCapNetAdmin = 12;
// Room kept free in the handoff dir beyond the queued bytes: record framing, images.
constexpr uint64_t kSpareBytes = 4 << 20;

bool ambient_has_net_admin() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("CapAmb:", 0) != 0) continue;
    const uint64_t caps = std::stoull(line.substr(7), nullptr, 16);
    return (caps >> kCapNetAdmin) & 1;
  }
  return false;
}

Status check_free_space(const std::string& dir, uint64_t queued) {
  // The writer would create it (0700) anyway; it must exist to be measured.
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) return Error::from_errno("mkdir " + dir);
  struct statvfs st {};
  if (::statvfs(dir.c_str(), &st) != 0) return Error::from_errno("statvfs " + dir);
  const uint64_t free_bytes = uint64_t(st.f_bavail) * st.f_frsize;
  const uint64_t needed = queued + queued / 16 + kSpareBytes;
  if (free_bytes < needed) {
    return Error{ENOSPC, "handoff dir " + dir + " has " + std::to_string(free_bytes) +
                             " bytes free; the handoff needs about " + std::to_string(needed) +
                             " (" + std::to_string(queued) + " queued bytes)"};
  }
  return {};
}

bool on_tmpfs(const std::string& dir) {
  struct statfs fs {};
  return ::statfs(dir.c_str(), &fs) == 0 && fs.f_type == TMPFS_MAGIC;
}

Status check_memory(const std::string& handoff_dir, uint64_t queued) {
  std::ifstream file("/proc/meminfo");
  const std::string text((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  Result<uint64_t> available = parse_mem_available(text);
  if (!available) return available.error();
  return check_memory_headroom(*available, queued, on_tmpfs(handoff_dir));
}

}  // namespace

Result<uint64_t> parse_mem_available(const std::string& meminfo) {
  const std::string key = "\nMemAvailable:";
  const size_t at = ("\n" + meminfo).find(key);
  if (at == std::string::npos) return Error::logic("/proc/meminfo has no MemAvailable line");
  const char* value = meminfo.c_str() + at + key.size() - 1;
  char* end = nullptr;
  errno = 0;
  const unsigned long long kib = std::strtoull(value, &end, 10);
  if (end == value || errno != 0 || std::string_view(end).substr(0, 3) != " kB") {
    return Error::logic("/proc/meminfo: unreadable MemAvailable line");
  }
  return uint64_t(kib) * 1024;
}

Status check_memory_headroom(uint64_t mem_available, uint64_t queued, bool file_in_ram) {
  const uint64_t needed = queued * (file_in_ram ? 2 : 1) + kSpareBytes;
  if (mem_available >= needed) return {};
  return Error{ENOMEM, "the handoff needs about " + std::to_string(needed) + " bytes of memory (" +
                           std::to_string(queued) + " queued bytes, restored before the " +
                           "originals are freed" +
                           (file_in_ram ? ", and again in the handoff file on tmpfs" : "") + "); " +
                           std::to_string(mem_available) + " are available"};
}

Status check_keeps_capabilities(int exe_fd) {
  if (::geteuid() == 0 || ambient_has_net_admin()) return {};
  if (::fgetxattr(exe_fd, "security.capability", nullptr, 0) > 0) return {};
  return Error::logic(
      "it has no file capabilities and would start without CAP_NET_ADMIN (a replaced file "
      "loses the old one's; setcap cap_net_admin,cap_net_raw+ep on it)");
}

bool check_output_lists(const std::string& output, std::string_view feature) {
  constexpr std::string_view kLine = "upgrade features:";
  for (size_t start = 0; start < output.size();) {
    size_t end = output.find('\n', start);
    if (end == std::string::npos) end = output.size();
    std::string_view line(output.data() + start, end - start);
    start = end + 1;
    if (line.substr(0, kLine.size()) != kLine) continue;
    line.remove_prefix(kLine.size());
    while (!line.empty()) {
      const size_t space = line.find(' ');
      if (line.substr(0, space) == feature) return true;
      if (space == std::string_view::npos) break;
      line.remove_prefix(space + 1);
    }
  }
  return false;
}

Result<CheckedBinary> preflight(const PreflightRequest& request) {
  UniqueFd exe(::open(request.binary_path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!exe) return Error::from_errno("open " + request.binary_path);
  if (Status s = check_keeps_capabilities(exe.get()); !s) {
    return s.error().context(request.binary_path);
  }
  if (Status s = check_free_space(request.handoff_dir, request.queued_bytes); !s) return s.error();
  if (Status s = check_memory(request.handoff_dir, request.queued_bytes); !s) return s.error();
  SpawnSpec spec;
  spec.exe_fd = exe.get();
  spec.argv = {request.binary_path, "check", "--config", request.config_path,
               "--reads-handoff-major",
               std::to_string(repair::current_handoff_format().major)};
  Result<CompletedRun> run = run_child(spec, request.timeout);
  if (!run) return run.error().context("run " + request.binary_path + " check");
  if (run->timed_out) {
    return Error::logic(request.binary_path + " check: no answer within " +
                        std::to_string(request.timeout.count()) + "ms");
  }
  if (!WIFEXITED(run->wait_status) || WEXITSTATUS(run->wait_status) != 0) {
    std::string output = run->output;
    while (!output.empty() && output.back() == '\n') output.pop_back();
    return Error::logic(request.binary_path + " check " + describe_exit(run->wait_status) +
                        (output.empty() ? "" : ": " + output));
  }
  return CheckedBinary{std::move(exe), check_output_lists(run->output, kKeptSocketsFeature)};
}

}  // namespace seamless::proxy
