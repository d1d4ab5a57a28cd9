// The JSON rendering of `seamless handoff inspect`: one document,
//   {"file", "format", "header", "pairs": [...], "summary"}
// streamed a pair at a time (each pair is built with nlohmann::json and dumped
// alone), so memory stays bounded by one record whatever the file holds.
//
// Strings from the file are bytes; JSON strings are Unicode. Bytes that are not
// valid UTF-8 become U+FFFD (the dump's "replace" handler) instead of making the
// document invalid. Payload, which must survive exactly, is base64.
#include <nlohmann/json.hpp>
#include <string>

#include "proxy/handoff_render.h"
#include "repair/handoff_file.h"

namespace seamless::proxy::inspect {
namespace {

using Json = nlohmann::ordered_json;  // keeps keys in the order written, for humans
using repair::PairRecord;
using repair::SocketImage;

// The value as JSON text, every line after the first indented by `indent` spaces,
// so that it nests inside the hand-written outer document.
std::string dumped(const Json& value, int indent) {
  const std::string text = value.dump(2, ' ', false, Json::error_handler_t::replace);
  std::string out;
  out.reserve(text.size());
  for (const char c : text) {
    out += c;
    // A dumped JSON string never holds a raw line break, so each one is layout.
    if (c == '\n') out.append(static_cast<size_t>(indent), ' ');
  }
  return out;
}

Json time_json(int64_t unix_ms) {
  const std::optional<std::string> utc = utc_time(unix_ms);
  return utc ? Json(*utc) : Json(nullptr);
}

Json endpoint_json(const repair::Endpoint& e) {
  return Json{{"address", e.to_string()}, {"family", family_name(e)}, {"scope_id", e.scope_id}};
}

class JsonRenderer : public Renderer {
 public:
  JsonRenderer(std::ostream& out, bool payload) : out_(out), payload_(payload) {}

  void begin(const std::string& path, repair::FormatVersion format,
             const repair::HandoffHeader& header) override {
    Json counters = Json::object();
    for (const auto& [name, value] : header.counters) counters[name] = value;
    const Json head{{"writer_version", header.writer_version},
                    {"config_digest", header.config_digest},
                    {"created_at_unix_ms", header.created_at_unix_ms},
                    {"created_at", time_json(header.created_at_unix_ms)},
                    {"counters", counters}};
    out_ << "{\n  \"file\": " << dumped(Json(path), 2)
         << ",\n  \"format\": " << dumped(Json{{"major", format.major}, {"minor", format.minor}}, 2)
         << ",\n  \"header\": " << dumped(head, 2) << ",\n  \"pairs\": [";
  }

  void pair(const PairRecord& r) override {
    out_ << (pairs_ == 0 ? "\n    " : ",\n    ") << dumped(pair_json(r), 4);
    ++pairs_;
  }

  void end(const FileTotals& t) override {
    const Json summary{{"pairs", t.pairs},
                       {"client_sockets", t.client_legs},
                       {"backend_sockets", t.backend_legs},
                       {"queued_bytes", t.queued_bytes},
                       {"file_bytes", t.file_bytes}};
    out_ << (pairs_ == 0 ? "]" : "\n  ]") << ",\n  \"summary\": " << dumped(summary, 2) << "\n}\n";
  }

 private:
  Json pair_json(const PairRecord& r) const {
    Json header{{"length", r.header_len}, {"pending", r.header_pending}};
    // The PROXY header is the proxy's own metadata, not user payload: always shown.
    header["base64"] = base64(r.proxy_header);
    return Json{{"id", r.id},
                {"service", r.service},
                {"backend", r.backend},
                {"flags", Json{{"value", r.flags}, {"names", flag_names(r.flags)}}},
                {"proxy_header", header},
                {"baselines", Json{{"client_off_w", r.client_off_w},
                                   {"client_off_r", r.client_off_r},
                                   {"backend_off_w", r.backend_off_w},
                                   {"backend_off_r", r.backend_off_r}}},
                {"bytes", Json{{"client_to_backend", r.bytes_client_to_backend},
                               {"backend_to_client", r.bytes_backend_to_client}}},
                {"created_at_unix_ms", r.created_at_unix_ms},
                {"created_at", time_json(r.created_at_unix_ms)},
                {"queued_bytes", queued_bytes(r)},
                {"client", leg_json(r, Leg::kClient)},
                {"backend_socket", leg_json(r, Leg::kBackend)}};
  }

  Json leg_json(const PairRecord& r, Leg which) const {
    const std::optional<SocketImage>& image = which == Leg::kClient ? r.client : r.backend_socket;
    const std::string& unread = unread_bytes(r, which);
    Json leg = image ? socket_json(*image)
                     : Json{{"present", false}, {"reason", to_string(absent_reason(r, which))}};
    leg["unread_bytes"] = unread.size();
    if (payload_) leg["unread_base64"] = base64(unread);
    return leg;
  }

  Json socket_json(const SocketImage& s) const {
    Json send{{"seq", s.send_seq},
              {"end_seq", s.send_end()},
              {"queue_bytes", s.send_queue.size()},
              {"sent_bytes", s.send_queue.size() - s.send_unsent},
              {"unsent_bytes", s.send_unsent},
              {"fin_unsent", s.fin_unsent}};
    Json recv{{"seq", s.recv_seq}, {"end_seq", s.recv_end()}, {"queue_bytes", s.recv_queue.size()}};
    if (payload_) {
      send["data_base64"] = base64(s.send_queue);
      recv["data_base64"] = base64(s.recv_queue);
    }
    const repair::SocketOptions& o = s.options;
    return Json{{"present", true},
                {"local", endpoint_json(s.local)},
                {"peer", endpoint_json(s.peer)},
                {"state", repair::to_string(s.state)},
                {"state_number", static_cast<int>(s.state)},
                {"fin_sent", repair::fin_sent(s.state)},
                {"fin_received", repair::fin_received(s.state)},
                {"send", send},
                {"receive", recv},
                {"tcp", Json{{"mss", s.tcp.mss},
                             {"sack", s.tcp.sack},
                             {"timestamps", s.tcp.timestamps},
                             {"window_scaling", s.tcp.window_scaling},
                             {"snd_wscale", s.tcp.snd_wscale},
                             {"rcv_wscale", s.tcp.rcv_wscale},
                             {"timestamp", s.tcp.timestamp}}},
                {"window", Json{{"snd_wl1", s.window.snd_wl1},
                                {"snd_wnd", s.window.snd_wnd},
                                {"max_window", s.window.max_window},
                                {"rcv_wnd", s.window.rcv_wnd},
                                {"rcv_wup", s.window.rcv_wup}}},
                {"options", Json{{"nodelay", o.nodelay},
                                 {"oobinline", o.oobinline},
                                 {"notsent_lowat", o.notsent_lowat},
                                 {"keepalive", o.keepalive},
                                 {"keepidle", o.keepidle},
                                 {"keepintvl", o.keepintvl},
                                 {"keepcnt", o.keepcnt},
                                 {"v6only", o.v6only},
                                 {"mark", o.mark}}}};
  }

  std::ostream& out_;
  bool payload_;
  uint64_t pairs_ = 0;
};

}  // namespace

std::unique_ptr<Renderer> make_json_renderer(std::ostream& out, bool payload) {
  return std::make_unique<JsonRenderer>(out, payload);
}

}  // namespace seamless::proxy::inspect
