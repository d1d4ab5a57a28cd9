// The top level and its small sections: handoff, metrics, log.
#include <algorithm>

#include "config/config_reader.h"

namespace seamless::config {
namespace {

using std::chrono::milliseconds;

// libnftnl takes any name up to NFT_NAME_MAXLEN - 1 bytes, but an operator will type
// it into `nft list table inet <name>`: keep to what nft's own scanner reads as an
// identifier.
constexpr std::size_t kMaxNftNameLength = 255;

bool is_nft_identifier(std::string_view name) {
  const auto letter = [](char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); };
  const auto tail = [&](char c) {
    return letter(c) || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-';
  };
  return !name.empty() && name.size() <= kMaxNftNameLength && (letter(name[0]) || name[0] == '_') &&
         std::all_of(name.begin() + 1, name.end(), tail);
}

bool has_control_bytes(std::string_view text) {
  return std::any_of(text.begin(), text.end(),
                     [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; });
}

// metrics.listen may be switched off: `listen: off`, `listen: ""` or `listen:`.
bool says_disabled(const YAML::Node& node) {
  return node.IsNull() || (node.IsScalar() && (node.Scalar().empty() || node.Scalar() == "off"));
}

}  // namespace

Config ConfigReader::read(const Located& root) {
  Config config;
  if (root.node.IsNull()) {  // an empty file
    diag_.error(root.at, "services", "missing required key");
    return config;
  }
  const MapReader map(root, {"services", "handoff", "drain_timeout", "metrics", "log"}, diag_);
  if (!map.is_map()) return config;

  // Services first: the metrics listener is checked against theirs, wherever it is written.
  if (const std::optional<Located> services = map.require("services")) {
    config.services = read_services(*services);
  }
  read_optional(map, "handoff", config.handoff,
                [&](const Located& v) { return std::optional(read_handoff(v)); });
  read_optional(map, "drain_timeout", config.drain_timeout,
                [&](const Located& v) { return read_duration(v, milliseconds(0), diag_); });
  read_optional(map, "metrics", config.metrics,
                [&](const Located& v) { return std::optional(read_metrics(v)); });
  read_optional(map, "log", config.log,
                [&](const Located& v) { return std::optional(read_log(v)); });
  return config;
}

Handoff ConfigReader::read_handoff(const Located& value) {
  const MapReader map(value, {"dir", "lock_timeout", "nft_table"}, diag_);
  Handoff handoff;
  if (!map.is_map()) return handoff;

  if (const std::optional<Located> dir = map.get("dir")) {
    const std::optional<std::string> text = read_string(*dir, diag_);
    if (text && !text->starts_with('/')) {
      diag_.error(dir->at, dir->path,
                  "invalid directory " + quote(*text) + " (expected an absolute path)");
    } else if (text && has_control_bytes(*text)) {
      diag_.error(dir->at, dir->path,
                  "invalid directory " + quote(*text) + " (control characters)");
    } else if (text) {
      handoff.dir = *text;
    }
  }
  read_optional(map, "lock_timeout", handoff.lock_timeout,
                [&](const Located& v) { return read_duration(v, milliseconds(1), diag_); });
  if (const std::optional<Located> table = map.get("nft_table")) {
    const std::optional<std::string> text = read_string(*table, diag_);
    if (text && !is_nft_identifier(*text)) {
      diag_.error(
          table->at, table->path,
          "invalid nftables table name " + quote(*text) +
              " (expected a letter or _, then letters, digits, _, . or -; at most 255 characters)");
    } else if (text) {
      handoff.nft_table = *text;
    }
  }
  return handoff;
}

Metrics ConfigReader::read_metrics(const Located& value) {
  const MapReader map(value, {"listen"}, diag_);
  Metrics metrics;
  if (!map.is_map()) return metrics;
  const std::optional<Located> listen = map.get("listen");
  if (!listen) return metrics;
  if (says_disabled(listen->node)) {
    metrics.listen.reset();
    return metrics;
  }
  metrics.listen = read_address(*listen, diag_);
  if (metrics.listen) collisions_.add_listener(*metrics.listen, false, *listen);
  return metrics;
}

Log ConfigReader::read_log(const Located& value) {
  const MapReader map(value, {"level", "format"}, diag_);
  Log log;
  if (!map.is_map()) return log;
  read_optional(map, "level", log.level,
                [&](const Located& v) { return read_enum(v, kLogLevelNames, diag_); });
  read_optional(map, "format", log.format,
                [&](const Located& v) { return read_enum(v, kLogFormatNames, diag_); });
  return log;
}

}  // namespace seamless::config
