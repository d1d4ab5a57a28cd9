// quote(): a config value as error messages show it. Values come from untrusted
// files and end up on terminals, so control bytes are escaped and long values cut.
#pragma once

#include <string>
#include <string_view>

namespace seamless::config {

// "\"99999\"", "\"a\\x07b\"", "\"aaaa...\"" (at most 64 bytes of the value).
std::string quote(std::string_view value);

}  // namespace seamless::config
