// CRC32C (Castagnoli): the checksum of the handoff file's frames. Implemented here
// rather than pulled in: it is ~100 lines, and zlib's crc32 is a different
// polynomial. Uses the SSE4.2 instruction when the CPU has it (the handoff is
// written inside the flow-lock window, so gigabytes of queues must checksum fast),
// and a slicing-by-8 table otherwise; both give identical results.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace seamless::repair {

// Continues a CRC32C: `crc` is a value previously returned (0 to start), so
// crc32c_extend(crc32c(a), b) == crc32c(a + b).
uint32_t crc32c_extend(uint32_t crc, const void* data, size_t size);

inline uint32_t crc32c(std::string_view data) { return crc32c_extend(0, data.data(), data.size()); }

namespace internal {
// The two implementations behind crc32c_extend, exposed so tests check both.
uint32_t crc32c_extend_portable(uint32_t crc, const void* data, size_t size);
bool crc32c_hardware_available();
// Only valid when crc32c_hardware_available().
uint32_t crc32c_extend_hardware(uint32_t crc, const void* data, size_t size);
}  // namespace internal

}  // namespace seamless::repair
