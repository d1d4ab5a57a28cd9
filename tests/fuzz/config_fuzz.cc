// Fuzzes parse_config(): whatever the bytes, it must return a Config or errors
// (exactly one), never crash, hang or throw; every error is one line naming the
// file; and a Config that comes out must survive its own canonical form unchanged,
// which is what makes the digest trustworthy.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "config/digest.h"
#include "config/load.h"

namespace {

void check(bool condition) {
  if (!condition) std::abort();
}

void check_errors(const seamless::config::ConfigParse& parsed, std::string_view file_name) {
  for (const std::string& error : parsed.errors) {
    check(error.starts_with(std::string(file_name) + ":"));
    check(error.find('\n') == std::string::npos);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using seamless::config::ConfigParse;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const ConfigParse parsed = seamless::config::parse_config(text, "fuzz.yaml");
  check(parsed.ok() == parsed.errors.empty());
  check_errors(parsed, "fuzz.yaml");
  if (!parsed.ok()) return 0;

  const std::string canonical = seamless::config::canonical_yaml(*parsed.config);
  const ConfigParse again = seamless::config::parse_config(canonical, "canonical.yaml");
  check(again.ok());
  check(*again.config == *parsed.config);
  check(seamless::config::canonical_yaml(*again.config) == canonical);
  check(seamless::config::config_digest(*again.config) ==
        seamless::config::config_digest(*parsed.config));
  return 0;
}
