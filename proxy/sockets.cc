#include "proxy/sockets.h"

#include <netinet/in.h>
#include <netinet/tcp.h>

#include <cctype>
#include <cerrno>
#include <cstring>

namespace seamless::proxy {
namespace {

constexpr int kListenBacklog = 4096;  // the kernel caps it at net.core.somaxconn

Status set_int(int fd, int level, int name, int value, const char* what) {
  if (::setsockopt(fd, level, name, &value, sizeof(value)) != 0) {
    return Error{errno, std::string(what) + ": " + errno_text(errno)};
  }
  return {};
}

Status bind_and_listen(int fd, const config::SocketAddress& address, bool v6only) {
  if (Status s = set_int(fd, SOL_SOCKET, SO_REUSEADDR, 1, "SO_REUSEADDR"); !s) return s;
  if (address.family == AF_INET6) {
    if (Status s = set_int(fd, IPPROTO_IPV6, IPV6_V6ONLY, v6only ? 1 : 0, "IPV6_V6ONLY"); !s) {
      return s;
    }
  }
  socklen_t len = 0;
  const sockaddr_storage ss = to_endpoint(address).to_sockaddr(&len);
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&ss), len) != 0) {
    return Error{errno, errno_text(errno)};
  }
  if (::listen(fd, kListenBacklog) != 0) return Error{errno, "listen: " + errno_text(errno)};
  return {};
}

using NameCall = int (*)(int, sockaddr*, socklen_t*);

repair::Endpoint endpoint_of(int fd, NameCall call) {
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  if (call(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return {};
  Result<repair::Endpoint> e =
      repair::Endpoint::from_sockaddr(reinterpret_cast<sockaddr*>(&ss), len);
  return e ? *e : repair::Endpoint{};
}

}  // namespace

std::string errno_text(int err) {
  std::string text = std::strerror(err);
  if (!text.empty()) text[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(text[0])));
  return text;
}

repair::Endpoint to_endpoint(const config::SocketAddress& address) {
  repair::Endpoint e;
  e.family = address.family;
  e.addr = address.bytes;
  e.port = address.port;
  return e;
}

Result<UniqueFd> open_listener(const config::SocketAddress& address, bool v6only) {
  const std::string where = "listen " + address.to_string();
  UniqueFd fd(::socket(address.family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) return Error{errno, where + ": socket: " + errno_text(errno)};
  if (Status s = bind_and_listen(fd.get(), address, v6only); !s) return s.error().context(where);
  return fd;
}

Status set_proxied_options(int fd) {
  if (Status s = set_int(fd, SOL_SOCKET, SO_OOBINLINE, 1, "SO_OOBINLINE"); !s) return s;
  return set_int(fd, IPPROTO_TCP, TCP_NODELAY, 1, "TCP_NODELAY");
}

Result<UniqueFd> start_connect(const repair::Endpoint& target, bool proxied) {
  UniqueFd fd(::socket(target.family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) return Error{errno, "socket: " + errno_text(errno)};
  if (proxied) {
    if (Status s = set_proxied_options(fd.get()); !s) return s.error();
  }
  socklen_t len = 0;
  const sockaddr_storage ss = target.to_sockaddr(&len);
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&ss), len) != 0 &&
      errno != EINPROGRESS) {
    return Error{errno, "connect: " + errno_text(errno)};
  }
  return fd;
}

repair::Endpoint local_endpoint(int fd) { return endpoint_of(fd, ::getsockname); }
repair::Endpoint peer_endpoint(int fd) { return endpoint_of(fd, ::getpeername); }

}  // namespace seamless::proxy
