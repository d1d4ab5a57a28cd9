// How config values appear in error messages. Values come from untrusted files
// and end up on terminals, one error per line: control bytes are escaped (so no
// value can break a line or move a cursor) and long values are cut.
#pragma once

#include <string>
#include <string_view>

namespace seamless::config {

// "\"99999\"", "\"a\\x07b\"", "\"aaaa...\"" (at most 64 bytes of the value).
std::string quote(std::string_view value);

// `text` with each control byte (and DEL) written as \xNN; everything else as is.
std::string escape_control_bytes(std::string_view text);

}  // namespace seamless::config
