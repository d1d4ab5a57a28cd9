#include "repair/tcp_packet.h"

#include <netinet/in.h>

#include <cstring>

namespace seamless::repair {
namespace {

constexpr size_t kTcpHeaderLen = 20;
constexpr size_t kIpv4HeaderLen = 20;
constexpr size_t kIpv6HeaderLen = 40;

void put16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v >> 8);
  p[1] = static_cast<uint8_t>(v);
}

void put32(uint8_t* p, uint32_t v) {
  put16(p, static_cast<uint16_t>(v >> 16));
  put16(p + 2, static_cast<uint16_t>(v));
}

uint32_t partial_sum(const uint8_t* data, size_t len, uint32_t sum) {
  for (size_t i = 0; i + 1 < len; i += 2) sum += static_cast<uint32_t>(data[i] << 8 | data[i + 1]);
  if (len % 2) sum += static_cast<uint32_t>(data[len - 1] << 8);
  return sum;
}

void write_tcp_header(const TcpSegment& s, uint8_t* tcp) {
  put16(tcp, s.source.port);
  put16(tcp + 2, s.destination.port);
  put32(tcp + 4, s.seq);
  put32(tcp + 8, s.ack);
  tcp[12] = (kTcpHeaderLen / 4) << 4;
  tcp[13] = s.flags;
  put16(tcp + 14, s.window);
  // checksum (16) and urgent pointer (18) stay zero until the checksum is computed
}

std::vector<uint8_t> build_v4(const TcpSegment& s) {
  std::vector<uint8_t> packet(kIpv4HeaderLen + kTcpHeaderLen, 0);
  uint8_t* ip = packet.data();
  ip[0] = 0x45;
  put16(ip + 2, static_cast<uint16_t>(packet.size()));
  put16(ip + 6, 0x4000);  // don't fragment
  ip[8] = 64;
  ip[9] = IPPROTO_TCP;
  const auto src = s.source.v4_bytes();
  const auto dst = s.destination.v4_bytes();
  std::memcpy(ip + 12, src.data(), 4);
  std::memcpy(ip + 16, dst.data(), 4);
  put16(ip + 10, internet_checksum(ip, kIpv4HeaderLen));

  uint8_t* tcp = ip + kIpv4HeaderLen;
  write_tcp_header(s, tcp);
  uint32_t pseudo = partial_sum(ip + 12, 8, 0) + IPPROTO_TCP + kTcpHeaderLen;
  put16(tcp + 16, internet_checksum(tcp, kTcpHeaderLen, pseudo));
  return packet;
}

std::vector<uint8_t> build_v6(const TcpSegment& s) {
  std::vector<uint8_t> packet(kIpv6HeaderLen + kTcpHeaderLen, 0);
  uint8_t* ip = packet.data();
  ip[0] = 0x60;
  put16(ip + 4, kTcpHeaderLen);
  ip[6] = IPPROTO_TCP;
  ip[7] = 64;
  std::memcpy(ip + 8, s.source.addr.data(), 16);
  std::memcpy(ip + 24, s.destination.addr.data(), 16);

  uint8_t* tcp = ip + kIpv6HeaderLen;
  write_tcp_header(s, tcp);
  uint32_t pseudo = partial_sum(ip + 8, 32, 0) + IPPROTO_TCP + kTcpHeaderLen;
  put16(tcp + 16, internet_checksum(tcp, kTcpHeaderLen, pseudo));
  return packet;
}

}  // namespace

uint16_t internet_checksum(const uint8_t* data, size_t len, uint32_t initial) {
  uint32_t sum = partial_sum(data, len, initial);
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(~sum);
}

std::vector<uint8_t> build_packet(const TcpSegment& segment) {
  return segment.source.wire_family() == AF_INET ? build_v4(segment) : build_v6(segment);
}

}  // namespace seamless::repair
