#include "metrics/slot_table.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <thread>

#include "base/unique_fd.h"

namespace seamless::metrics::slots {

std::uint64_t fnv1a(std::string_view first, std::string_view second) {
  std::uint64_t hash = 0xcbf29ce484222325;
  auto mix = [&hash](std::string_view text) {
    for (const char c : text) {
      hash ^= static_cast<unsigned char>(c);
      hash *= 0x100000001b3;
    }
  };
  mix(first);
  hash ^= 0xff;  // a separator no key contains, so ("ab","c") and ("a","bc") differ
  hash *= 0x100000001b3;
  mix(second);
  return hash;
}

bool holder_is_dead(pid_t tid) {
  if (tid <= 0 || tid == ::gettid()) return true;
  // kill() finds any thread by its tid; ESRCH means it is gone (and reaped).
  if (::kill(tid, 0) != 0 && errno == ESRCH) return true;
  // It also succeeds on a zombie, which cannot write any more: /proc tells. If /proc cannot
  // be read, assume the holder lives; the inserter's wait is bounded anyway.
  UniqueFd fd(::open(("/proc/" + std::to_string(tid) + "/stat").c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return false;
  char buffer[512];
  const ssize_t n = ::read(fd.get(), buffer, sizeof(buffer) - 1);
  if (n <= 0) return false;
  const std::string_view stat(buffer, static_cast<std::size_t>(n));
  const std::size_t paren = stat.rfind(')');  // the command name may contain spaces and ')'
  if (paren == std::string_view::npos || paren + 2 >= stat.size()) return false;
  const char state = stat[paren + 2];
  return state == 'Z' || state == 'X';
}

void store_text(char* dest, std::size_t capacity, std::string_view text) {
  const std::size_t n = text.size() < capacity ? text.size() : capacity - 1;
  std::memcpy(dest, text.data(), n);
  std::memset(dest + n, 0, capacity - n);
}

void pause_briefly() { std::this_thread::sleep_for(std::chrono::microseconds(50)); }

}  // namespace seamless::metrics::slots
