// Durations as the config spells them: a decimal integer and a unit, nothing else
// ("250ms", "5s", "2m", "1h"). No fractions, signs, spaces or compound forms, so
// that every value reads the same to a human and to the parser.
#pragma once

#include <chrono>
#include <string>
#include <string_view>

#include "base/result.h"

namespace seamless::config {

Result<std::chrono::milliseconds> parse_duration(std::string_view text);

// The largest unit that represents `d` exactly: 120000ms -> "2m", 1500ms -> "1500ms",
// 0 -> "0s". parse_duration(format_duration(d)) == d for every d >= 0.
std::string format_duration(std::chrono::milliseconds d);

}  // namespace seamless::config
