#include "config/socket_address.h"

#include <gtest/gtest.h>

namespace seamless::config {
namespace {

SocketAddress parsed(std::string_view text) {
  Result<SocketAddress> address = SocketAddress::parse(text);
  EXPECT_TRUE(address.ok()) << text << ": " << (address.ok() ? "" : address.error().message);
  return address.ok() ? *address : SocketAddress{};
}

std::string parse_error(std::string_view text) {
  Result<SocketAddress> address = SocketAddress::parse(text);
  EXPECT_FALSE(address.ok()) << text;
  return address.ok() ? "" : address.error().message;
}

TEST(config_SocketAddress, ParsesIpv4) {
  const SocketAddress address = parsed("198.18.0.1:80");
  EXPECT_EQ(address.family, AF_INET);
  EXPECT_EQ(address.bytes[0], 198);
  EXPECT_EQ(address.bytes[1], 18);
  EXPECT_EQ(address.bytes[2], 0);
  EXPECT_EQ(address.bytes[3], 1);
  EXPECT_EQ(address.port, 80);
  EXPECT_FALSE(address.is_wildcard());
  EXPECT_TRUE(parsed("0.0.0.0:1").is_wildcard());
  EXPECT_EQ(parsed("1.2.3.4:65535").port, 65535);
}

TEST(config_SocketAddress, ParsesIpv6) {
  const SocketAddress address = parsed("[2001:db8::1]:443");
  EXPECT_EQ(address.family, AF_INET6);
  EXPECT_EQ(address.bytes[0], 0x20);
  EXPECT_EQ(address.bytes[1], 0x01);
  EXPECT_EQ(address.bytes[15], 0x01);
  EXPECT_EQ(address.port, 443);
  EXPECT_TRUE(parsed("[::]:80").is_wildcard());
  EXPECT_FALSE(parsed("[::1]:80").is_wildcard());
  EXPECT_TRUE(parsed("[::ffff:1.2.3.4]:80").is_v4_mapped());
  EXPECT_FALSE(parsed("1.2.3.4:80").is_v4_mapped());
}

TEST(config_SocketAddress, ToStringIsCanonicalAndRoundTrips) {
  EXPECT_EQ(parsed("1.2.3.4:80").to_string(), "1.2.3.4:80");
  EXPECT_EQ(parsed("[::]:80").to_string(), "[::]:80");
  EXPECT_EQ(parsed("[2001:DB8:0:0:0:0:0:1]:80").to_string(), "[2001:db8::1]:80");
  EXPECT_EQ(parsed("[::ffff:1.2.3.4]:80").to_string(), "[::ffff:1.2.3.4]:80");
  for (const char* text : {"127.0.0.1:7000", "[::1]:9100", "[fe80::1:2]:1", "0.0.0.0:65535"}) {
    EXPECT_EQ(parsed(parsed(text).to_string()), parsed(text)) << text;
  }
}

TEST(config_SocketAddress, RejectsBadPorts) {
  EXPECT_EQ(parse_error("1.2.3.4:99999"), "invalid port \"99999\" (expected 1-65535)");
  EXPECT_EQ(parse_error("1.2.3.4:0"), "invalid port \"0\" (expected 1-65535)");
  EXPECT_EQ(parse_error("1.2.3.4:"), "invalid port \"\" (expected 1-65535)");
  EXPECT_EQ(parse_error("1.2.3.4:-1"), "invalid port \"-1\" (expected 1-65535)");
  EXPECT_EQ(parse_error("1.2.3.4:+80"), "invalid port \"+80\" (expected 1-65535)");
  EXPECT_EQ(parse_error("1.2.3.4:80x"), "invalid port \"80x\" (expected 1-65535)");
  EXPECT_EQ(parse_error("1.2.3.4:080"), "invalid port \"080\" (expected 1-65535)");
  EXPECT_EQ(parse_error("[::1]:65536"), "invalid port \"65536\" (expected 1-65535)");
}

TEST(config_SocketAddress, RejectsBadHosts) {
  const std::string v4_hint =
      " (expected \"1.2.3.4:80\" or \"[::1]:80\"; host names are not resolved)";
  EXPECT_EQ(parse_error("localhost:80"), "invalid address \"localhost:80\"" + v4_hint);
  EXPECT_EQ(parse_error("1.2.3:80"), "invalid address \"1.2.3:80\"" + v4_hint);
  EXPECT_EQ(parse_error("01.2.3.4:80"), "invalid address \"01.2.3.4:80\"" + v4_hint);
  EXPECT_EQ(parse_error("256.1.1.1:80"), "invalid address \"256.1.1.1:80\"" + v4_hint);
  EXPECT_EQ(parse_error(" 1.2.3.4:80"), "invalid address \" 1.2.3.4:80\"" + v4_hint);
  EXPECT_EQ(parse_error(":80"), "invalid address \":80\"" + v4_hint);
  EXPECT_EQ(parse_error("1.2.3.4"), "invalid address \"1.2.3.4\" (missing \":port\")");
  EXPECT_EQ(parse_error("::1:80"),
            "invalid address \"::1:80\" (an IPv6 address needs brackets: \"[::1]:80\")");
  EXPECT_EQ(parse_error("[::1:80"), "invalid address \"[::1:80\" (unbalanced '[')");
  EXPECT_EQ(parse_error("[1.2.3.4]:80"),
            "invalid address \"[1.2.3.4]:80\" (not a numeric IPv6 address)");
  EXPECT_EQ(parse_error("[fe80::1%eth0]:80"),
            "invalid address \"[fe80::1%eth0]:80\" (not a numeric IPv6 address)");
  EXPECT_EQ(parse_error(std::string_view("1.2.3.4\0:80", 11)),
            "invalid address \"1.2.3.4\\x00:80\"" + v4_hint);
}

SocketAddress a(std::string_view text) { return parsed(text); }

TEST(config_ListenersOverlap, SamePortOnly) {
  EXPECT_FALSE(listeners_overlap(a("0.0.0.0:80"), false, a("0.0.0.0:81"), false));
  EXPECT_TRUE(listeners_overlap(a("1.2.3.4:80"), false, a("1.2.3.4:80"), false));
  EXPECT_FALSE(listeners_overlap(a("1.2.3.4:80"), false, a("1.2.3.5:80"), false));
}

TEST(config_ListenersOverlap, WildcardTakesItsFamily) {
  EXPECT_TRUE(listeners_overlap(a("0.0.0.0:80"), false, a("127.0.0.1:80"), false));
  EXPECT_TRUE(listeners_overlap(a("[::]:80"), true, a("[::1]:80"), false));
  EXPECT_FALSE(listeners_overlap(a("0.0.0.0:80"), false, a("[::1]:80"), false));
  EXPECT_FALSE(listeners_overlap(a("127.0.0.1:80"), false, a("[::1]:80"), false));
}

TEST(config_ListenersOverlap, DualStackWildcardTakesIpv4Too) {
  EXPECT_TRUE(listeners_overlap(a("[::]:80"), false, a("0.0.0.0:80"), false));
  EXPECT_TRUE(listeners_overlap(a("127.0.0.1:80"), false, a("[::]:80"), false));
  EXPECT_TRUE(listeners_overlap(a("[::]:80"), false, a("[::ffff:1.2.3.4]:80"), false));
  EXPECT_FALSE(listeners_overlap(a("[::]:80"), true, a("0.0.0.0:80"), false));
  EXPECT_FALSE(listeners_overlap(a("0.0.0.0:80"), false, a("[::]:80"), true));
}

TEST(config_ListenersOverlap, MappedAddressIsItsIpv4Address) {
  EXPECT_TRUE(listeners_overlap(a("[::ffff:1.2.3.4]:80"), false, a("1.2.3.4:80"), false));
  EXPECT_TRUE(listeners_overlap(a("[::ffff:1.2.3.4]:80"), false, a("0.0.0.0:80"), false));
  EXPECT_FALSE(listeners_overlap(a("[::ffff:1.2.3.4]:80"), false, a("[::1]:80"), false));
  EXPECT_FALSE(listeners_overlap(a("[::ffff:1.2.3.4]:80"), false, a("[::]:80"), true));
}

TEST(config_ListenersOverlap, IsSymmetric) {
  const char* addresses[] = {"0.0.0.0:80", "1.2.3.4:80", "[::]:80", "[::1]:80",
                             "[::ffff:1.2.3.4]:80"};
  for (const char* x : addresses) {
    for (const char* y : addresses) {
      for (const bool x_v6only : {false, true}) {
        for (const bool y_v6only : {false, true}) {
          EXPECT_EQ(listeners_overlap(a(x), x_v6only, a(y), y_v6only),
                    listeners_overlap(a(y), y_v6only, a(x), x_v6only))
              << x << " " << y;
        }
      }
    }
  }
}

}  // namespace
}  // namespace seamless::config
