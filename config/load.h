// Turning YAML text into a validated Config (DESIGN.md §7). Strict: unknown keys,
// wrong types and bad values are errors, and every error is reported, not just the
// first, each as "file:line:column: key.path: message", e.g.
//   seamless.yaml:7:14: services[0].backends[1].address: invalid port "99999" (expected 1-65535)
// Nothing here throws, and nothing touches a socket.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "config/config.h"

namespace seamless::config {

// Either a config or the errors that stopped it, never both.
struct ConfigParse {
  std::optional<Config> config;
  std::vector<std::string> errors;  // in document order

  bool ok() const { return config.has_value(); }
};

// `file_name` only labels the errors.
ConfigParse parse_config(std::string_view yaml_text, std::string_view file_name);

// Reads and parses `path`. On failure the Error's message holds every error, one
// per line; its code is the errno when the file itself could not be read.
Result<Config> load_config_file(const std::string& path);

}  // namespace seamless::config
