// The two renderings of `seamless handoff inspect` (text and JSON) and the facts
// both derive from a record the same way. Private to handoff_inspect*.cc and tests.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "repair/handoff_file.h"
#include "repair/pair_record.h"

namespace seamless::proxy::inspect {

// Totals over the whole file, known only once the last record was read.
struct FileTotals {
  uint64_t pairs = 0;
  uint64_t client_legs = 0;   // present client socket images
  uint64_t backend_legs = 0;  // present backend socket images
  uint64_t queued_bytes = 0;  // every queue of every record, unread bytes included
  uint64_t file_bytes = 0;
};

// Receives the file in order: begin, one pair() per record, end.
class Renderer {
 public:
  virtual ~Renderer() = default;
  virtual void begin(const std::string& path, repair::FormatVersion format,
                     const repair::HandoffHeader& header) = 0;
  virtual void pair(const repair::PairRecord& record) = 0;
  virtual void end(const FileTotals& totals) = 0;
};

std::unique_ptr<Renderer> make_text_renderer(std::ostream& out, bool payload);
std::unique_ptr<Renderer> make_json_renderer(std::ostream& out, bool payload);

// ---- facts shared by both renderings --------------------------------------------

// Names of the set PairFlag bits in bit order ("client_finished", ...); bits this
// binary does not know (a newer minor's) as hex ("0x40").
std::vector<std::string> flag_names(uint32_t flags);

enum class Leg { kClient, kBackend };

// Why a leg has no socket image (pair_record.h): a backend whose connect was still
// in progress, or a leg that reached CLOSE in order or by a reset.
enum class AbsentReason { kConnecting, kClosed, kReset };
AbsentReason absent_reason(const repair::PairRecord& record, Leg leg);
const char* to_string(AbsentReason reason);  // "connecting", "closed", "reset"

// Bytes the leg had received and not yet forwarded (the record's *_unread).
const std::string& unread_bytes(const repair::PairRecord& record, Leg leg);

// Every queue of the record, unread bytes included.
uint64_t queued_bytes(const repair::PairRecord& record);

// "ipv4", "ipv6" or "ipv4-mapped".
const char* family_name(const repair::Endpoint& endpoint);

// "2024-04-24T23:06:40.000Z"; nullopt when the value is outside years 0-9999 (a
// file may carry anything there).
std::optional<std::string> utc_time(int64_t unix_ms);

// RFC 4648 base64 with padding.
std::string base64(std::string_view bytes);

// The bytes as one line of printable ASCII: \\ \r \n \t, other bytes outside
// 0x20-0x7e as \xNN, the rest as is. Never contains a line break or a control byte.
std::string escaped(std::string_view bytes);
// The same inside double quotes, with \" escaped too: a C string literal.
std::string quoted(std::string_view bytes);

}  // namespace seamless::proxy::inspect
