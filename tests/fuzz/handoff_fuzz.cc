// Feeds arbitrary bytes to the handoff file reader, which the keeper runs on a file
// it did not write itself: it must refuse or read, never crash, hang or allocate
// more than the input can fill. Seeds: tests/fuzz/corpus/handoff/ (golden files).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "repair/handoff_file.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using seamless::repair::HandoffReader;
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  seamless::Result<HandoffReader> reader = HandoffReader::from_bytes(bytes, "fuzz");
  if (!reader.ok()) return 0;
  for (;;) {
    auto record = reader->next();
    if (!record.ok() || !*record) break;
    // Touch what a restore would use, so a bad value would show up under the
    // sanitizers here rather than in the worker.
    const auto& r = **record;
    volatile size_t sink = r.service.size() + r.backend.size() + r.client_unread.size();
    if (r.client) sink = sink + r.client->send_queue.size() + r.client->recv_queue.size();
    (void)sink;
  }
  return 0;
}
