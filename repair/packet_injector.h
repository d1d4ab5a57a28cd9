// PacketInjector: sends hand-built TCP segments through raw sockets, marked so that
// the flow lock lets them through to a locked socket. Raw sockets are opened on
// first use (needs CAP_NET_RAW) and kept for the injector's lifetime.
#pragma once

#include <cstdint>

#include "base/result.h"
#include "base/unique_fd.h"
#include "repair/tcp_packet.h"

namespace seamless::repair {

class Sys;

class PacketInjector {
 public:
  PacketInjector(Sys& sys, uint32_t mark) : sys_(sys), mark_(mark) {}

  Status send(const TcpSegment& segment);

 private:
  Result<int> raw_socket(int family);

  Sys& sys_;
  uint32_t mark_;
  UniqueFd raw4_;
  UniqueFd raw6_;
};

}  // namespace seamless::repair
