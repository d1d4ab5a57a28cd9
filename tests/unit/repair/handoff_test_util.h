// Helpers shared by the handoff file tests: sample values and a scratch directory.
#pragma once

#include <sys/socket.h>

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "repair/handoff_file.h"
#include "repair/pair_record.h"

namespace seamless::repair::testing {

// A private temp dir, removed with everything in it when the object goes.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string operator/(std::string_view name) const { return path_ + "/" + std::string(name); }

 private:
  std::string path_;
};

Endpoint v4(uint8_t a, uint8_t b, uint8_t c, uint8_t d, uint16_t port);
// 2001:db8::<last>, with a scope id.
Endpoint v6(uint16_t last, uint16_t port, uint32_t scope_id = 0);
// ::ffff:a.b.c.d (from a dual-stack listener).
Endpoint v4_mapped(uint8_t a, uint8_t b, uint8_t c, uint8_t d, uint16_t port);

// Deterministic bytes ("seed" varies them), for queues.
std::string pattern(size_t size, uint32_t seed);

// An image with every field set to a distinct non-default value.
SocketImage full_image(Endpoint local, Endpoint peer, uint32_t seed);
// A pair with every field set; queues of the given sizes.
PairRecord full_record(uint64_t id, size_t queue_size);
HandoffHeader sample_header();

// Reads a whole file (ASSERT-free: returns "" when it cannot).
std::string read_file(const std::string& path);
void write_file(const std::string& path, std::string_view bytes);

// Writes `records` into dir with a fresh writer and returns the committed path.
std::string write_handoff(const std::string& dir, const HandoffHeader& header,
                          const std::vector<PairRecord>& records);

// Reads every record of `bytes`; on success returns them, else the first error.
struct ReadAll {
  bool ok = false;
  std::string error;
  HandoffHeader header;
  FormatVersion format;
  std::vector<PairRecord> records;
};
ReadAll read_all(std::string_view bytes);
ReadAll read_all_file(const std::string& path);

// Protobuf wire pieces for hand-built "future" messages.
std::string varint(uint64_t value);
std::string field_varint(uint32_t field, uint64_t value);
std::string field_bytes(uint32_t field, std::string_view bytes);

}  // namespace seamless::repair::testing
