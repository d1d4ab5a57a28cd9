#include "repair/tcp_packet.h"

#include <gtest/gtest.h>

namespace seamless::repair {
namespace {

TEST(InternetChecksum, MatchesTheRfc1071Example) {
  const uint8_t data[] = {0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7};
  EXPECT_EQ(internet_checksum(data, sizeof(data)), static_cast<uint16_t>(~0xddf2));
}

// A packet's checksums verify when the sum over it (with pseudo-header) is zero.
TEST(BuildPacket, Ipv4HeaderAndTcpChecksumVerify) {
  TcpSegment s{*Endpoint::parse("198.18.0.1:41000"), *Endpoint::parse("198.18.0.2:7000"),
               0x11223344, 0x55667788, kTcpFin | kTcpAck, 512};
  const auto p = build_packet(s);
  ASSERT_EQ(p.size(), 40u);
  EXPECT_EQ(p[0], 0x45);
  EXPECT_EQ(internet_checksum(p.data(), 20), 0);
  uint32_t pseudo = (198 << 8 | 18) + (0 << 8 | 1) + (198 << 8 | 18) + (0 << 8 | 2) + 6 + 20;
  EXPECT_EQ(internet_checksum(p.data() + 20, 20, pseudo), 0);
  EXPECT_EQ(p[20 + 13], kTcpFin | kTcpAck);
  EXPECT_EQ(p[24], 0x11);
  EXPECT_EQ(p[28], 0x55);
}

TEST(BuildPacket, MappedAddressesTravelAsIpv4) {
  TcpSegment s{*Endpoint::parse("[::ffff:198.18.0.1]:41000"),
               *Endpoint::parse("[::ffff:198.18.0.2]:7000"), 1, 2, kTcpAck, 0};
  EXPECT_EQ(build_packet(s).size(), 40u);
}

TEST(BuildPacket, Ipv6ChecksumVerifies) {
  TcpSegment s{*Endpoint::parse("[2001:db8::1]:41000"), *Endpoint::parse("[2001:db8::2]:7000"),
               7, 9, kTcpAck, 100};
  const auto p = build_packet(s);
  ASSERT_EQ(p.size(), 60u);
  EXPECT_EQ(p[0] >> 4, 6);
  uint32_t pseudo = 0;
  for (size_t i = 8; i < 40; i += 2) pseudo += static_cast<uint32_t>(p[i] << 8 | p[i + 1]);
  pseudo += 6 + 20;
  EXPECT_EQ(internet_checksum(p.data() + 40, 20, pseudo), 0);
}

TEST(Endpoint, ParsesAndPrintsBothFamilies) {
  EXPECT_EQ(Endpoint::parse("[2001:db8::1]:80")->to_string(), "[2001:db8::1]:80");
  EXPECT_TRUE(Endpoint::parse("[::ffff:1.2.3.4]:80")->is_v4_mapped());
  EXPECT_EQ(Endpoint::parse("[::ffff:1.2.3.4]:80")->wire_family(), AF_INET);
  EXPECT_FALSE(Endpoint::parse("1.2.3.4:0").ok());
  EXPECT_FALSE(Endpoint::parse("1.2.3.4").ok());
  EXPECT_FALSE(Endpoint::parse("[::1]80").ok());
}

}  // namespace
}  // namespace seamless::repair
