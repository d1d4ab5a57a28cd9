// `seamless handoff inspect` as a library call (proxy/handoff_inspect.h): what the
// text and JSON renderings show of a file written by HandoffWriter, that payload is
// hidden unless asked for, and that a damaged file is refused before anything is
// printed.
#include "proxy/handoff_inspect.h"

#include <gtest/gtest.h>
#include <sys/socket.h>

#include <cstdint>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "repair/handoff_file.h"
#include "repair/handoff_format.h"
#include "tests/unit/repair/handoff_test_util.h"

namespace seamless::proxy {
namespace {

using nlohmann::json;
using repair::PairRecord;
using repair::SocketImage;
using repair::TcpState;
using repair::testing::TempDir;
using repair::testing::v4;
using repair::testing::v4_mapped;
using repair::testing::v6;

const std::string kGoldenDir = std::string(SEAMLESS_SOURCE_DIR) + "/tests/golden/handoff";

SocketImage image(repair::Endpoint local, repair::Endpoint peer, TcpState state) {
  SocketImage s;
  s.local = local;
  s.peer = peer;
  s.state = state;
  s.send_seq = 1000;
  s.recv_seq = 0xfffffffe;  // the receive queue wraps
  s.tcp = {1460, true, true, true, 7, 9, 424242};
  s.window = {11, 64240, 65535, 131072, 77};
  s.options = {true, true, 0, true, 30, 5, 4, false, 0x5ea1};
  return s;
}

// Five pairs: both legs up, a backend still connecting (IPv6 client), a client closed
// with bytes owed, FINs unsent both ways, and a reset backend with odd names.
std::vector<PairRecord> sample_pairs() {
  PairRecord both;
  both.id = 1;
  both.service = "pg";
  both.backend = "198.18.1.2:7001";
  both.client = image(v4(198, 18, 0, 1, 5433), v4(198, 18, 0, 10, 41122), TcpState::kEstablished);
  both.client->send_queue = "SECRET-to-client";  // 16 bytes, 6 unsent
  both.client->send_unsent = 6;
  both.client->recv_queue = "foobar";
  both.backend_socket =
      image(v4(198, 18, 1, 1, 40001), v4(198, 18, 1, 2, 7001), TcpState::kEstablished);
  both.backend_socket->send_queue = "SECRET-to-backend";
  both.proxy_header = "PROXY TCP4 198.18.0.10 198.18.0.1 41122 5433\r\n";
  both.header_len = static_cast<uint32_t>(both.proxy_header.size());
  both.client_off_w = -3;
  both.backend_off_r = 1;
  both.bytes_client_to_backend = 4096;
  both.bytes_backend_to_client = 1 << 20;
  both.created_at_unix_ms = 1714000000000;

  PairRecord connecting;
  connecting.id = 2;
  connecting.service = "web-v6";
  connecting.backend = "[2001:db8:1::2]:8080";
  connecting.client = image(v6(1, 443), v6(0xbeef, 50123), TcpState::kEstablished);
  connecting.client->recv_queue = "GET / HTTP/1.1\r\n\r\n";
  connecting.header_len = 28;
  connecting.header_pending = 28;
  connecting.created_at_unix_ms = 0;

  PairRecord closed;
  closed.id = 3;
  closed.service = "dual";
  closed.backend = "198.18.1.3:9000";
  closed.client_unread = "owed-to-backend";  // 15 bytes
  closed.backend_socket =
      image(v4_mapped(198, 18, 1, 1, 40003), v4_mapped(198, 18, 1, 3, 9000), TcpState::kLastAck);
  closed.backend_socket->send_queue = "unsent";
  closed.backend_socket->send_unsent = 6;
  closed.backend_socket->fin_unsent = true;
  closed.flags = repair::kClientFinished | repair::kBackendFinished | repair::kDegraded;
  closed.bytes_backend_to_client = 5;
  closed.created_at_unix_ms = -1;

  PairRecord fins;
  fins.id = 4;
  fins.service = "pg";
  fins.backend = "198.18.1.2:7001";
  fins.client = image(v4(198, 18, 0, 1, 5433), v4(198, 18, 0, 12, 41300), TcpState::kFinWait1);
  fins.client->send_queue = "last";
  fins.client->send_unsent = 4;
  fins.client->fin_unsent = true;
  fins.backend_socket =
      image(v4(198, 18, 1, 1, 40004), v4(198, 18, 1, 2, 7001), TcpState::kCloseWait);
  fins.flags = repair::kBackendFinished;
  fins.created_at_unix_ms = INT64_MAX;

  PairRecord reset;
  reset.id = 5;
  reset.service = std::string("odd\n\xff", 5);  // a line break, and not UTF-8
  reset.backend = "198.18.1.9:1";
  reset.client = image(v4(198, 18, 0, 1, 5433), v4(198, 18, 0, 13, 41400), TcpState::kCloseWait);
  reset.flags = repair::kBackendReset | repair::kAbort | (1u << 9);
  reset.bytes_backend_to_client = 3;
  return {both, connecting, closed, fins, reset};
}

// Queue bytes over sample_pairs(): 16+6+17, 18, 15+6, 4.
constexpr uint64_t kSampleQueued = 16 + 6 + 17 + 18 + 15 + 6 + 4;

class ProxyHandoffInspect : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = repair::testing::write_handoff(dir_.path(), repair::testing::sample_header(),
                                           sample_pairs());
    ASSERT_FALSE(path_.empty());
  }

  // Renders `path`; returns the output, or "ERROR: <message>".
  std::string render(const std::string& path, bool as_json, bool payload = false) {
    std::ostringstream out;
    const Status status = inspect_handoff_file(path, {.json = as_json, .payload = payload}, out);
    if (!status.ok()) {
      EXPECT_EQ(out.str(), "") << "printed something for a file it refused";
      return "ERROR: " + status.error().message;
    }
    return out.str();
  }

  json render_json(bool payload = false) {
    const std::string text = render(path_, true, payload);
    json doc = json::parse(text, nullptr, /*allow_exceptions=*/false);
    EXPECT_FALSE(doc.is_discarded()) << text;
    return doc;
  }

  TempDir dir_;
  std::string path_;
};

void expect_has(const std::string& text, const std::string& part) {
  EXPECT_NE(text.find(part), std::string::npos) << "missing \"" << part << "\" in:\n" << text;
}

TEST_F(ProxyHandoffInspect, TextShowsHeaderPairsLegsAndSummary) {
  const std::string text = render(path_, false);
  expect_has(text, "handoff file    " + path_ + "\n");
  expect_has(text, "format          1.0 (this binary reads 1.x)\n");
  expect_has(text, "writer          0.1.0-test\n");
  expect_has(text, "config digest   sha256:0123456789abcdef\n");
  expect_has(text, "created at      2023-11-14T22:13:20.000Z (unix ms 1700000000000)\n");
  expect_has(text, "counters        3\n  seamless_connections_total{service=\"pg\"} 42\n");

  expect_has(text, "\npair 1\n  service       pg\n  backend       198.18.1.2:7001\n");
  expect_has(text, "  flags         none\n");
  expect_has(text,
             "  proxy header  46 bytes, 0 pending: \"PROXY TCP4 198.18.0.10 198.18.0.1 "
             "41122 5433\\r\\n\"\n");
  expect_has(text, "  baselines     client w -3 r 0, backend w 0 r 1\n");
  expect_has(text, "  bytes         client->backend 4096, backend->client 1048576\n");
  expect_has(text, "  created at    2024-04-24T23:06:40.000Z (unix ms 1714000000000)\n");
  expect_has(text, "  queued        39 bytes\n");
  expect_has(text, "  client leg    198.18.0.10:41122 -> 198.18.0.1:5433 (peer -> local, ipv4)\n");
  expect_has(text, "    state       ESTABLISHED (1); our FIN not sent, peer FIN not received\n");
  expect_has(text,
             "    send queue  16 bytes from seq 1000 to 1016: 10 sent, 6 unsent; "
             "fin_unsent no\n");
  expect_has(text, "    recv queue  6 bytes from seq 4294967294 to 4\n");
  expect_has(text,
             "    tcp         mss 1460, wscale snd 7 rcv 9 (scaling on), sack on, "
             "timestamps on (tsval 424242)\n");
  expect_has(text,
             "    window      snd_wl1 11, snd_wnd 64240, max_window 65535, "
             "rcv_wnd 131072, rcv_wup 77\n");
  expect_has(text,
             "    options     nodelay on, oobinline on, keepalive on (idle 30 intvl 5 "
             "cnt 4), notsent_lowat 0, v6only off, mark 0x5ea1\n");
  expect_has(text, "  backend leg   198.18.1.2:7001 -> 198.18.1.1:40001 (peer -> local, ipv4)\n");

  expect_has(text,
             "  client leg    [2001:db8::beef]:50123 -> [2001:db8::1]:443 "
             "(peer -> local, ipv6)\n");
  expect_has(text, "  proxy header  28 bytes, 28 pending\n");
  expect_has(text, "  created at    1970-01-01T00:00:00.000Z (unix ms 0)\n");
  expect_has(text,
             "  backend leg   absent: connecting (SYN_SENT); the next worker connects a "
             "fresh backend\n");

  expect_has(text, "  flags         client_finished, backend_finished, degraded (0x13)\n");
  expect_has(text, "  created at    1969-12-31T23:59:59.999Z (unix ms -1)\n");
  expect_has(text,
             "  client leg    absent: closed in order, 15 unread bytes owed to the "
             "backend\n");
  expect_has(text,
             "(peer -> local, ipv4-mapped)\n    state       LAST_ACK (9); our FIN queued "
             "or sent, peer FIN received\n    send queue  6 bytes from seq 1000 to 1006: "
             "0 sent, 6 unsent; fin_unsent yes\n");

  expect_has(text,
             "    state       FIN_WAIT1 (4); our FIN queued or sent, peer FIN not "
             "received\n    send queue  4 bytes from seq 1000 to 1004: 0 sent, 4 unsent; "
             "fin_unsent yes\n");
  expect_has(text, "    state       CLOSE_WAIT (8); our FIN not sent, peer FIN received\n");
  expect_has(text, "  created at    out of range (unix ms 9223372036854775807)\n");

  expect_has(text, "\npair 5\n  service       odd\\n\\xff\n");
  expect_has(text, "  flags         backend_reset, abort, 0x200 (0x228)\n");
  expect_has(text, "  backend leg   absent: closed by a reset; the client is aborted\n");

  expect_has(text, "\nsummary: 5 pairs (4 client, 3 backend sockets), " +
                       std::to_string(kSampleQueued) + " queued bytes, " +
                       std::to_string(repair::testing::read_file(path_).size()) + " file bytes\n");
}

TEST_F(ProxyHandoffInspect, TextHidesPayloadUnlessAsked) {
  const std::string hidden = render(path_, false);
  EXPECT_EQ(hidden.find("SECRET"), std::string::npos);
  EXPECT_EQ(hidden.find("owed-to-backend"), std::string::npos);
  for (const char* label : {"send data", "recv data", "unread data"}) {
    EXPECT_EQ(hidden.find(label), std::string::npos) << hidden;
  }

  const std::string shown = render(path_, false, /*payload=*/true);
  expect_has(shown,
             "    send data   16 bytes:\n"
             "      00000000  53 45 43 52 45 54 2d 74  6f 2d 63 6c 69 65 6e 74  "
             "|SECRET-to-client|\n");
  // Short lines are padded so that the ASCII column stays aligned.
  expect_has(shown, "    recv data   6 bytes:\n      00000000  66 6f 6f 62 61 72" +
                        std::string(33, ' ') + "|foobar|\n");
  expect_has(shown, "      00000010  64" + std::string(48, ' ') + "|d|\n");
  expect_has(shown,
             "    unread data 15 bytes:\n"
             "      00000000  6f 77 65 64 2d 74 6f 2d  62 61 63 6b 65 6e 64     "
             "|owed-to-backend|\n");
  // A CR/LF in the payload is a dot in the dump, never a line break.
  expect_has(shown, "|GET / HTTP/1.1..|\n");
}

TEST_F(ProxyHandoffInspect, JsonParsesBackWithTheRightValues) {
  const json doc = render_json();
  ASSERT_TRUE(doc.is_object());
  EXPECT_EQ(doc["file"], path_);
  EXPECT_EQ(doc["format"], (json{{"major", 1}, {"minor", 0}}));
  EXPECT_EQ(doc["header"]["writer_version"], "0.1.0-test");
  EXPECT_EQ(doc["header"]["created_at"], "2023-11-14T22:13:20.000Z");
  EXPECT_EQ(doc["header"]["counters"]["seamless_connections_total{service=\"pg\"}"], 42);
  EXPECT_EQ(doc["header"]["counters"]["zero"], 0);
  ASSERT_EQ(doc["pairs"].size(), 5u);

  const json& both = doc["pairs"][0];
  EXPECT_EQ(both["id"], 1);
  EXPECT_EQ(both["service"], "pg");
  EXPECT_EQ(both["proxy_header"]["length"], 46);
  EXPECT_EQ(both["proxy_header"]["base64"],
            "UFJPWFkgVENQNCAxOTguMTguMC4xMCAxOTguMTguMC4xIDQxMTIyIDU0MzMNCg==");
  EXPECT_EQ(both["baselines"]["client_off_w"], -3);
  EXPECT_EQ(both["bytes"]["backend_to_client"], 1 << 20);
  EXPECT_EQ(both["queued_bytes"], 39);
  const json& client = both["client"];
  EXPECT_EQ(client["present"], true);
  EXPECT_EQ(client["local"]["address"], "198.18.0.1:5433");
  EXPECT_EQ(client["peer"]["address"], "198.18.0.10:41122");
  EXPECT_EQ(client["peer"]["family"], "ipv4");
  EXPECT_EQ(client["state"], "ESTABLISHED");
  EXPECT_EQ(client["send"], (json{{"seq", 1000},
                                  {"end_seq", 1016},
                                  {"queue_bytes", 16},
                                  {"sent_bytes", 10},
                                  {"unsent_bytes", 6},
                                  {"fin_unsent", false}}));
  EXPECT_EQ(client["receive"]["seq"], 4294967294u);
  EXPECT_EQ(client["receive"]["end_seq"], 4);
  EXPECT_EQ(client["tcp"]["snd_wscale"], 7);
  EXPECT_EQ(client["tcp"]["rcv_wscale"], 9);
  EXPECT_EQ(client["window"]["snd_wnd"], 64240);
  EXPECT_EQ(client["options"]["mark"], 0x5ea1);
  EXPECT_EQ(client["unread_bytes"], 0);

  const json& connecting = doc["pairs"][1];
  EXPECT_EQ(connecting["client"]["peer"]["address"], "[2001:db8::beef]:50123");
  EXPECT_EQ(connecting["client"]["peer"]["family"], "ipv6");
  EXPECT_EQ(connecting["backend_socket"],
            (json{{"present", false}, {"reason", "connecting"}, {"unread_bytes", 0}}));
  EXPECT_EQ(connecting["proxy_header"]["pending"], 28);
  EXPECT_EQ(connecting["proxy_header"]["base64"], "");

  const json& closed = doc["pairs"][2];
  EXPECT_EQ(closed["client"],
            (json{{"present", false}, {"reason", "closed"}, {"unread_bytes", 15}}));
  EXPECT_EQ(closed["flags"]["value"], 0x13);
  EXPECT_EQ(closed["flags"]["names"], (json{"client_finished", "backend_finished", "degraded"}));
  EXPECT_EQ(closed["backend_socket"]["state"], "LAST_ACK");
  EXPECT_EQ(closed["backend_socket"]["fin_sent"], true);
  EXPECT_EQ(closed["backend_socket"]["fin_received"], true);
  EXPECT_EQ(closed["backend_socket"]["send"]["fin_unsent"], true);
  EXPECT_EQ(closed["backend_socket"]["local"]["family"], "ipv4-mapped");
  EXPECT_EQ(closed["created_at"], "1969-12-31T23:59:59.999Z");

  const json& fins = doc["pairs"][3];
  EXPECT_EQ(fins["client"]["state"], "FIN_WAIT1");
  EXPECT_EQ(fins["client"]["fin_received"], false);
  EXPECT_EQ(fins["backend_socket"]["state"], "CLOSE_WAIT");
  EXPECT_TRUE(fins["created_at"].is_null());
  EXPECT_EQ(fins["created_at_unix_ms"], INT64_MAX);

  const json& reset = doc["pairs"][4];
  // Not UTF-8: the invalid byte becomes U+FFFD and the document stays valid.
  EXPECT_EQ(reset["service"], "odd\n\xef\xbf\xbd");
  EXPECT_EQ(reset["flags"]["names"], (json{"backend_reset", "abort", "0x200"}));
  EXPECT_EQ(reset["backend_socket"]["reason"], "reset");

  EXPECT_EQ(doc["summary"]["pairs"], 5);
  EXPECT_EQ(doc["summary"]["client_sockets"], 4);
  EXPECT_EQ(doc["summary"]["backend_sockets"], 3);
  EXPECT_EQ(doc["summary"]["queued_bytes"], kSampleQueued);
  EXPECT_EQ(doc["summary"]["file_bytes"], repair::testing::read_file(path_).size());
}

TEST_F(ProxyHandoffInspect, JsonPayloadOnlyWhenAsked) {
  const std::string hidden = render(path_, true);
  EXPECT_EQ(hidden.find("base64\": \"U0VDUkVU"), std::string::npos);
  EXPECT_EQ(hidden.find("data_base64"), std::string::npos);
  EXPECT_EQ(hidden.find("unread_base64"), std::string::npos);

  const json doc = render_json(/*payload=*/true);
  const json& both = doc["pairs"][0];
  EXPECT_EQ(both["client"]["send"]["data_base64"], "U0VDUkVULXRvLWNsaWVudA==");
  EXPECT_EQ(both["client"]["receive"]["data_base64"], "Zm9vYmFy");
  EXPECT_EQ(both["backend_socket"]["send"]["data_base64"], "U0VDUkVULXRvLWJhY2tlbmQ=");
  EXPECT_EQ(both["backend_socket"]["receive"]["data_base64"], "");
  EXPECT_EQ(doc["pairs"][2]["client"]["unread_base64"], "b3dlZC10by1iYWNrZW5k");
}

TEST_F(ProxyHandoffInspect, EmptyFileHasNoPairs) {
  TempDir other;
  const std::string path =
      repair::testing::write_handoff(other.path(), repair::testing::sample_header(), {});
  ASSERT_FALSE(path.empty());
  const std::string text = render(path, false);
  expect_has(text, "\nsummary: 0 pairs (0 client, 0 backend sockets), 0 queued bytes, ");
  EXPECT_EQ(text.find("\npair "), std::string::npos);
  const json doc = json::parse(render(path, true), nullptr, false);
  ASSERT_FALSE(doc.is_discarded());
  EXPECT_EQ(doc["pairs"], json::array());
  EXPECT_EQ(doc["summary"]["pairs"], 0);
}

TEST_F(ProxyHandoffInspect, GoldenFilesRender) {
  const std::string established = kGoldenDir + "/v1.0/established.bin";
  expect_has(render(established, false), "\npair 1\n  service       pg\n");
  const std::string half_closed = kGoldenDir + "/v1.0/half_closed.bin";
  const std::string text = render(half_closed, false, true);
  expect_has(text, "\npair 3\n  service       web-v6\n");
  expect_has(text, "  backend leg   absent: connecting (SYN_SENT)");
  expect_has(text,
             "  client leg    absent: closed in order, 21 unread bytes owed to the "
             "backend\n");
  expect_has(text, "summary: 3 pairs (2 client, 2 backend sockets)");
  const json doc = json::parse(render(half_closed, true, true), nullptr, false);
  ASSERT_FALSE(doc.is_discarded());
  EXPECT_EQ(doc["header"]["writer_version"], "0.1.0");
  EXPECT_EQ(doc["pairs"][1]["proxy_header"]["pending"], 52);
  EXPECT_EQ(doc["pairs"][2]["client"]["unread_base64"], "bGFzdCB3b3JkcyBiZWZvcmUgRklO");
}

TEST_F(ProxyHandoffInspect, EveryFlippedByteIsRefusedBeforeAnythingIsPrinted) {
  const std::string good = repair::testing::read_file(path_);
  const std::string bad = dir_ / "bad.bin";
  for (size_t at = 0; at < good.size(); ++at) {
    std::string bytes = good;
    bytes[at] = static_cast<char>(bytes[at] ^ 0x20);
    repair::testing::write_file(bad, bytes);
    for (const bool as_json : {false, true}) {
      const std::string got = render(bad, as_json);  // also checks nothing was printed
      EXPECT_TRUE(got.starts_with("ERROR: handoff file " + bad + ": ")) << at << ": " << got;
    }
  }
}

TEST_F(ProxyHandoffInspect, EveryTruncationIsRefused) {
  const std::string good = repair::testing::read_file(path_);
  const std::string cut = dir_ / "cut.bin";
  for (size_t size = 0; size < good.size(); ++size) {
    repair::testing::write_file(cut, std::string_view(good).substr(0, size));
    const std::string got = render(cut, false);
    EXPECT_TRUE(got.starts_with("ERROR: handoff file " + cut + ": ")) << size << ": " << got;
  }
  repair::testing::write_file(cut, std::string_view(good).substr(0, good.size() - 3));
  expect_has(render(cut, false), "truncated");
}

TEST_F(ProxyHandoffInspect, NewerMajorIsRefused) {
  std::string bytes = repair::testing::read_file(path_);
  const repair::handoff::Preamble preamble = repair::handoff::encode_preamble(2, 0);
  bytes.replace(0, preamble.size(), reinterpret_cast<const char*>(preamble.data()),
                preamble.size());
  const std::string newer = dir_ / "newer.bin";
  repair::testing::write_file(newer, bytes);
  EXPECT_EQ(render(newer, false),
            "ERROR: handoff file " + newer + ": format 2.0 is newer than this binary reads (1.x)");
}

TEST_F(ProxyHandoffInspect, MissingFileAndDirectoryAreRefused) {
  const std::string missing = dir_ / "missing.bin";
  EXPECT_EQ(render(missing, false),
            "ERROR: handoff file " + missing + ": open: No such file or directory");
  EXPECT_EQ(render(dir_.path(), true),
            "ERROR: handoff file " + dir_.path() + ": not a regular file");
}

}  // namespace
}  // namespace seamless::proxy
