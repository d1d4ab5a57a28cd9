#include "repair/handoff_format.h"

#include <cstdio>
#include <cstring>

#include "repair/crc32c.h"

namespace seamless::repair::handoff {

Preamble encode_preamble(uint16_t major, uint16_t minor) {
  Preamble out{};
  std::memcpy(out.data(), kMagic.data(), kMagic.size());
  put_le16(out.data() + 8, major);
  put_le16(out.data() + 10, minor);
  put_le32(out.data() + 12, crc32c_extend(0, out.data(), 12));
  return out;
}

FrameHead encode_frame_head(uint8_t type, uint32_t length) {
  FrameHead out{};
  out[0] = type;
  put_le32(out.data() + 1, length);
  return out;
}

uint32_t preamble_crc(const Preamble& preamble) { return get_le32(preamble.data() + 12); }

std::string encode_frame(uint8_t type, std::string_view payload, uint32_t* chain) {
  const FrameHead head = encode_frame_head(type, static_cast<uint32_t>(payload.size()));
  std::string out(reinterpret_cast<const char*>(head.data()), head.size());
  out.append(payload);
  *chain = crc32c_extend(*chain, out.data(), out.size());
  uint8_t crc[kFrameCrcSize];
  put_le32(crc, *chain);
  out.append(reinterpret_cast<const char*>(crc), sizeof(crc));
  return out;
}

std::string format_version_string(uint16_t major, uint16_t minor) {
  return std::to_string(major) + "." + std::to_string(minor);
}

std::string frame_type_name(uint8_t type) {
  switch (type) {
    case kHeaderFrame:
      return "header";
    case kRecordFrame:
      return "record";
    case kDataFrame:
      return "data";
    case kTrailerFrame:
      return "trailer";
    default: {
      char name[16];
      std::snprintf(name, sizeof(name), "type 0x%02x", type);
      return name;
    }
  }
}

}  // namespace seamless::repair::handoff
