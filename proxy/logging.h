// The worker's logger: spdlog to stderr, level and format (text or JSON lines) from the
// config. Passed down as a value; nothing here registers a global logger.
//
// text:  2024-05-01T10:00:00.123Z info pair 7 pg 198.18.0.1:40000->198.18.0.2:7000: ...
// json:  {"time":"2024-05-01T10:00:00.123Z","level":"info","msg":"pair 7 pg ..."}
#pragma once

#include <spdlog/spdlog.h>

#include <memory>
#include <string>

#include "config/config.h"

namespace seamless::proxy {

using Logger = std::shared_ptr<spdlog::logger>;

Logger make_logger(const config::Log& log, const std::string& name = "seamless");

// A logger that drops everything (tests that do not look at logs).
Logger null_logger();

// Appends `text` to `out` as the inside of a JSON string (quotes, backslashes and
// control characters escaped).
void append_json_escaped(std::string& out, std::string_view text);

}  // namespace seamless::proxy
