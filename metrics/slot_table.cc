#include "metrics/slot_table.h"

#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>

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

bool holder_is_dead(pid_t pid) {
  if (pid <= 0) return true;
  if (::kill(pid, 0) != 0) return errno == ESRCH;
  // kill() succeeds on a zombie: a holder that died but is not reaped yet. /proc tells.
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return false;  // cannot tell: assume alive, the wait is bounded
  const std::size_t paren = line.rfind(')');    // the command name may contain spaces
  if (paren == std::string::npos || paren + 2 >= line.size()) return false;
  const char state = line[paren + 2];
  return state == 'Z' || state == 'X';
}

void store_text(char* dest, std::size_t capacity, std::string_view text) {
  const std::size_t n = text.size() < capacity ? text.size() : capacity - 1;
  std::memcpy(dest, text.data(), n);
  std::memset(dest + n, 0, capacity - n);
}

void pause_briefly() { std::this_thread::sleep_for(std::chrono::microseconds(50)); }

}  // namespace seamless::metrics::slots
