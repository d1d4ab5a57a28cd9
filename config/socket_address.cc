#include "config/socket_address.h"

#include <arpa/inet.h>

#include <algorithm>
#include <charconv>

#include "config/quote.h"

namespace seamless::config {
namespace {

constexpr std::array<uint8_t, 12> kV4MappedPrefix = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

Error invalid_address(std::string_view text, std::string_view why) {
  return Error::logic("invalid address " + quote(text) + " (" + std::string(why) + ")");
}

Result<uint16_t> parse_port(std::string_view digits) {
  const auto invalid = [&] {
    return Error::logic("invalid port " + quote(digits) + " (expected 1-65535)");
  };
  // from_chars alone would accept a prefix ("80x"); leading zeros ("080") look octal.
  if (digits.empty() || digits.size() > 5 || digits[0] == '0' ||
      !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return invalid();
  }
  unsigned value = 0;
  std::from_chars(digits.data(), digits.data() + digits.size(), value);
  if (value < 1 || value > 65535) return invalid();
  return static_cast<uint16_t>(value);
}

// inet_pton wants a NUL-terminated string, and must see exactly `host`.
bool parse_host(int family, std::string_view host, std::array<uint8_t, 16>& bytes) {
  const std::string terminated(host);
  if (terminated.find('\0') != std::string::npos) return false;
  return inet_pton(family, terminated.c_str(), bytes.data()) == 1;
}

}  // namespace

bool SocketAddress::is_wildcard() const {
  const std::size_t length = family == AF_INET ? 4 : 16;
  return std::all_of(bytes.begin(), bytes.begin() + length, [](uint8_t b) { return b == 0; });
}

bool SocketAddress::is_v4_mapped() const {
  return family == AF_INET6 &&
         std::equal(kV4MappedPrefix.begin(), kV4MappedPrefix.end(), bytes.begin());
}

std::string SocketAddress::to_string() const {
  char host[INET6_ADDRSTRLEN] = {};
  inet_ntop(family, bytes.data(), host, sizeof(host));
  const std::string port_text = std::to_string(port);
  if (family == AF_INET6) return "[" + std::string(host) + "]:" + port_text;
  return std::string(host) + ":" + port_text;
}

Result<SocketAddress> SocketAddress::parse(std::string_view text) {
  const std::size_t colon = text.rfind(':');
  if (colon == std::string_view::npos) return invalid_address(text, "missing \":port\"");
  const std::string_view host = text.substr(0, colon);
  const std::string_view port_text = text.substr(colon + 1);

  SocketAddress address;
  if (host.starts_with('[')) {
    if (!host.ends_with(']')) return invalid_address(text, "unbalanced '['");
    address.family = AF_INET6;
    if (!parse_host(AF_INET6, host.substr(1, host.size() - 2), address.bytes)) {
      return invalid_address(text, "not a numeric IPv6 address");
    }
  } else if (host.find(':') != std::string_view::npos) {
    return invalid_address(text, "an IPv6 address needs brackets: \"[::1]:80\"");
  } else if (!parse_host(AF_INET, host, address.bytes)) {
    return invalid_address(text,
                           "expected \"1.2.3.4:80\" or \"[::1]:80\"; host names are not resolved");
  }

  Result<uint16_t> port = parse_port(port_text);
  if (!port) return port.error();
  address.port = *port;
  return address;
}

namespace {

// The IPv4 address a listener on `a` would take, if any: its own, or the one it maps.
bool v4_view(const SocketAddress& a, std::array<uint8_t, 4>& out) {
  if (a.family == AF_INET) {
    std::copy_n(a.bytes.begin(), 4, out.begin());
    return true;
  }
  if (a.is_v4_mapped()) {
    std::copy_n(a.bytes.begin() + 12, 4, out.begin());
    return true;
  }
  return false;
}

bool is_v6_wildcard(const SocketAddress& a) { return a.family == AF_INET6 && a.is_wildcard(); }

// A listener covers the IPv4 side if it is IPv4 (or mapped), or a dual-stack [::].
bool covers_all_v4(const SocketAddress& a, bool v6only) {
  std::array<uint8_t, 4> v4{};
  if (v4_view(a, v4)) return v4 == std::array<uint8_t, 4>{};
  return is_v6_wildcard(a) && !v6only;
}

}  // namespace

bool listeners_overlap(const SocketAddress& a, bool a_v6only, const SocketAddress& b,
                       bool b_v6only) {
  if (a.port != b.port) return false;

  std::array<uint8_t, 4> a_v4{}, b_v4{};
  const bool a_has_v4 = v4_view(a, a_v4) || covers_all_v4(a, a_v6only);
  const bool b_has_v4 = v4_view(b, b_v4) || covers_all_v4(b, b_v6only);
  if (a_has_v4 && b_has_v4 &&
      (covers_all_v4(a, a_v6only) || covers_all_v4(b, b_v6only) || a_v4 == b_v4)) {
    return true;
  }

  // The IPv6 side: only true IPv6 addresses (not mapped ones) take IPv6 connections.
  const bool a_has_v6 = a.family == AF_INET6 && !a.is_v4_mapped();
  const bool b_has_v6 = b.family == AF_INET6 && !b.is_v4_mapped();
  return a_has_v6 && b_has_v6 && (is_v6_wildcard(a) || is_v6_wildcard(b) || a.bytes == b.bytes);
}

}  // namespace seamless::config
