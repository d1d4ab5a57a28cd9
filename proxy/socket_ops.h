// SocketOps: the few syscalls on proxied sockets whose failure paths matter (short
// send, EAGAIN, ECONNRESET, EOF), behind a seam so that the forwarding logic is unit-
// tested with a fake and integration-tested for real. libc convention: -1 and errno.
#pragma once

#include <sys/types.h>

#include <cstddef>

namespace seamless::proxy {

class SocketOps {
 public:
  virtual ~SocketOps() = default;

  virtual ssize_t recv(int fd, void* buf, size_t len, int flags);
  virtual ssize_t send(int fd, const void* buf, size_t len, int flags);
  virtual int shutdown(int fd, int how);
  // Aborts the connection: connect(fd, AF_UNSPEC) sends an RST at once, even while
  // another process holds a duplicate of the fd (close() with SO_LINGER {1,0} sends
  // nothing while another reference exists). DESIGN §2 "Closing, with a duplicate alive".
  virtual int abort(int fd);
  // SO_ERROR: the pending socket error (0 if none), which reading also clears.
  virtual int socket_error(int fd);
};

}  // namespace seamless::proxy
