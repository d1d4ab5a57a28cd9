// Sys: the thin layer between repair/ and the kernel. Every call whose failure path
// matters goes through it, so unit tests can inject EAGAIN, short writes or EPERM
// with a subclass. Calls follow libc's convention: -1 and errno on failure.
#pragma once

#include <sys/socket.h>
#include <sys/types.h>

#include <cstdint>

namespace seamless::repair {

// The TCP_INFO fields repair/ needs (glibc's struct tcp_info lacks the byte
// counters, and <linux/tcp.h> clashes with <netinet/tcp.h>, so only sys.cc sees it).
struct TcpInfo {
  uint8_t state = 0;
  uint8_t options = 0;        // TCPI_OPT_TIMESTAMPS=1, SACK=2, WSCALE=4
  uint8_t snd_wscale = 0;
  uint8_t rcv_wscale = 0;
  uint32_t snd_mss = 0;
  uint32_t last_ack_recv_ms = 0;
  uint64_t bytes_acked = 0;
  uint64_t bytes_received = 0;
  uint32_t total_retrans = 0;
};

class Sys {
 public:
  virtual ~Sys() = default;

  virtual int socket(int domain, int type, int protocol);
  virtual int setsockopt(int fd, int level, int name, const void* value, socklen_t len);
  virtual int getsockopt(int fd, int level, int name, void* value, socklen_t* len);
  virtual int ioctl_int(int fd, unsigned long request, int* value);
  virtual ssize_t send(int fd, const void* buf, size_t len, int flags);
  virtual ssize_t sendto(int fd, const void* buf, size_t len, int flags, const sockaddr* to,
                         socklen_t to_len);
  virtual ssize_t recv(int fd, void* buf, size_t len, int flags);
  virtual int bind(int fd, const sockaddr* addr, socklen_t len);
  virtual int connect(int fd, const sockaddr* addr, socklen_t len);
  virtual int shutdown(int fd, int how);
  virtual int getsockname(int fd, sockaddr* addr, socklen_t* len);
  virtual int getpeername(int fd, sockaddr* addr, socklen_t* len);
  virtual int tcp_info(int fd, TcpInfo* info);

  // Typed helpers over setsockopt/getsockopt for the common int-sized options.
  int set_int(int fd, int level, int name, int value) {
    return setsockopt(fd, level, name, &value, sizeof(value));
  }
  int get_int(int fd, int level, int name, int* value) {
    socklen_t len = sizeof(*value);
    return getsockopt(fd, level, name, value, &len);
  }
};

}  // namespace seamless::repair
