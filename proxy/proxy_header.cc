#include "proxy/proxy_header.h"

#include <arpa/inet.h>

#include <array>
#include <cstdint>
#include <cstring>

namespace seamless::proxy {
namespace {

// The 12-byte v2 signature: "\r\n\r\n\0\r\nQUIT\n".
constexpr std::array<uint8_t, 12> kV2Signature = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                                  0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
constexpr uint8_t kV2VersionProxy = 0x21;  // version 2, command PROXY
constexpr uint8_t kV2Tcp4 = 0x11;          // AF_INET, SOCK_STREAM
constexpr uint8_t kV2Tcp6 = 0x21;          // AF_INET6, SOCK_STREAM

// Both ends as the header should name them: a pair of v4-mapped IPv6 addresses
// becomes the IPv4 pair it stands for.
struct Ends {
  bool v4 = false;
  repair::Endpoint client;
  repair::Endpoint local;
};

repair::Endpoint unmap(const repair::Endpoint& e) {
  repair::Endpoint v4;
  v4.family = AF_INET;
  v4.port = e.port;
  const std::array<uint8_t, 4> bytes = e.v4_bytes();
  std::memcpy(v4.addr.data(), bytes.data(), bytes.size());
  return v4;
}

Ends normalize(const repair::Endpoint& client, const repair::Endpoint& local) {
  if (client.family == AF_INET && local.family == AF_INET) return Ends{true, client, local};
  if (client.wire_family() == AF_INET && local.wire_family() == AF_INET) {
    return Ends{true, unmap(client), unmap(local)};
  }
  return Ends{false, client, local};
}

std::string address_text(const repair::Endpoint& e) {
  char text[INET6_ADDRSTRLEN] = {};
  ::inet_ntop(e.family, e.addr.data(), text, sizeof(text));
  return text;
}

void append_u16(std::string& out, uint16_t value) {
  out.push_back(static_cast<char>(value >> 8));
  out.push_back(static_cast<char>(value & 0xff));
}

void append_bytes(std::string& out, const uint8_t* bytes, size_t n) {
  out.append(reinterpret_cast<const char*>(bytes), n);
}

}  // namespace

std::string proxy_header_v1(const repair::Endpoint& client, const repair::Endpoint& local) {
  const Ends ends = normalize(client, local);
  std::string out = ends.v4 ? "PROXY TCP4 " : "PROXY TCP6 ";
  out += address_text(ends.client) + " " + address_text(ends.local) + " ";
  out += std::to_string(ends.client.port) + " " + std::to_string(ends.local.port) + "\r\n";
  return out;
}

std::string proxy_header_v2(const repair::Endpoint& client, const repair::Endpoint& local) {
  const Ends ends = normalize(client, local);
  const size_t address_bytes = ends.v4 ? 4 : 16;
  std::string out;
  append_bytes(out, kV2Signature.data(), kV2Signature.size());
  out.push_back(static_cast<char>(kV2VersionProxy));
  out.push_back(static_cast<char>(ends.v4 ? kV2Tcp4 : kV2Tcp6));
  append_u16(out, static_cast<uint16_t>(2 * address_bytes + 4));
  append_bytes(out, ends.client.addr.data(), address_bytes);
  append_bytes(out, ends.local.addr.data(), address_bytes);
  append_u16(out, ends.client.port);
  append_u16(out, ends.local.port);
  return out;
}

std::string build_proxy_header(config::ProxyProtocol version, const repair::Endpoint& client,
                               const repair::Endpoint& local) {
  switch (version) {
    case config::ProxyProtocol::kV1:
      return proxy_header_v1(client, local);
    case config::ProxyProtocol::kV2:
      return proxy_header_v2(client, local);
    case config::ProxyProtocol::kOff:
      break;
  }
  return {};
}

}  // namespace seamless::proxy
