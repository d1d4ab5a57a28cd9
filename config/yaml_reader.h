// Private to config/: reading a yaml-cpp tree against a schema while collecting
// every error with its file:line:column and key path, instead of stopping at the
// first. Nothing here throws; yaml-cpp is only asked for types, scalars and marks.
#pragma once

#include <yaml-cpp/yaml.h>

#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "config/enum_names.h"
#include "config/quote.h"
#include "config/socket_address.h"

namespace seamless::config {

// A place in the config file, 1-based like an editor shows it.
struct Position {
  int line = 1;
  int column = 1;
};
Position position_of(const YAML::Mark& mark);
std::string format_position(Position at);  // "7:14"

class Diagnostics {
 public:
  explicit Diagnostics(std::string_view file_name) : file_name_(escape_control_bytes(file_name)) {}

  // Past this many errors the reader stops: the first hundred are what a human
  // reads, and a few kilobytes of YAML aliases could otherwise expand to millions.
  static constexpr std::size_t kMaxErrors = 100;

  // An empty path is for errors that belong to no key (YAML syntax).
  void error(Position at, std::string_view path, std::string_view message);
  bool has_errors() const { return !entries_.empty(); }
  // True once kMaxErrors are in: every loop over YAML items stops there.
  bool full() const { return entries_.size() >= kMaxErrors; }
  // "file:line:column: path: message", in document order, then a last line saying
  // so if the reader stopped early.
  std::vector<std::string> sorted_messages() const;

 private:
  struct Entry {
    Position at;
    std::string text;
  };
  std::string file_name_;
  std::vector<Entry> entries_;
};

// A YAML value with where it sits, so that every error can name both.
struct Located {
  YAML::Node node;
  std::string path;  // "services[0].backends[1].address"
  Position at;       // the value's position, or its key's when the value is empty
};

// "an empty value", "a sequence", "a mapping", or the scalar itself, quoted.
std::string describe(const YAML::Node& node);

// A mapping read against the keys its schema knows. Construction reports a value
// that is no mapping, unknown keys, keys given twice and keys that are not strings.
class MapReader {
 public:
  MapReader(const Located& map, std::initializer_list<std::string_view> known_keys,
            Diagnostics& diag);

  bool is_map() const { return is_map_; }
  const Located& located() const { return map_; }
  std::optional<Located> get(std::string_view key) const;
  // As get(), and a missing key is an error reported at the mapping.
  std::optional<Located> require(std::string_view key) const;

 private:
  void add_field(const YAML::Node& key, const YAML::Node& value,
                 std::initializer_list<std::string_view> known_keys);
  std::string child_path(std::string_view key) const;

  Located map_;
  Diagnostics& diag_;
  bool is_map_ = false;
  std::vector<std::pair<std::string, Located>> fields_;
};

// The items of a sequence, each with its path ("backends[2]"); nullopt, and an
// error, when the value is no sequence.
std::optional<std::vector<Located>> read_sequence(const Located& value, Diagnostics& diag);

// Typed scalars: nullopt, and an error naming the value and what was expected,
// when the value does not fit.
std::optional<std::string> read_string(const Located& value, Diagnostics& diag);
std::optional<uint32_t> read_uint(const Located& value, uint32_t min, uint32_t max,
                                  Diagnostics& diag);
std::optional<bool> read_bool(const Located& value, Diagnostics& diag);
std::optional<std::chrono::milliseconds> read_duration(const Located& value,
                                                       std::chrono::milliseconds min,
                                                       Diagnostics& diag);
std::optional<SocketAddress> read_address(const Located& value, Diagnostics& diag);

template <typename E, std::size_t N>
std::optional<E> read_enum(const Located& value, const std::array<EnumName<E>, N>& names,
                           Diagnostics& diag) {
  const std::optional<std::string> text = read_string(value, diag);
  if (!text) return std::nullopt;
  const std::optional<E> parsed = enum_from_name(names, *text);
  if (!parsed) {
    diag.error(value.at, value.path,
               "invalid value " + quote(*text) + " (expected " + enum_choices(names) + ")");
  }
  return parsed;
}

// Reads `key` of `map` into `out` when present and valid; otherwise leaves the
// default in `out`. `read` is one of the read_* functions above, bound to its limits.
// False when the key is present but invalid (its error is reported).
template <typename T, typename ReadFn>
bool read_optional(const MapReader& map, std::string_view key, T& out, ReadFn read) {
  const std::optional<Located> field = map.get(key);
  if (!field) return true;
  auto value = read(*field);
  if (!value) return false;
  out = std::move(*value);
  return true;
}

}  // namespace seamless::config
