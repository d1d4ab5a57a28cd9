#include "repair/packet_injector.h"

#include <netinet/in.h>

#include <cstring>

#include "repair/sys.h"

namespace seamless::repair {

Result<int> PacketInjector::raw_socket(int family) {
  UniqueFd& slot = family == AF_INET ? raw4_ : raw6_;
  if (slot) return slot.get();
  // IPPROTO_RAW implies that we supply the IP header, for IPv4 and IPv6 alike.
  UniqueFd fd(sys_.socket(family, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_RAW));
  if (!fd) {
    const int err = errno;
    Error e = Error::from_errno("raw socket", err);
    if (err == EPERM) e.message += " (needs CAP_NET_RAW)";
    return e;
  }
  if (sys_.set_int(fd.get(), SOL_SOCKET, SO_MARK, static_cast<int>(mark_)) != 0) {
    return Error::from_errno("raw socket SO_MARK");
  }
  slot = std::move(fd);
  return slot.get();
}

Status PacketInjector::send(const TcpSegment& segment) {
  const int family = segment.source.wire_family();
  auto fd = raw_socket(family);
  if (!fd) return fd.error();
  const std::vector<uint8_t> packet = build_packet(segment);

  sockaddr_storage to{};
  socklen_t to_len = 0;
  if (family == AF_INET) {
    auto* sin = reinterpret_cast<sockaddr_in*>(&to);
    sin->sin_family = AF_INET;
    const auto dst = segment.destination.v4_bytes();
    std::memcpy(&sin->sin_addr, dst.data(), 4);
    to_len = sizeof(*sin);
  } else {
    auto* sin6 = reinterpret_cast<sockaddr_in6*>(&to);
    sin6->sin6_family = AF_INET6;  // port stays 0: for raw IPv6 it would name a protocol
    sin6->sin6_scope_id = segment.destination.scope_id;
    std::memcpy(&sin6->sin6_addr, segment.destination.addr.data(), 16);
    to_len = sizeof(*sin6);
  }
  const ssize_t n = sys_.sendto(*fd, packet.data(), packet.size(), 0,
                                reinterpret_cast<const sockaddr*>(&to), to_len);
  if (n != static_cast<ssize_t>(packet.size())) return Error::from_errno("inject segment");
  return {};
}

}  // namespace seamless::repair
