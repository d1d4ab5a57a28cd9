#include "repair/crc32c.h"

#include <array>
#include <bit>
#include <cstring>

#if defined(__x86_64__)
#include <nmmintrin.h>
#endif

namespace seamless::repair {
namespace {

constexpr uint32_t kPolynomial = 0x82F63B78;  // Castagnoli, bit-reflected

using Tables = std::array<std::array<uint32_t, 256>, 8>;

// tables[k][b] is the CRC register after byte b followed by k zero bytes, which
// lets the portable loop fold eight bytes per step.
constexpr Tables make_tables() {
  Tables tables{};
  for (uint32_t byte = 0; byte < 256; ++byte) {
    uint32_t crc = byte;
    for (int bit = 0; bit < 8; ++bit) crc = (crc & 1) ? (crc >> 1) ^ kPolynomial : crc >> 1;
    tables[0][byte] = crc;
  }
  for (size_t k = 1; k < tables.size(); ++k) {
    for (size_t byte = 0; byte < 256; ++byte) {
      const uint32_t prev = tables[k - 1][byte];
      tables[k][byte] = (prev >> 8) ^ tables[0][prev & 0xff];
    }
  }
  return tables;
}

constexpr Tables kTables = make_tables();

uint32_t load_le32(const uint8_t* p) {
  uint32_t value;
  std::memcpy(&value, p, sizeof(value));
  if constexpr (std::endian::native == std::endian::big) value = __builtin_bswap32(value);
  return value;
}

}  // namespace

namespace internal {

uint32_t crc32c_extend_portable(uint32_t crc, const void* data, size_t size) {
  const auto* p = static_cast<const uint8_t*>(data);
  uint32_t reg = ~crc;
  while (size >= 8) {
    const uint32_t low = load_le32(p) ^ reg;
    const uint32_t high = load_le32(p + 4);
    reg = kTables[7][low & 0xff] ^ kTables[6][(low >> 8) & 0xff] ^ kTables[5][(low >> 16) & 0xff] ^
          kTables[4][low >> 24] ^ kTables[3][high & 0xff] ^ kTables[2][(high >> 8) & 0xff] ^
          kTables[1][(high >> 16) & 0xff] ^ kTables[0][high >> 24];
    p += 8;
    size -= 8;
  }
  while (size-- > 0) reg = (reg >> 8) ^ kTables[0][(reg ^ *p++) & 0xff];
  return ~reg;
}

#if defined(__x86_64__)

bool crc32c_hardware_available() { return __builtin_cpu_supports("sse4.2"); }

__attribute__((target("sse4.2"))) uint32_t crc32c_extend_hardware(uint32_t crc, const void* data,
                                                                  size_t size) {
  const auto* p = static_cast<const uint8_t*>(data);
  uint64_t reg = ~crc;
  while (size >= 8) {
    uint64_t word;
    std::memcpy(&word, p, sizeof(word));
    reg = _mm_crc32_u64(reg, word);
    p += 8;
    size -= 8;
  }
  auto reg32 = static_cast<uint32_t>(reg);
  while (size-- > 0) reg32 = _mm_crc32_u8(reg32, *p++);
  return ~reg32;
}

#else

bool crc32c_hardware_available() { return false; }
uint32_t crc32c_extend_hardware(uint32_t crc, const void* data, size_t size) {
  return crc32c_extend_portable(crc, data, size);
}

#endif

}  // namespace internal

uint32_t crc32c_extend(uint32_t crc, const void* data, size_t size) {
  if (internal::crc32c_hardware_available()) {
    return internal::crc32c_extend_hardware(crc, data, size);
  }
  return internal::crc32c_extend_portable(crc, data, size);
}

}  // namespace seamless::repair
