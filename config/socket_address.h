// SocketAddress: an IP address and port as written in the config ("1.2.3.4:80",
// "[::1]:80"). A plain value; config/ stays free of sockets, so turning it into a
// sockaddr is the caller's job (the bytes and the family are all it needs).
#pragma once

#include <sys/socket.h>

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "base/result.h"

namespace seamless::config {

struct SocketAddress {
  int family = AF_INET;             // AF_INET or AF_INET6
  std::array<uint8_t, 16> bytes{};  // network order; the first 4 bytes for AF_INET
  uint16_t port = 0;                // host order, 1-65535 once parsed

  bool operator==(const SocketAddress&) const = default;

  // 0.0.0.0 or [::]: the listener takes every local address of its family.
  bool is_wildcard() const;
  // ::ffff:a.b.c.d, an IPv4 address spelled as IPv6.
  bool is_v4_mapped() const;

  // "1.2.3.4:80" or "[2001:db8::1]:80" (RFC 5952 form); parse(to_string()) == *this.
  std::string to_string() const;

  // Strict: a numeric IPv4 address or a bracketed IPv6 address (inet_pton), a colon
  // and a decimal port 1-65535. Host names are not resolved, scope ids not accepted.
  static Result<SocketAddress> parse(std::string_view text);
};

// Whether two listeners on these addresses would fight over the same connections,
// so that the second bind() fails (Linux refuses a wildcard and a specific address
// on one port even with SO_REUSEADDR). `v6only` only matters for the IPv6 wildcard:
// a dual-stack [::]:P also takes every IPv4 address on P.
bool listeners_overlap(const SocketAddress& a, bool a_v6only, const SocketAddress& b,
                       bool b_v6only);

}  // namespace seamless::config
