// PROXY protocol headers byte for byte, as the spec lays them out
// (https://www.haproxy.org/download/2.8/doc/proxy-protocol.txt, sections 2.1 and 2.2).
#include "proxy/proxy_header.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace seamless::proxy {
namespace {

repair::Endpoint ep(const std::string& text) { return *repair::Endpoint::parse(text); }

std::vector<uint8_t> bytes(const std::string& s) { return {s.begin(), s.end()}; }

const std::vector<uint8_t> kSignature = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                         0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

TEST(ProxyV1, Ipv4) {
  EXPECT_EQ(proxy_header_v1(ep("198.18.0.1:40000"), ep("198.18.0.2:7000")),
            "PROXY TCP4 198.18.0.1 198.18.0.2 40000 7000\r\n");
}

TEST(ProxyV1, Ipv6) {
  EXPECT_EQ(proxy_header_v1(ep("[2001:db8::1]:40000"), ep("[2001:db8::2]:7000")),
            "PROXY TCP6 2001:db8::1 2001:db8::2 40000 7000\r\n");
}

TEST(ProxyV1, MappedIpv4IsNamedAsIpv4) {
  EXPECT_EQ(proxy_header_v1(ep("[::ffff:198.18.0.1]:1"), ep("[::ffff:198.18.0.2]:65535")),
            "PROXY TCP4 198.18.0.1 198.18.0.2 1 65535\r\n");
}

TEST(ProxyV1, LongestHeaderFitsTheLimit) {
  const std::string h = proxy_header_v1(ep("[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535"),
                                        ep("[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535"));
  EXPECT_EQ(h.size(), 104u);  // the spec's worst case is 107 including "UNKNOWN" forms
}

TEST(ProxyV2, Ipv4) {
  std::vector<uint8_t> want = kSignature;
  for (uint8_t b : {0x21, 0x11, 0x00, 0x0C,  // v2 PROXY, TCP over IPv4, 12 bytes follow
                    198, 18, 0, 1,           // source address
                    198, 18, 0, 2,           // destination address
                    0x9C, 0x40,              // source port 40000
                    0x1B, 0x58}) {           // destination port 7000
    want.push_back(b);
  }
  EXPECT_EQ(bytes(proxy_header_v2(ep("198.18.0.1:40000"), ep("198.18.0.2:7000"))), want);
}

TEST(ProxyV2, Ipv6) {
  std::vector<uint8_t> want = kSignature;
  for (uint8_t b : {0x21, 0x21, 0x00, 0x24}) want.push_back(b);  // TCP over IPv6, 36 bytes
  const std::vector<uint8_t> src = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
  std::vector<uint8_t> dst = src;
  dst[15] = 2;
  want.insert(want.end(), src.begin(), src.end());
  want.insert(want.end(), dst.begin(), dst.end());
  for (uint8_t b : {0x9C, 0x40, 0x1B, 0x58}) want.push_back(b);
  const std::string h = proxy_header_v2(ep("[2001:db8::1]:40000"), ep("[2001:db8::2]:7000"));
  EXPECT_EQ(h.size(), 52u);
  EXPECT_EQ(bytes(h), want);
}

TEST(ProxyV2, MappedIpv4IsIpv4) {
  const std::string h =
      proxy_header_v2(ep("[::ffff:198.18.0.1]:40000"), ep("[::ffff:198.18.0.2]:7000"));
  EXPECT_EQ(h, proxy_header_v2(ep("198.18.0.1:40000"), ep("198.18.0.2:7000")));
}

TEST(ProxyHeader, OffIsEmpty) {
  EXPECT_EQ(build_proxy_header(config::ProxyProtocol::kOff, ep("198.18.0.1:1"), ep("198.18.0.2:2")),
            "");
  EXPECT_EQ(build_proxy_header(config::ProxyProtocol::kV1, ep("198.18.0.1:1"), ep("198.18.0.2:2")),
            "PROXY TCP4 198.18.0.1 198.18.0.2 1 2\r\n");
}

}  // namespace
}  // namespace seamless::proxy
