// The text rendering of `seamless handoff inspect`: one "label  value" line per
// fact, pairs in file order, a summary line last. Every string that comes from the
// file goes through escaped(), so a hostile file cannot break lines or send terminal
// control sequences.
#include <cstdio>
#include <string>

#include "proxy/handoff_render.h"
#include "repair/handoff_file.h"

namespace seamless::proxy::inspect {
namespace {

using repair::PairRecord;
using repair::SocketImage;

const char* on_off(bool value) { return value ? "on" : "off"; }
const char* yes_no(bool value) { return value ? "yes" : "no"; }

std::string plural(uint64_t count, const char* noun) {
  return std::to_string(count) + " " + noun + (count == 1 ? "" : "s");
}

std::string hex32(uint32_t value) {
  char text[16];
  std::snprintf(text, sizeof(text), "0x%x", value);
  return text;
}

std::string time_text(int64_t unix_ms) {
  const std::optional<std::string> utc = utc_time(unix_ms);
  const std::string ms = "unix ms " + std::to_string(unix_ms);
  return utc ? *utc + " (" + ms + ")" : "out of range (" + ms + ")";
}

class TextRenderer : public Renderer {
 public:
  TextRenderer(std::ostream& out, bool payload) : out_(out), payload_(payload) {}

  void begin(const std::string& path, repair::FormatVersion format,
             const repair::HandoffHeader& header) override {
    const repair::FormatVersion ours = repair::current_handoff_format();
    field(0, "handoff file", path);
    field(0, "format",
          std::to_string(format.major) + "." + std::to_string(format.minor) +
              " (this binary reads " + std::to_string(ours.major) + ".x)");
    field(0, "writer", escaped(header.writer_version));
    field(0, "config digest", escaped(header.config_digest));
    field(0, "created at", time_text(header.created_at_unix_ms));
    field(0, "counters", std::to_string(header.counters.size()));
    for (const auto& [name, value] : header.counters) {
      out_ << "  " << escaped(name) << " " << value << "\n";
    }
  }

  void pair(const PairRecord& r) override {
    out_ << "\npair " << r.id << "\n";
    field(2, "service", escaped(r.service));
    field(2, "backend", escaped(r.backend));
    field(2, "flags", flags_text(r.flags));
    field(2, "proxy header", header_text(r));
    field(2, "baselines",
          "client w " + std::to_string(r.client_off_w) + " r " + std::to_string(r.client_off_r) +
              ", backend w " + std::to_string(r.backend_off_w) + " r " +
              std::to_string(r.backend_off_r));
    field(2, "bytes",
          "client->backend " + std::to_string(r.bytes_client_to_backend) + ", backend->client " +
              std::to_string(r.bytes_backend_to_client));
    field(2, "created at", time_text(r.created_at_unix_ms));
    field(2, "queued", plural(queued_bytes(r), "byte"));
    leg(r, Leg::kClient);
    leg(r, Leg::kBackend);
  }

  void end(const FileTotals& t) override {
    out_ << "\nsummary: " << plural(t.pairs, "pair") << " (" << t.client_legs << " client, "
         << t.backend_legs << " backend sockets), " << plural(t.queued_bytes, "queued byte") << ", "
         << plural(t.file_bytes, "file byte") << "\n";
  }

 private:
  void field(int indent, const std::string& label, const std::string& value) {
    out_ << std::string(indent, ' ') << label;
    const int pad = 16 - indent - static_cast<int>(label.size());
    out_ << std::string(pad > 1 ? pad : 1, ' ') << value << "\n";
  }

  static std::string flags_text(uint32_t flags) {
    if (flags == 0) return "none";
    std::string text;
    for (const std::string& name : flag_names(flags)) text += (text.empty() ? "" : ", ") + name;
    return text + " (" + hex32(flags) + ")";
  }

  static std::string header_text(const PairRecord& r) {
    if (r.header_len == 0 && r.proxy_header.empty()) return "none";
    std::string text =
        plural(r.header_len, "byte") + ", " + std::to_string(r.header_pending) + " pending";
    if (!r.proxy_header.empty()) text += ": " + quoted(r.proxy_header);
    return text;
  }

  void leg(const PairRecord& r, Leg which) {
    const bool client = which == Leg::kClient;
    const std::optional<SocketImage>& image = client ? r.client : r.backend_socket;
    const std::string& unread = unread_bytes(r, which);
    const char* label = client ? "client leg" : "backend leg";
    if (!image) {
      field(2, label, "absent: " + absent_text(r, which));
    } else {
      socket(label, *image);
      if (!unread.empty()) field(4, "unread", plural(unread.size(), "byte"));
    }
    if (payload_ && !unread.empty()) dump(4, "unread data", unread);
  }

  static std::string absent_text(const PairRecord& r, Leg which) {
    const size_t unread = unread_bytes(r, which).size();
    const char* partner = which == Leg::kClient ? "backend" : "client";
    switch (absent_reason(r, which)) {
      case AbsentReason::kConnecting:
        return "connecting (SYN_SENT); the next worker connects a fresh backend";
      case AbsentReason::kReset:
        return "closed by a reset; the " + std::string(partner) + " is aborted";
      case AbsentReason::kClosed:
        break;
    }
    return "closed in order, " + plural(unread, "unread byte") + " owed to the " + partner;
  }

  void socket(const char* label, const SocketImage& s) {
    field(2, label,
          s.peer.to_string() + " -> " + s.local.to_string() + " (peer -> local, " +
              family_name(s.local) + ")");
    field(4, "state",
          std::string(repair::to_string(s.state)) + " (" +
              std::to_string(static_cast<int>(s.state)) + "); our FIN " +
              (repair::fin_sent(s.state) ? "queued or sent" : "not sent") + ", peer FIN " +
              (repair::fin_received(s.state) ? "received" : "not received"));
    const uint64_t unsent = s.send_unsent;
    field(4, "send queue",
          plural(s.send_queue.size(), "byte") + " from seq " + std::to_string(s.send_seq) + " to " +
              std::to_string(s.send_end()) + ": " + std::to_string(s.send_queue.size() - unsent) +
              " sent, " + std::to_string(unsent) + " unsent; fin_unsent " + yes_no(s.fin_unsent));
    field(4, "recv queue",
          plural(s.recv_queue.size(), "byte") + " from seq " + std::to_string(s.recv_seq) + " to " +
              std::to_string(s.recv_end()));
    field(4, "tcp",
          "mss " + std::to_string(s.tcp.mss) + ", wscale snd " + std::to_string(s.tcp.snd_wscale) +
              " rcv " + std::to_string(s.tcp.rcv_wscale) + " (scaling " +
              on_off(s.tcp.window_scaling) + "), sack " + on_off(s.tcp.sack) + ", timestamps " +
              on_off(s.tcp.timestamps) + " (tsval " + std::to_string(s.tcp.timestamp) + ")");
    field(4, "window",
          "snd_wl1 " + std::to_string(s.window.snd_wl1) + ", snd_wnd " +
              std::to_string(s.window.snd_wnd) + ", max_window " +
              std::to_string(s.window.max_window) + ", rcv_wnd " +
              std::to_string(s.window.rcv_wnd) + ", rcv_wup " + std::to_string(s.window.rcv_wup));
    const repair::SocketOptions& o = s.options;
    field(4, "options",
          std::string("nodelay ") + on_off(o.nodelay) + ", oobinline " + on_off(o.oobinline) +
              ", keepalive " + on_off(o.keepalive) + " (idle " + std::to_string(o.keepidle) +
              " intvl " + std::to_string(o.keepintvl) + " cnt " + std::to_string(o.keepcnt) +
              "), notsent_lowat " + std::to_string(o.notsent_lowat) + ", v6only " +
              on_off(o.v6only) + ", mark " + hex32(o.mark));
    if (payload_) {
      dump(4, "send data", s.send_queue);
      dump(4, "recv data", s.recv_queue);
    }
  }

  // A hex dump: offset, 16 bytes in hex, the same bytes as ASCII ('.' if not).
  void dump(int indent, const std::string& label, const std::string& bytes) {
    if (bytes.empty()) return;
    field(indent, label, plural(bytes.size(), "byte") + ":");
    const std::string margin(indent + 2, ' ');
    for (size_t at = 0; at < bytes.size(); at += 16) {
      char line[96];
      int used = std::snprintf(line, sizeof(line), "%08zx ", at);
      std::string ascii;
      for (size_t i = at; i < at + 16; ++i) {
        if (i == at + 8) used += std::snprintf(line + used, sizeof(line) - used, " ");
        if (i < bytes.size()) {
          const auto byte = static_cast<uint8_t>(bytes[i]);
          used += std::snprintf(line + used, sizeof(line) - used, " %02x", byte);
          ascii += byte >= 0x20 && byte < 0x7f ? static_cast<char>(byte) : '.';
        } else {
          used += std::snprintf(line + used, sizeof(line) - used, "   ");
        }
      }
      out_ << margin << line << "  |" << ascii << "|\n";
    }
  }

  std::ostream& out_;
  bool payload_;
};

}  // namespace

std::unique_ptr<Renderer> make_text_renderer(std::ostream& out, bool payload) {
  return std::make_unique<TextRenderer>(out, payload);
}

}  // namespace seamless::proxy::inspect
