#include "config/duration.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <cstdint>
#include <limits>

#include "config/quote.h"

namespace seamless::config {
namespace {

struct Unit {
  std::string_view suffix;
  int64_t millis;
};

// Largest first: the order format_duration tries them in.
constexpr std::array<Unit, 4> kUnits = {{{"h", 3'600'000}, {"m", 60'000}, {"s", 1'000}, {"ms", 1}}};

bool is_digits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

}  // namespace

Result<std::chrono::milliseconds> parse_duration(std::string_view text) {
  for (const Unit& unit : kUnits) {
    if (!text.ends_with(unit.suffix)) continue;
    const std::string_view digits = text.substr(0, text.size() - unit.suffix.size());
    if (!is_digits(digits)) continue;  // "5ms" ends with "s" too, but "5m" is no number
    uint64_t count = 0;
    const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), count);
    const uint64_t limit = std::numeric_limits<int64_t>::max() / unit.millis;
    if (ec != std::errc() || count > limit) {
      return Error::logic("duration " + quote(text) + " is too large");
    }
    return std::chrono::milliseconds(static_cast<int64_t>(count) * unit.millis);
  }
  return Error::logic("invalid duration " + quote(text) +
                      " (expected an integer and a unit: 250ms, 5s, 2m, 1h)");
}

std::string format_duration(std::chrono::milliseconds d) {
  const int64_t millis = d.count();
  if (millis == 0) return "0s";
  for (const Unit& unit : kUnits) {
    if (millis % unit.millis == 0) {
      return std::to_string(millis / unit.millis) + std::string(unit.suffix);
    }
  }
  return std::to_string(millis) + "ms";  // unreachable: every count divides by 1
}

}  // namespace seamless::config
