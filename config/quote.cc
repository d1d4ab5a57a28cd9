#include "config/quote.h"

#include <cstdio>

namespace seamless::config {
namespace {

bool is_control(char c) {
  const auto byte = static_cast<unsigned char>(c);
  return byte < 0x20 || byte == 0x7f;
}

void append_escaped(std::string& out, char c) {
  char escaped[5];
  std::snprintf(escaped, sizeof(escaped), "\\x%02x", static_cast<unsigned char>(c));
  out += escaped;
}

}  // namespace

std::string quote(std::string_view value) {
  constexpr std::size_t kMaxShown = 64;
  std::string out = "\"";
  for (const char c : value.substr(0, kMaxShown)) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (is_control(c)) {
      append_escaped(out, c);
    } else {
      out += c;
    }
  }
  if (value.size() > kMaxShown) out += "...";
  return out + "\"";
}

std::string escape_control_bytes(std::string_view text) {
  std::string out;
  for (const char c : text) {
    if (is_control(c)) {
      append_escaped(out, c);
    } else {
      out += c;
    }
  }
  return out;
}

}  // namespace seamless::config
