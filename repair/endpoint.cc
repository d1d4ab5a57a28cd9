#include "repair/endpoint.h"

#include <arpa/inet.h>

#include <cstring>

namespace seamless::repair {
namespace {

constexpr std::array<uint8_t, 12> kV4MappedPrefix = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

Result<uint16_t> parse_port(const std::string& text) {
  if (text.empty() || text.size() > 5) return Error::logic("invalid port \"" + text + "\"");
  unsigned value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return Error::logic("invalid port \"" + text + "\"");
    value = value * 10 + static_cast<unsigned>(c - '0');
  }
  if (value == 0 || value > 65535) return Error::logic("invalid port \"" + text + "\"");
  return static_cast<uint16_t>(value);
}

}  // namespace

bool Endpoint::is_v4_mapped() const {
  return family == AF_INET6 && std::memcmp(addr.data(), kV4MappedPrefix.data(), 12) == 0;
}

std::array<uint8_t, 4> Endpoint::v4_bytes() const {
  const size_t offset = family == AF_INET ? 0 : 12;
  return {addr[offset], addr[offset + 1], addr[offset + 2], addr[offset + 3]};
}

sockaddr_storage Endpoint::to_sockaddr(socklen_t* len) const {
  sockaddr_storage storage{};
  if (family == AF_INET) {
    auto* sin = reinterpret_cast<sockaddr_in*>(&storage);
    sin->sin_family = AF_INET;
    sin->sin_port = htons(port);
    std::memcpy(&sin->sin_addr, addr.data(), 4);
    *len = sizeof(sockaddr_in);
  } else {
    auto* sin6 = reinterpret_cast<sockaddr_in6*>(&storage);
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons(port);
    sin6->sin6_scope_id = scope_id;
    std::memcpy(&sin6->sin6_addr, addr.data(), 16);
    *len = sizeof(sockaddr_in6);
  }
  return storage;
}

Result<Endpoint> Endpoint::from_sockaddr(const sockaddr* sa, socklen_t len) {
  Endpoint ep;
  if (sa->sa_family == AF_INET && len >= static_cast<socklen_t>(sizeof(sockaddr_in))) {
    const auto* sin = reinterpret_cast<const sockaddr_in*>(sa);
    ep.family = AF_INET;
    ep.port = ntohs(sin->sin_port);
    std::memcpy(ep.addr.data(), &sin->sin_addr, 4);
    return ep;
  }
  if (sa->sa_family == AF_INET6 && len >= static_cast<socklen_t>(sizeof(sockaddr_in6))) {
    const auto* sin6 = reinterpret_cast<const sockaddr_in6*>(sa);
    ep.family = AF_INET6;
    ep.port = ntohs(sin6->sin6_port);
    ep.scope_id = sin6->sin6_scope_id;
    std::memcpy(ep.addr.data(), &sin6->sin6_addr, 16);
    return ep;
  }
  return Error::logic("unsupported address family " + std::to_string(sa->sa_family));
}

Result<Endpoint> Endpoint::parse(const std::string& text) {
  Endpoint ep;
  std::string host, port;
  if (!text.empty() && text.front() == '[') {
    const auto close = text.find("]:");
    if (close == std::string::npos) return Error::logic("invalid address \"" + text + "\"");
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
    ep.family = AF_INET6;
  } else {
    const auto colon = text.rfind(':');
    if (colon == std::string::npos) return Error::logic("invalid address \"" + text + "\"");
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
    ep.family = AF_INET;
  }
  if (inet_pton(ep.family, host.c_str(), ep.addr.data()) != 1) {
    return Error::logic("invalid address \"" + text + "\"");
  }
  auto parsed_port = parse_port(port);
  if (!parsed_port) return parsed_port.error();
  ep.port = *parsed_port;
  return ep;
}

std::string Endpoint::to_string() const {
  char text[INET6_ADDRSTRLEN] = {};
  inet_ntop(family, addr.data(), text, sizeof(text));
  if (family == AF_INET) return std::string(text) + ":" + std::to_string(port);
  return "[" + std::string(text) + "]:" + std::to_string(port);
}

}  // namespace seamless::repair
