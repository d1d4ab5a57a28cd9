// The handoff file's byte layout (private to repair/; tests use it to hand-build
// files). All integers little-endian.
//
//   preamble  16 bytes, fixed for every format version, so that any future binary
//             can say "format X.Y" about any file:
//               "SEAMLSHO"  u16 major  u16 minor  u32 crc32c(the 12 bytes before)
//   frames    each:  u8 type  u32 length  payload[length]  u32 crc
//             where crc = crc32c_extend(previous frame's crc, type..payload), the
//             first frame continuing from the preamble's crc. Chaining makes every
//             frame's checksum depend on all before it, so a frame dropped, repeated
//             or moved is refused right where it happens, not only at the end.
//               HEADER   once, first: a handoff.proto Header
//               RECORD   per pair: a PairRecord message, followed by...
//               DATA     ...frames whose payloads, concatenated, are the pair's
//                        queues (PairRecord.data_len bytes in all)
//               TRAILER  last: record and data byte counts, so a file cut at a frame
//                        boundary is refused too
//             Types with bit 0x80 set are extensions a newer minor may add; an older
//             reader checks their checksum and skips them. Any other unknown type is
//             refused.
//
// Compatibility: a reader reads every minor of its own major (unknown message fields,
// extension frames and extra queue bytes are skipped) and refuses any other major.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace seamless::repair::handoff {

inline constexpr std::string_view kMagic = "SEAMLSHO";
inline constexpr uint16_t kFormatMajor = 1;
inline constexpr uint16_t kFormatMinor = 0;

inline constexpr size_t kPreambleSize = 16;
inline constexpr size_t kFrameHeadSize = 5;
inline constexpr size_t kFrameCrcSize = 4;

enum FrameType : uint8_t {
  kHeaderFrame = 1,
  kRecordFrame = 2,
  kDataFrame = 3,
  kTrailerFrame = 4,
};
inline constexpr uint8_t kExtensionFrameBit = 0x80;

// Limits, checked before anything is allocated. A message frame holds no payload
// (queues travel in DATA frames), so 1 MiB is generous; DATA frames are written in
// 1 MiB chunks. A queue is at most 1 GiB: a socket's buffers are far smaller.
inline constexpr uint32_t kMaxMessageFrame = 1u << 20;
inline constexpr uint32_t kMaxDataFrame = 1u << 20;
inline constexpr uint64_t kMaxQueueBytes = uint64_t{1} << 30;
// Per record, including queues a newer minor may add after the six we know.
inline constexpr uint64_t kMaxRecordData = uint64_t{8} << 30;

inline void put_le16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v);
  p[1] = static_cast<uint8_t>(v >> 8);
}
inline void put_le32(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}
inline uint16_t get_le16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }
inline uint32_t get_le32(const uint8_t* p) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

using Preamble = std::array<uint8_t, kPreambleSize>;
Preamble encode_preamble(uint16_t major, uint16_t minor);

using FrameHead = std::array<uint8_t, kFrameHeadSize>;
FrameHead encode_frame_head(uint8_t type, uint32_t length);

// The preamble's crc: where the frames' checksum chain starts.
uint32_t preamble_crc(const Preamble& preamble);

// A whole frame in memory, for tests that build files by hand. `chain` is the
// previous frame's crc (or the preamble's) and becomes this frame's.
std::string encode_frame(uint8_t type, std::string_view payload, uint32_t* chain);

// "1.0", for messages.
std::string format_version_string(uint16_t major, uint16_t minor);
// "record", "data", ... or "type 0x83", for messages.
std::string frame_type_name(uint8_t type);

}  // namespace seamless::repair::handoff
