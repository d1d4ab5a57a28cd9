#include "metrics/listen_address.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <charconv>
#include <cstring>
#include <string_view>

#include "base/unique_fd.h"

namespace seamless::metrics {
namespace {

Result<std::uint16_t> parse_port(std::string_view text) {
  unsigned port = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), port);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || port > 65535) {
    return Error::logic("bad port \"" + std::string(text) + "\"");
  }
  return static_cast<std::uint16_t>(port);
}

sockaddr_in* as_v4(ListenAddress& address) {
  return reinterpret_cast<sockaddr_in*>(&address.storage);
}
sockaddr_in6* as_v6(ListenAddress& address) {
  return reinterpret_cast<sockaddr_in6*>(&address.storage);
}

}  // namespace

Result<ListenAddress> parse_listen_address(const std::string& listen) {
  const std::size_t colon = listen.rfind(':');
  if (colon == std::string::npos) return Error::logic("expected host:port");
  Result<std::uint16_t> port = parse_port(std::string_view(listen).substr(colon + 1));
  if (!port) return port.error();
  ListenAddress out;
  if (listen.front() == '[' && colon > 1 && listen[colon - 1] == ']') {
    as_v6(out)->sin6_family = AF_INET6;
    as_v6(out)->sin6_port = htons(*port);
    if (::inet_pton(AF_INET6, listen.substr(1, colon - 2).c_str(), &as_v6(out)->sin6_addr) != 1) {
      return Error::logic("bad IPv6 address");
    }
    out.length = sizeof(sockaddr_in6);
    return out;
  }
  as_v4(out)->sin_family = AF_INET;
  as_v4(out)->sin_port = htons(*port);
  if (::inet_pton(AF_INET, listen.substr(0, colon).c_str(), &as_v4(out)->sin_addr) != 1) {
    return Error::logic("bad IPv4 address (use a.b.c.d:port or [v6]:port)");
  }
  out.length = sizeof(sockaddr_in);
  return out;
}

int probe_bind_errno(const ListenAddress& address) {
  UniqueFd fd(::socket(address.storage.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return errno;
  const int one = 1;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&address.storage), address.length) != 0) {
    return errno;
  }
  return 0;
}

ListenAddress local_destination(const ListenAddress& bound, std::uint16_t port) {
  ListenAddress out = bound;
  if (out.storage.ss_family == AF_INET6) {
    as_v6(out)->sin6_port = htons(port);
    if (IN6_IS_ADDR_UNSPECIFIED(&as_v6(out)->sin6_addr)) as_v6(out)->sin6_addr = in6addr_loopback;
  } else {
    as_v4(out)->sin_port = htons(port);
    if (as_v4(out)->sin_addr.s_addr == htonl(INADDR_ANY)) {
      as_v4(out)->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    }
  }
  return out;
}

void poke(const ListenAddress& address) {
  UniqueFd fd(::socket(address.storage.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd) return;
  // The result does not matter: a SYN reaching the listener is what wakes its poll().
  (void)::connect(fd.get(), reinterpret_cast<const sockaddr*>(&address.storage), address.length);
}

}  // namespace seamless::metrics
