#include "config/yaml_reader.h"

#include <algorithm>
#include <charconv>
#include <unordered_map>

#include "config/duration.h"

namespace seamless::config {
namespace {

// Keys that are plain identifiers appear bare in paths; anything else is quoted so
// that a path stays readable and never carries control bytes to a terminal.
std::string path_component(std::string_view key) {
  const bool plain = !key.empty() && std::all_of(key.begin(), key.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-';
  });
  return plain ? std::string(key) : quote(key);
}

std::string join_keys(std::initializer_list<std::string_view> keys) {
  std::string out;
  for (const std::string_view key : keys) {
    if (!out.empty()) out += ", ";
    out += key;
  }
  return out;
}

// The scalar text of `value`, or an error "expected <what>, got <value>".
std::optional<std::string> scalar_text(const Located& value, std::string_view what,
                                       Diagnostics& diag) {
  if (value.node.IsScalar()) return value.node.Scalar();
  diag.error(value.at, value.path,
             "expected " + std::string(what) + ", got " + describe(value.node));
  return std::nullopt;
}

}  // namespace

std::string format_position(Position at) {
  return std::to_string(at.line) + ":" + std::to_string(at.column);
}

Position position_of(const YAML::Mark& mark) {
  // A null mark (-1) has no place in the file; the start is the least wrong one.
  return Position{std::max(mark.line, 0) + 1, std::max(mark.column, 0) + 1};
}

void Diagnostics::error(Position at, std::string_view path, std::string_view message) {
  if (full()) return;
  std::string text = file_name_ + ":" + format_position(at) + ": ";
  if (!path.empty()) text += std::string(path) + ": ";
  // Values are quoted where they are cut into messages, but yaml-cpp's own messages
  // may carry a raw byte from the file: one error must stay one line.
  text += escape_control_bytes(message);
  entries_.push_back(Entry{at, std::move(text)});
}

std::vector<std::string> Diagnostics::sorted_messages() const {
  std::vector<Entry> sorted = entries_;
  std::stable_sort(sorted.begin(), sorted.end(), [](const Entry& a, const Entry& b) {
    return std::pair(a.at.line, a.at.column) < std::pair(b.at.line, b.at.column);
  });
  std::vector<std::string> messages;
  messages.reserve(sorted.size());
  for (Entry& entry : sorted) messages.push_back(std::move(entry.text));
  if (full()) {
    messages.push_back(file_name_ + ": stopped after " + std::to_string(kMaxErrors) + " errors");
  }
  return messages;
}

std::string describe(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Scalar:
      return quote(node.Scalar());
    case YAML::NodeType::Sequence:
      return "a sequence";
    case YAML::NodeType::Map:
      return "a mapping";
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined:
      break;
  }
  return "an empty value";
}

MapReader::MapReader(const Located& map, std::initializer_list<std::string_view> known_keys,
                     Diagnostics& diag)
    : map_(map), diag_(diag), is_map_(map.node.IsMap()) {
  if (!is_map_) {
    diag_.error(map_.at, map_.path, "expected a mapping, got " + describe(map_.node));
    return;
  }
  std::unordered_map<std::string, Position> seen;
  for (const auto& entry : map_.node) {
    if (diag_.full()) break;
    const YAML::Node& key = entry.first;
    const Position key_at = position_of(key.Mark());
    if (!key.IsScalar()) {
      diag_.error(key_at, map_.path, "expected a string key, got " + describe(key));
      continue;
    }
    const auto [first, inserted] = seen.emplace(key.Scalar(), key_at);
    if (!inserted) {
      diag_.error(key_at, child_path(key.Scalar()),
                  "duplicate key (first at " + format_position(first->second) + ")");
      continue;
    }
    add_field(key, entry.second, known_keys);
  }
}

void MapReader::add_field(const YAML::Node& key, const YAML::Node& value,
                          std::initializer_list<std::string_view> known_keys) {
  const std::string& name = key.Scalar();
  const Position key_at = position_of(key.Mark());
  if (std::find(known_keys.begin(), known_keys.end(), name) == known_keys.end()) {
    diag_.error(key_at, child_path(name),
                "unknown key (expected one of: " + join_keys(known_keys) + ")");
    return;
  }
  // yaml-cpp marks an empty value at the next token, often on a later line; the key
  // is where the reader should look.
  const Position value_at = value.IsNull() ? key_at : position_of(value.Mark());
  fields_.emplace_back(name, Located{value, child_path(name), value_at});
}

std::string MapReader::child_path(std::string_view key) const {
  return map_.path.empty() ? path_component(key) : map_.path + "." + path_component(key);
}

std::optional<Located> MapReader::get(std::string_view key) const {
  for (const auto& [name, value] : fields_) {
    if (name == key) return value;
  }
  return std::nullopt;
}

std::optional<Located> MapReader::require(std::string_view key) const {
  std::optional<Located> value = get(key);
  if (!value && is_map_) diag_.error(map_.at, child_path(key), "missing required key");
  return value;
}

std::optional<std::vector<Located>> read_sequence(const Located& value, Diagnostics& diag) {
  if (!value.node.IsSequence()) {
    diag.error(value.at, value.path, "expected a sequence, got " + describe(value.node));
    return std::nullopt;
  }
  std::vector<Located> items;
  items.reserve(value.node.size());
  for (const YAML::Node& item : value.node) {
    const std::string path = value.path + "[" + std::to_string(items.size()) + "]";
    // As for map values, an empty item is marked at the next token; the sequence
    // itself is the better place to point at.
    const Position at = item.IsNull() ? value.at : position_of(item.Mark());
    items.push_back(Located{item, path, at});
  }
  return items;
}

std::optional<std::string> read_string(const Located& value, Diagnostics& diag) {
  return scalar_text(value, "a string", diag);
}

std::optional<uint32_t> read_uint(const Located& value, uint32_t min, uint32_t max,
                                  Diagnostics& diag) {
  const std::string expected =
      "an integer from " + std::to_string(min) + " to " + std::to_string(max);
  const std::optional<std::string> text = scalar_text(value, expected, diag);
  if (!text) return std::nullopt;
  uint64_t parsed = 0;
  const char* end = text->data() + text->size();
  // Digits only: from_chars would also take "-1" and stop quietly at "5x".
  const bool digits =
      !text->empty() && text->size() <= 10 &&
      std::all_of(text->begin(), text->end(), [](char c) { return c >= '0' && c <= '9'; });
  if (!digits || std::from_chars(text->data(), end, parsed).ptr != end || parsed < min ||
      parsed > max) {
    diag.error(value.at, value.path,
               "invalid value " + quote(*text) + " (expected " + expected + ")");
    return std::nullopt;
  }
  return static_cast<uint32_t>(parsed);
}

std::optional<bool> read_bool(const Located& value, Diagnostics& diag) {
  const std::optional<std::string> text = scalar_text(value, "true or false", diag);
  if (!text) return std::nullopt;
  if (*text == "true") return true;
  if (*text == "false") return false;
  diag.error(value.at, value.path, "invalid value " + quote(*text) + " (expected true or false)");
  return std::nullopt;
}

std::optional<std::chrono::milliseconds> read_duration(const Located& value,
                                                       std::chrono::milliseconds min,
                                                       Diagnostics& diag) {
  const std::optional<std::string> text = scalar_text(value, "a duration", diag);
  if (!text) return std::nullopt;
  const Result<std::chrono::milliseconds> parsed = parse_duration(*text);
  if (!parsed) {
    diag.error(value.at, value.path, parsed.error().message);
    return std::nullopt;
  }
  if (*parsed < min) {
    diag.error(
        value.at, value.path,
        "duration " + quote(*text) + " is too short (at least " + format_duration(min) + ")");
    return std::nullopt;
  }
  return *parsed;
}

std::optional<SocketAddress> read_address(const Located& value, Diagnostics& diag) {
  const std::optional<std::string> text = scalar_text(value, "an address", diag);
  if (!text) return std::nullopt;
  Result<SocketAddress> parsed = SocketAddress::parse(*text);
  if (!parsed) {
    diag.error(value.at, value.path, parsed.error().message);
    return std::nullopt;
  }
  return *parsed;
}

}  // namespace seamless::config
