#include "config/quote.h"

#include <cstdio>

namespace seamless::config {

std::string quote(std::string_view value) {
  constexpr std::size_t kMaxShown = 64;
  std::string out = "\"";
  for (const char c : value.substr(0, kMaxShown)) {
    const auto byte = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (byte < 0x20 || byte == 0x7f) {
      char escaped[5];
      std::snprintf(escaped, sizeof(escaped), "\\x%02x", byte);
      out += escaped;
    } else {
      out += c;
    }
  }
  if (value.size() > kMaxShown) out += "...";
  return out + "\"";
}

}  // namespace seamless::config
