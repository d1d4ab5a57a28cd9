// Endpoint: an IP address and port as a plain value, convertible to and from
// sockaddr. IPv4-mapped IPv6 addresses (::ffff:a.b.c.d, from dual-stack listeners)
// stay IPv6 here, since that is the socket's family; is_v4_mapped() tells them apart
// for code (the flow lock, FIN injection) whose packets are IPv4.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <array>
#include <cstdint>
#include <string>

#include "base/result.h"

namespace seamless::repair {

struct Endpoint {
  int family = AF_INET;                // AF_INET or AF_INET6
  std::array<uint8_t, 16> addr{};      // network order; first 4 bytes for AF_INET
  uint16_t port = 0;                   // host order
  uint32_t scope_id = 0;               // IPv6 link-local scope

  bool operator==(const Endpoint&) const = default;
  auto operator<=>(const Endpoint&) const = default;  // any total order, for sorting

  bool is_v4_mapped() const;
  // The address as packets carry it: IPv4 for AF_INET and for mapped IPv6.
  int wire_family() const { return family == AF_INET || is_v4_mapped() ? AF_INET : AF_INET6; }
  // The 4 IPv4 bytes of an AF_INET or mapped address.
  std::array<uint8_t, 4> v4_bytes() const;

  sockaddr_storage to_sockaddr(socklen_t* len) const;
  static Result<Endpoint> from_sockaddr(const sockaddr* sa, socklen_t len);
  // "198.18.0.1:80", "[2001:db8::1]:80"; the inverse of to_string.
  static Result<Endpoint> parse(const std::string& text);
  std::string to_string() const;
};

}  // namespace seamless::repair
