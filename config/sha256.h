// Private to config/: SHA-256 (FIPS 180-4) for the config digest, small enough to
// keep OpenSSL out of the dependencies. Not constant-time; nothing here is secret.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace seamless::config {

std::array<uint8_t, 32> sha256(std::string_view data);
std::string sha256_hex(std::string_view data);  // 64 lowercase hex digits

}  // namespace seamless::config
