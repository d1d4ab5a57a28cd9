#include "proxy/test_hooks.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>

#include "base/unique_fd.h"

namespace seamless::proxy {

bool exec_fails_for_test() { return std::getenv("SEAMLESS_TEST_FAIL_EXEC") != nullptr; }

void crash_here_once_for_tests(const char* name) {
  const char* trigger = std::getenv(name);
  if (trigger != nullptr && ::unlink(trigger) == 0) ::raise(SIGKILL);
}

bool kept_sockets_off_for_test() {
  const char* path = std::getenv("SEAMLESS_TEST_NO_KEPT_SOCKETS");
  return path != nullptr && ::access(path, F_OK) == 0;
}

bool lose_kept_sockets_for_test() {
  const char* trigger = std::getenv("SEAMLESS_TEST_LOSE_KEPT_SOCKETS");
  return trigger != nullptr && ::unlink(trigger) == 0;
}

bool workers_silent_for_test() { return std::getenv("SEAMLESS_TEST_WORKERS_SILENT") != nullptr; }

void fill_handoff_dir_hook(const Logger& log) {
  const char* path = std::getenv("SEAMLESS_TEST_FILL_HANDOFF_DIR");
  if (path == nullptr) return;
  UniqueFd fd(::open(path, O_WRONLY | O_CLOEXEC));
  struct stat st {};
  if (!fd || ::fstat(fd.get(), &st) != 0 || st.st_size != 0) return;
  struct statvfs fs {};
  if (::fstatvfs(fd.get(), &fs) != 0) return;
  constexpr uint64_t kLeftFree = 64 * 1024;
  const uint64_t free_bytes = uint64_t(fs.f_bavail) * fs.f_frsize;
  if (free_bytes <= kLeftFree) return;
  const uint64_t fill = free_bytes - kLeftFree;
  if (::fallocate(fd.get(), 0, 0, off_t(fill)) != 0) {
    log->error("test hook: fallocate {} ({} bytes): {}", path, fill, std::strerror(errno));
    return;
  }
  log->warn("test hook: {} fills {} bytes, {} left free on its filesystem", path, fill, kLeftFree);
}

std::function<void(const std::string& path)> corrupt_handoff_file_hook(const Logger& log) {
  const char* trigger = std::getenv("SEAMLESS_TEST_CORRUPT_HANDOFF");
  if (trigger == nullptr || ::unlink(trigger) != 0) return {};
  return [log](const std::string& path) {
    UniqueFd fd(::open(path.c_str(), O_RDWR | O_CLOEXEC));
    struct stat st {};
    if (!fd || ::fstat(fd.get(), &st) != 0 || st.st_size == 0) return;
    const off_t at = st.st_size / 2;
    unsigned char byte = 0;
    if (::pread(fd.get(), &byte, 1, at) != 1) return;
    byte ^= 0x20;
    if (::pwrite(fd.get(), &byte, 1, at) != 1) return;
    log->warn("test hook: flipped byte {} of {} ({} bytes)", at, path, st.st_size);
  };
}

}  // namespace seamless::proxy
