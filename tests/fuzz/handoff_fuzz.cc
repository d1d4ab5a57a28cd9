// Feeds arbitrary bytes to the handoff file reader, which the keeper runs on a file
// it did not write itself: it must refuse or read, never crash, hang or allocate
// more than the input can fill. Seeds: tests/fuzz/corpus/handoff/ (golden files).
//
// Each input is read twice: as it is, and with every checksum recomputed, so that
// the decoding behind the CRC32C gate (message parsing, limits, queue assembly) is
// reached by mutations a real checksum would otherwise stop at the door.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "repair/crc32c.h"
#include "repair/handoff_file.h"
#include "repair/handoff_format.h"

namespace {

using namespace seamless::repair;           // NOLINT
using namespace seamless::repair::handoff;  // NOLINT

// Rewrites the preamble's and each whole frame's checksum so that they hold.
std::string with_valid_checksums(std::string_view input) {
  std::string bytes(input);
  if (bytes.size() < kPreambleSize) return bytes;
  auto* p = reinterpret_cast<uint8_t*>(bytes.data());
  uint32_t chain = crc32c_extend(0, p, 12);
  put_le32(p + 12, chain);
  size_t at = kPreambleSize;
  while (bytes.size() - at >= kFrameHeadSize + kFrameCrcSize) {
    const uint64_t length = get_le32(p + at + 1);
    if (length > bytes.size() - at - kFrameHeadSize - kFrameCrcSize) break;
    const size_t crc_at = at + kFrameHeadSize + length;
    chain = crc32c_extend(chain, p + at, crc_at - at);
    put_le32(p + crc_at, chain);
    at = crc_at + kFrameCrcSize;
  }
  return bytes;
}

void read_everything(std::string_view bytes) {
  seamless::Result<HandoffReader> reader = HandoffReader::from_bytes(bytes, "fuzz");
  if (!reader.ok()) return;
  for (;;) {
    auto record = reader->next();
    if (!record.ok() || !*record) break;
    // Touch what a restore would use, so a bad value shows up under the sanitizers
    // here rather than in the worker.
    const PairRecord& r = **record;
    volatile size_t sink = r.service.size() + r.backend.size() + r.client_unread.size();
    if (r.client) sink = sink + r.client->send_queue.size() + r.client->recv_queue.size();
    (void)sink;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  read_everything(bytes);
  read_everything(with_valid_checksums(bytes));
  return 0;
}
