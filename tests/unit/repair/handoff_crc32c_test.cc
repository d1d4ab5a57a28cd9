#include <gtest/gtest.h>

#include <string>

#include "repair/crc32c.h"

namespace seamless::repair {
namespace {

using internal::crc32c_extend_hardware;
using internal::crc32c_extend_portable;
using internal::crc32c_hardware_available;

uint32_t portable(std::string_view s) { return crc32c_extend_portable(0, s.data(), s.size()); }

// Known vectors: the classic check value, and RFC 3720 (iSCSI) appendix B.4.
TEST(Crc32c, KnownVectors) {
  std::string ascending(32, '\0');
  std::string descending(32, '\0');
  for (int i = 0; i < 32; ++i) {
    ascending[i] = static_cast<char>(i);
    descending[i] = static_cast<char>(31 - i);
  }
  const struct {
    std::string data;
    uint32_t crc;
  } vectors[] = {
      {"", 0},
      {"123456789", 0xE3069283},
      {std::string(32, '\0'), 0x8A9136AA},
      {std::string(32, '\xff'), 0x62A8AB43},
      {ascending, 0x46DD794E},
      {descending, 0x113FDB5C},
  };
  for (const auto& v : vectors) {
    EXPECT_EQ(crc32c(v.data), v.crc) << v.data.size();
    EXPECT_EQ(portable(v.data), v.crc) << v.data.size();
    if (crc32c_hardware_available()) {
      EXPECT_EQ(crc32c_extend_hardware(0, v.data.data(), v.data.size()), v.crc);
    }
  }
}

TEST(Crc32c, ImplementationsAgreeAtEveryLengthAndAlignment) {
  std::string data(300, '\0');
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i * 131 + 7);
  for (size_t start = 0; start < 9; ++start) {
    for (size_t size = 0; start + size <= data.size(); size += 13) {
      const uint32_t want = crc32c_extend_portable(0x1234, data.data() + start, size);
      EXPECT_EQ(crc32c_extend(0x1234, data.data() + start, size), want);
      if (crc32c_hardware_available()) {
        EXPECT_EQ(crc32c_extend_hardware(0x1234, data.data() + start, size), want);
      }
    }
  }
}

TEST(Crc32c, ExtendIsConcatenation) {
  const std::string a = "handoff ";
  const std::string b = "file contents that go on";
  EXPECT_EQ(crc32c_extend(crc32c(a), b.data(), b.size()), crc32c(a + b));
  EXPECT_EQ(crc32c_extend_portable(portable(a), b.data(), b.size()), portable(a + b));
}

}  // namespace
}  // namespace seamless::repair
