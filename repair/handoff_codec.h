// Converts the handoff file's messages (handoff.proto) to and from our value types.
// Private to repair/ and its tests; keeps the generated protobuf types out of every
// other header. Errors carry no file context: the reader and writer add it.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "base/result.h"
#include "repair/handoff_file.h"
#include "repair/pair_record.h"

namespace seamless::repair::handoff {

// A record's queues, in the order their bytes follow it in DATA frames.
inline constexpr size_t kQueueCount = 6;
using QueueLengths = std::array<uint64_t, kQueueCount>;
std::array<const std::string*, kQueueCount> record_queues(const PairRecord& record);
std::array<std::string*, kQueueCount> record_queues(PairRecord* record);
const char* queue_name(size_t index);  // "client send queue", ...
QueueLengths queue_lengths(const PairRecord& record);

std::string encode_header(const HandoffHeader& header);
Result<HandoffHeader> decode_header(std::string_view message);

// The record message, queues left out (their lengths and data_len are in it). Fails
// on a record the reader would refuse, so that such a file is never written.
Result<std::string> encode_record(const PairRecord& record);

struct DecodedRecord {
  PairRecord record;  // queues still empty
  QueueLengths queue_lengths{};
  uint64_t data_len = 0;  // >= the sum of queue_lengths; the rest is skipped
};
Result<DecodedRecord> decode_record(std::string_view message);

struct TrailerInfo {
  uint64_t record_count = 0;
  uint64_t data_bytes = 0;
};
std::string encode_trailer(const TrailerInfo& trailer);
Result<TrailerInfo> decode_trailer(std::string_view message);

}  // namespace seamless::repair::handoff
