#include "proxy/socket_ops.h"

#include <sys/socket.h>

#include <cerrno>

namespace seamless::proxy {

ssize_t SocketOps::recv(int fd, void* buf, size_t len, int flags) {
  return ::recv(fd, buf, len, flags);
}

ssize_t SocketOps::send(int fd, const void* buf, size_t len, int flags) {
  return ::send(fd, buf, len, flags);
}

int SocketOps::shutdown(int fd, int how) { return ::shutdown(fd, how); }

int SocketOps::abort(int fd) {
  sockaddr unspec{};
  unspec.sa_family = AF_UNSPEC;
  return ::connect(fd, &unspec, sizeof(unspec));
}

int SocketOps::socket_error(int fd) {
  int error = 0;
  socklen_t len = sizeof(error);
  if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &len) != 0) return errno;
  return error;
}

}  // namespace seamless::proxy
