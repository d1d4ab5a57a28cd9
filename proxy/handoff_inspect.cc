// `seamless handoff inspect`: the two passes over the file, and the facts that the
// text and JSON renderings (handoff_inspect_text.cc, handoff_inspect_json.cc) share.
#include "proxy/handoff_inspect.h"

#include <fcntl.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <ctime>
#include <utility>

#include "base/unique_fd.h"
#include "proxy/handoff_render.h"
#include "repair/handoff_file.h"

namespace seamless::proxy {

using repair::HandoffReader;
using repair::PairRecord;

namespace inspect {

std::vector<std::string> flag_names(uint32_t flags) {
  static constexpr std::array<std::pair<uint32_t, const char*>, 6> kNames = {{
      {repair::kClientFinished, "client_finished"},
      {repair::kBackendFinished, "backend_finished"},
      {repair::kClientReset, "client_reset"},
      {repair::kBackendReset, "backend_reset"},
      {repair::kDegraded, "degraded"},
      {repair::kAbort, "abort"},
  }};
  std::vector<std::string> names;
  for (int bit = 0; bit < 32; ++bit) {
    const uint32_t mask = uint32_t{1} << bit;
    if ((flags & mask) == 0) continue;
    const char* name = nullptr;
    for (const auto& [known, known_name] : kNames) {
      if (known == mask) name = known_name;
    }
    if (name != nullptr) {
      names.emplace_back(name);
    } else {
      char hex[16];
      std::snprintf(hex, sizeof(hex), "0x%x", mask);
      names.emplace_back(hex);
    }
  }
  return names;
}

AbsentReason absent_reason(const PairRecord& record, Leg leg) {
  const bool client = leg == Leg::kClient;
  if (record.has(client ? repair::kClientReset : repair::kBackendReset)) {
    return AbsentReason::kReset;
  }
  // The file has no "connecting" marker; a backend that never connected has
  // delivered nothing, passed on no EOF and left no bytes behind.
  if (!client && !record.has(repair::kBackendFinished) && record.backend_unread.empty() &&
      record.bytes_backend_to_client == 0) {
    return AbsentReason::kConnecting;
  }
  return AbsentReason::kClosed;
}

const char* to_string(AbsentReason reason) {
  switch (reason) {
    case AbsentReason::kConnecting:
      return "connecting";
    case AbsentReason::kClosed:
      return "closed";
    case AbsentReason::kReset:
      return "reset";
  }
  return "unknown";
}

const std::string& unread_bytes(const PairRecord& record, Leg leg) {
  return leg == Leg::kClient ? record.client_unread : record.backend_unread;
}

uint64_t queued_bytes(const PairRecord& record) {
  uint64_t total = record.client_unread.size() + record.backend_unread.size();
  for (const auto* leg : {&record.client, &record.backend_socket}) {
    if (*leg) total += (*leg)->send_queue.size() + (*leg)->recv_queue.size();
  }
  return total;
}

const char* family_name(const repair::Endpoint& endpoint) {
  if (endpoint.family == AF_INET) return "ipv4";
  return endpoint.is_v4_mapped() ? "ipv4-mapped" : "ipv6";
}

std::optional<std::string> utc_time(int64_t unix_ms) {
  int64_t seconds = unix_ms / 1000;
  int64_t millis = unix_ms % 1000;
  if (millis < 0) {  // floor, so that -1 ms is 23:59:59.999 of the day before
    seconds -= 1;
    millis += 1000;
  }
  constexpr int64_t kYear0 = -62167219200;      // 0000-01-01T00:00:00Z
  constexpr int64_t kYear10000 = 253402300800;  // 10000-01-01T00:00:00Z
  if (seconds < kYear0 || seconds >= kYear10000) return std::nullopt;
  const time_t t = static_cast<time_t>(seconds);
  std::tm tm{};
  if (::gmtime_r(&t, &tm) == nullptr) return std::nullopt;
  char text[96];  // room for any int in each field, which -Wformat-truncation checks
  std::snprintf(text, sizeof(text), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<int>(millis));
  return std::string(text);
}

std::string base64(std::string_view bytes) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 3 <= bytes.size(); i += 3) {
    const uint32_t v = (uint32_t{static_cast<uint8_t>(bytes[i])} << 16) |
                       (uint32_t{static_cast<uint8_t>(bytes[i + 1])} << 8) |
                       uint32_t{static_cast<uint8_t>(bytes[i + 2])};
    for (int shift = 18; shift >= 0; shift -= 6) out += kAlphabet[(v >> shift) & 0x3f];
  }
  const size_t rest = bytes.size() - i;
  if (rest > 0) {
    uint32_t v = uint32_t{static_cast<uint8_t>(bytes[i])} << 16;
    if (rest == 2) v |= uint32_t{static_cast<uint8_t>(bytes[i + 1])} << 8;
    out += kAlphabet[(v >> 18) & 0x3f];
    out += kAlphabet[(v >> 12) & 0x3f];
    out += rest == 2 ? kAlphabet[(v >> 6) & 0x3f] : '=';
    out += '=';
  }
  return out;
}

namespace {

std::string escape(std::string_view bytes, bool in_quotes) {
  std::string out;
  out.reserve(bytes.size());
  for (const char c : bytes) {
    if (c == '"' && in_quotes) {
      out += "\\\"";
      continue;
    }
    switch (c) {
      case '\\':
        out += "\\\\";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      default: {
        const auto byte = static_cast<uint8_t>(c);
        if (byte >= 0x20 && byte < 0x7f) {
          out += c;
        } else {
          char hex[8];
          std::snprintf(hex, sizeof(hex), "\\x%02x", byte);
          out += hex;
        }
      }
    }
  }
  return out;
}

}  // namespace

std::string escaped(std::string_view bytes) { return escape(bytes, false); }
std::string quoted(std::string_view bytes) { return "\"" + escape(bytes, true) + "\""; }

}  // namespace inspect

namespace {

// Reads every record; hands each to `renderer` when there is one. Returns the totals.
Result<inspect::FileTotals> read_records(HandoffReader& reader, inspect::Renderer* renderer) {
  inspect::FileTotals totals;
  for (;;) {
    Result<std::optional<PairRecord>> record = reader.next();
    if (!record.ok()) return record.error();
    if (!*record) break;
    const PairRecord& r = **record;
    ++totals.pairs;
    totals.client_legs += r.client.has_value() ? 1 : 0;
    totals.backend_legs += r.backend_socket.has_value() ? 1 : 0;
    totals.queued_bytes += inspect::queued_bytes(r);
    if (renderer != nullptr) renderer->pair(r);
  }
  totals.file_bytes = reader.offset();
  return totals;
}

}  // namespace

Status inspect_handoff_file(const std::string& path, const InspectOptions& options,
                            std::ostream& out) {
  // O_NONBLOCK, as HandoffReader::open: a FIFO at the path must not hang us; the
  // reader refuses anything but a regular file.
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK));
  if (!fd) return Error::from_errno("handoff file " + path + ": open");
  {
    // Verify first through a duplicate: it shares the file offset, which is then
    // rewound, so both passes read the same file even if the path is replaced.
    UniqueFd copy(::fcntl(fd.get(), F_DUPFD_CLOEXEC, 0));
    if (!copy) return Error::from_errno("handoff file " + path + ": dup");
    Result<HandoffReader> verifier = HandoffReader::from_fd(std::move(copy), path);
    if (!verifier.ok()) return verifier.error();
    if (Result<inspect::FileTotals> t = read_records(*verifier, nullptr); !t.ok()) {
      return t.error();
    }
  }
  if (::lseek(fd.get(), 0, SEEK_SET) != 0) {
    return Error::from_errno("handoff file " + path + ": lseek");
  }
  Result<HandoffReader> reader = HandoffReader::from_fd(std::move(fd), path);
  if (!reader.ok()) return reader.error();

  std::unique_ptr<inspect::Renderer> renderer =
      options.json ? inspect::make_json_renderer(out, options.payload)
                   : inspect::make_text_renderer(out, options.payload);
  renderer->begin(path, reader->format(), reader->header());
  Result<inspect::FileTotals> totals = read_records(*reader, renderer.get());
  if (!totals.ok()) return totals.error();
  renderer->end(*totals);
  out.flush();
  if (!out) return Error::logic("handoff file " + path + ": writing the description failed");
  return {};
}

}  // namespace seamless::proxy
