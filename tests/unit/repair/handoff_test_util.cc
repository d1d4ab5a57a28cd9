#include "tests/unit/repair/handoff_test_util.h"

#include <netinet/in.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>

namespace seamless::repair::testing {

TempDir::TempDir() {
  char tmpl[] = "/tmp/handoff-test.XXXXXX";
  const char* made = ::mkdtemp(tmpl);
  path_ = made ? made : "";
}

TempDir::~TempDir() {
  if (path_.empty()) return;
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

Endpoint v4(uint8_t a, uint8_t b, uint8_t c, uint8_t d, uint16_t port) {
  Endpoint e;
  e.family = AF_INET;
  e.addr[0] = a;
  e.addr[1] = b;
  e.addr[2] = c;
  e.addr[3] = d;
  e.port = port;
  return e;
}

Endpoint v6(uint16_t last, uint16_t port, uint32_t scope_id) {
  Endpoint e;
  e.family = AF_INET6;
  e.addr = {0x20, 0x01, 0x0d, 0xb8};
  e.addr[14] = static_cast<uint8_t>(last >> 8);
  e.addr[15] = static_cast<uint8_t>(last);
  e.port = port;
  e.scope_id = scope_id;
  return e;
}

Endpoint v4_mapped(uint8_t a, uint8_t b, uint8_t c, uint8_t d, uint16_t port) {
  Endpoint e;
  e.family = AF_INET6;
  e.addr[10] = 0xff;
  e.addr[11] = 0xff;
  e.addr[12] = a;
  e.addr[13] = b;
  e.addr[14] = c;
  e.addr[15] = d;
  e.port = port;
  return e;
}

std::string pattern(size_t size, uint32_t seed) {
  std::string out(size, '\0');
  uint32_t x = seed * 2654435761u + 1;
  for (char& c : out) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    c = static_cast<char>(x);
  }
  return out;
}

SocketImage full_image(Endpoint local, Endpoint peer, uint32_t seed) {
  SocketImage image;
  image.local = local;
  image.peer = peer;
  image.state = TcpState::kEstablished;
  image.send_seq = 0xfffff000u + seed;  // near the wrap on purpose
  image.send_unsent = 0;
  image.fin_unsent = true;
  image.recv_seq = 0x12345678u + seed;
  image.tcp = {1448 - seed, true, true, true, 7, 9, 0xdeadbeefu + seed};
  image.window = {11 + seed, 65535u << 2, 0x7fffffffu, 200000 + seed, 0xabcdef01u};
  image.options = {true, true, 131072, true, 60, 10, 5, true, 0x5ea1 + seed};
  return image;
}

PairRecord full_record(uint64_t id, size_t queue_size) {
  PairRecord r;
  r.id = id;
  r.service = "pg-" + std::to_string(id % 7);
  r.backend = "198.18.1.2:7001";
  r.client = full_image(v4(198, 18, 0, 1, 5433), v4(198, 18, 0, 9, 41000), 1);
  r.client->send_queue = pattern(queue_size, static_cast<uint32_t>(id));
  r.client->send_unsent = static_cast<uint32_t>(queue_size / 3);
  r.client->recv_queue = pattern(queue_size + 1, static_cast<uint32_t>(id + 1));
  r.backend_socket = full_image(v6(2, 40001, 3), v6(0x1d, 7001, 3), 2);
  r.backend_socket->state = TcpState::kFinWait1;
  r.backend_socket->send_queue = pattern(queue_size / 2, static_cast<uint32_t>(id + 2));
  r.backend_socket->recv_queue = pattern(queue_size / 4, static_cast<uint32_t>(id + 3));
  r.client_unread = "x";
  r.backend_unread = "yz";
  r.flags = kClientFinished | kDegraded | (1u << 30);  // an unknown bit survives too
  r.proxy_header = "PROXY TCP4 198.18.0.9 198.18.0.1 41000 5433\r\n";
  r.header_len = static_cast<uint32_t>(r.proxy_header.size());
  r.header_pending = 7;
  r.client_off_w = -5;
  r.client_off_r = -(int64_t{1} << 40);
  r.backend_off_w = 1;
  r.backend_off_r = int64_t{1} << 50;
  r.bytes_client_to_backend = uint64_t{1} << 63;
  r.bytes_backend_to_client = 12345;
  r.created_at_unix_ms = 1700000000123 + static_cast<int64_t>(id);
  return r;
}

HandoffHeader sample_header() {
  HandoffHeader h;
  h.writer_version = "0.1.0-test";
  h.config_digest = "sha256:0123456789abcdef";
  h.created_at_unix_ms = 1700000000000;
  h.counters = {{"seamless_connections_total{service=\"pg\"}", 42},
                {"seamless_restart_generation", 3},
                {"zero", 0}};
  return h;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void write_file(const std::string& path, std::string_view bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::string write_handoff(const std::string& dir, const HandoffHeader& header,
                          const std::vector<PairRecord>& records) {
  Result<HandoffWriter> writer = HandoffWriter::create(dir, header);
  if (!writer.ok()) return "";
  for (const PairRecord& r : records) {
    if (!writer->append(r).ok()) return "";
  }
  Result<std::string> path = writer->commit();
  return path.ok() ? *path : "";
}

namespace {
ReadAll drain(Result<HandoffReader> reader) {
  ReadAll out;
  if (!reader.ok()) {
    out.error = reader.error().message;
    return out;
  }
  out.header = reader->header();
  out.format = reader->format();
  for (;;) {
    Result<std::optional<PairRecord>> record = reader->next();
    if (!record.ok()) {
      out.error = record.error().message;
      return out;
    }
    if (!*record) break;
    out.records.push_back(std::move(**record));
  }
  out.ok = true;
  return out;
}
}  // namespace

ReadAll read_all(std::string_view bytes) { return drain(HandoffReader::from_bytes(bytes, "mem")); }
ReadAll read_all_file(const std::string& path) { return drain(HandoffReader::open(path)); }

std::string varint(uint64_t value) {
  std::string out;
  while (value >= 0x80) {
    out.push_back(static_cast<char>((value & 0x7f) | 0x80));
    value >>= 7;
  }
  out.push_back(static_cast<char>(value));
  return out;
}

std::string field_varint(uint32_t field, uint64_t value) {
  return varint(uint64_t{field} << 3) + varint(value);
}

std::string field_bytes(uint32_t field, std::string_view bytes) {
  return varint((uint64_t{field} << 3) | 2) + varint(bytes.size()) + std::string(bytes);
}

}  // namespace seamless::repair::testing
