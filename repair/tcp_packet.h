// Builds bare TCP segments (no payload, no options) inside a full IPv4 or IPv6
// packet, checksums included. Used to inject the peer's FIN into a restored socket
// and to probe a peer for an ACK. Pure: no sockets.
#pragma once

#include <cstdint>
#include <vector>

#include "repair/endpoint.h"

namespace seamless::repair {

inline constexpr uint8_t kTcpFin = 0x01;
inline constexpr uint8_t kTcpAck = 0x10;

struct TcpSegment {
  Endpoint source;       // both ends must have the same wire_family()
  Endpoint destination;
  uint32_t seq = 0;
  uint32_t ack = 0;
  uint8_t flags = kTcpAck;
  uint16_t window = 0;   // already scaled down by the sender's window shift
};

// The packet as it goes on the wire (IPv4 for AF_INET and IPv4-mapped endpoints).
std::vector<uint8_t> build_packet(const TcpSegment& segment);

// RFC 1071 ones' complement sum, folded; exposed for tests.
uint16_t internet_checksum(const uint8_t* data, size_t len, uint32_t initial = 0);

}  // namespace seamless::repair
