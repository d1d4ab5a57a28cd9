// Golden handoff files: every released format stays readable by every later binary.
//
// The values below are FROZEN: tests/golden/handoff/v1.0/*.bin were written from them
// and later binaries must read exactly these values back from those files. Never edit
// them; a new format version adds its own set (see tests/golden/handoff/README.md).
//
// Regenerating (only when adding a new format version, never in normal runs):
//   handoff_file_test --gtest_also_run_disabled_tests
//                     --gtest_filter='HandoffGolden.DISABLED_Generate'
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>

#include "repair/handoff_file.h"
#include "tests/unit/repair/handoff_test_util.h"

namespace seamless::repair {
namespace {

using namespace testing;  // NOLINT

const std::string kGoldenDir = std::string(SEAMLESS_SOURCE_DIR) + "/tests/golden/handoff";
const std::string kCorpusDir = std::string(SEAMLESS_SOURCE_DIR) + "/tests/fuzz/corpus/handoff";

// ---- format 1.0 (frozen) --------------------------------------------------------

HandoffHeader v1_0_header() {
  HandoffHeader h;
  h.writer_version = "0.1.0";
  h.config_digest = "sha256:9f2c4b1e0d7a6c5b4a39281706f5e4d3c2b1a09f8e7d6c5b4a3928170605f4e3";
  h.created_at_unix_ms = 1714000000000;
  h.counters = {{"seamless_bytes_total{service=\"pg\",direction=\"client_to_backend\"}", 123456},
                {"seamless_connections_total{service=\"pg\"}", 77},
                {"seamless_restart_generation", 2}};
  return h;
}

SocketImage v1_0_image(Endpoint local, Endpoint peer, TcpState state) {
  SocketImage image;
  image.local = local;
  image.peer = peer;
  image.state = state;
  image.send_seq = 0x1a2b3c4d;
  image.recv_seq = 0xfffffff0;  // about to wrap
  image.tcp = {1460, true, true, true, 7, 8, 0x00c0ffee};
  image.window = {0xfffffff0, 64240, 65535, 131072, 0x1a2b0000};
  image.options = {true, true, 131072, true, 30, 5, 4, false, 0};
  return image;
}

// A plain ESTABLISHED pair with data in flight both ways and a PROXY header sent.
std::vector<PairRecord> v1_0_established() {
  PairRecord r;
  r.id = 1;
  r.service = "pg";
  r.backend = "198.18.1.2:7001";
  r.client = v1_0_image(v4(198, 18, 0, 1, 5433), v4(198, 18, 0, 10, 41122), TcpState::kEstablished);
  r.client->send_queue = "backend says hello";
  r.client->send_unsent = 5;
  r.client->recv_queue = "SELECT 1;";
  r.backend_socket =
      v1_0_image(v4(198, 18, 1, 1, 40001), v4(198, 18, 1, 2, 7001), TcpState::kEstablished);
  r.backend_socket->send_queue = "client data on its way";
  r.backend_socket->recv_queue = std::string("\0\x01\x02\xff binary", 11);
  r.backend_socket->options.mark = 0x5ea1;
  r.proxy_header = "PROXY TCP4 198.18.0.10 198.18.0.1 41122 5433\r\n";
  r.header_len = static_cast<uint32_t>(r.proxy_header.size());
  r.header_pending = 0;
  r.client_off_w = 0;
  r.client_off_r = 0;
  r.backend_off_w = 1;
  r.backend_off_r = 0;
  r.bytes_client_to_backend = 4096;
  r.bytes_backend_to_client = 1 << 20;
  r.created_at_unix_ms = 1713999990000;
  return {r};
}

// Half-closed legs, a backend still connecting, a closed leg with bytes owed, IPv6.
std::vector<PairRecord> v1_0_half_closed() {
  PairRecord fin;  // client sent EOF (passed on), backend still sending
  fin.id = 2;
  fin.service = "pg";
  fin.backend = "198.18.1.2:7001";
  fin.client = v1_0_image(v4(198, 18, 0, 1, 5433), v4(198, 18, 0, 11, 41200), TcpState::kCloseWait);
  fin.client->send_queue = "tail of the answer";
  fin.backend_socket =
      v1_0_image(v4(198, 18, 1, 1, 40002), v4(198, 18, 1, 2, 7001), TcpState::kFinWait2);
  fin.backend_socket->recv_queue = "more answer";
  fin.flags = kClientFinished;
  fin.backend_off_w = 1;
  fin.bytes_client_to_backend = 10;
  fin.bytes_backend_to_client = 20;
  fin.created_at_unix_ms = 1713999991000;

  PairRecord connecting;  // backend connect in progress; client on IPv6
  connecting.id = 3;
  connecting.service = "web-v6";
  connecting.backend = "[2001:db8:1::2]:8080";
  connecting.client = v1_0_image(v6(1, 443), v6(0xbeef, 50123, 0), TcpState::kEstablished);
  connecting.client->recv_queue = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
  connecting.proxy_header =
      std::string("\r\n\r\n\0\r\nQUIT\n\x21\x21\x00\x24", 16) + std::string(36, '\x7f');
  connecting.header_len = 52;
  connecting.header_pending = 52;
  connecting.created_at_unix_ms = 1713999992000;

  PairRecord closed;  // client gone after an orderly close, bytes still owed
  closed.id = 4;
  closed.service = "dual";
  closed.backend = "198.18.1.3:9000";
  closed.client_unread = "last words before FIN";
  closed.backend_socket = v1_0_image(v4_mapped(198, 18, 1, 1, 40003),
                                     v4_mapped(198, 18, 1, 3, 9000), TcpState::kLastAck);
  closed.backend_socket->fin_unsent = true;
  closed.backend_socket->send_queue = "unsent";
  closed.backend_socket->send_unsent = 6;
  closed.flags = kClientFinished | kBackendFinished | kDegraded;
  closed.client_off_w = -3;
  closed.client_off_r = -(int64_t{1} << 33);
  closed.created_at_unix_ms = 1713999993000;
  return {fin, connecting, closed};
}

struct Golden {
  std::string file;  // relative to kGoldenDir
  HandoffHeader header;
  std::vector<PairRecord> records;
};

std::vector<Golden> goldens() {
  return {{"v1.0/established.bin", v1_0_header(), v1_0_established()},
          {"v1.0/half_closed.bin", v1_0_header(), v1_0_half_closed()}};
}

TEST(HandoffGolden, EveryReleasedFormatIsRead) {
  for (const Golden& golden : goldens()) {
    const ReadAll got = read_all_file(kGoldenDir + "/" + golden.file);
    ASSERT_TRUE(got.ok) << golden.file << ": " << got.error;
    EXPECT_EQ(got.header, golden.header) << golden.file;
    EXPECT_EQ(got.records, golden.records) << golden.file;
  }
}

// The writer writes exactly the golden files of its own version: a change to the
// encoding must be a deliberate new version with its own golden files.
TEST(HandoffGolden, TheCurrentWriterReproducesItsGoldenFiles) {
  const FormatVersion v = current_handoff_format();
  const std::string prefix = "v" + std::to_string(v.major) + "." + std::to_string(v.minor) + "/";
  int compared = 0;
  for (const Golden& golden : goldens()) {
    if (golden.file.rfind(prefix, 0) != 0) continue;
    TempDir tmp;
    const std::string path = write_handoff(tmp.path(), golden.header, golden.records);
    ASSERT_FALSE(path.empty());
    EXPECT_TRUE(read_file(path) == read_file(kGoldenDir + "/" + golden.file)) << golden.file;
    ++compared;
  }
  EXPECT_GT(compared, 0) << "no golden files for the current format " << prefix;
}

TEST(HandoffGolden, DISABLED_Generate) {
  for (const Golden& golden : goldens()) {
    const std::string target = kGoldenDir + "/" + golden.file;
    if (std::filesystem::exists(target)) continue;  // released files are never rewritten
    TempDir tmp;
    const std::string path = write_handoff(tmp.path(), golden.header, golden.records);
    ASSERT_FALSE(path.empty());
    std::filesystem::create_directories(std::filesystem::path(target).parent_path());
    std::filesystem::create_directories(kCorpusDir);
    std::filesystem::copy_file(path, target);
    std::string flat = golden.file;
    std::replace(flat.begin(), flat.end(), '/', '_');
    std::filesystem::copy_file(path, kCorpusDir + "/" + flat,
                               std::filesystem::copy_options::overwrite_existing);
    std::printf("wrote %s\n", target.c_str());
  }
}

}  // namespace
}  // namespace seamless::repair
