#include "repair/sys.h"

#include <linux/tcp.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <unistd.h>

namespace seamless::repair {

int Sys::socket(int domain, int type, int protocol) { return ::socket(domain, type, protocol); }

int Sys::setsockopt(int fd, int level, int name, const void* value, socklen_t len) {
  return ::setsockopt(fd, level, name, value, len);
}

int Sys::getsockopt(int fd, int level, int name, void* value, socklen_t* len) {
  return ::getsockopt(fd, level, name, value, len);
}

int Sys::ioctl_int(int fd, unsigned long request, int* value) { return ::ioctl(fd, request, value); }

ssize_t Sys::send(int fd, const void* buf, size_t len, int flags) {
  return ::send(fd, buf, len, flags);
}

ssize_t Sys::sendto(int fd, const void* buf, size_t len, int flags, const sockaddr* to,
                    socklen_t to_len) {
  return ::sendto(fd, buf, len, flags, to, to_len);
}

ssize_t Sys::recv(int fd, void* buf, size_t len, int flags) { return ::recv(fd, buf, len, flags); }

int Sys::bind(int fd, const sockaddr* addr, socklen_t len) { return ::bind(fd, addr, len); }

int Sys::connect(int fd, const sockaddr* addr, socklen_t len) { return ::connect(fd, addr, len); }

int Sys::shutdown(int fd, int how) { return ::shutdown(fd, how); }

int Sys::getsockname(int fd, sockaddr* addr, socklen_t* len) {
  return ::getsockname(fd, addr, len);
}

int Sys::getpeername(int fd, sockaddr* addr, socklen_t* len) {
  return ::getpeername(fd, addr, len);
}

int Sys::tcp_info(int fd, TcpInfo* out) {
  struct tcp_info info {};
  socklen_t len = sizeof(info);
  if (::getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len) != 0) return -1;
  out->state = info.tcpi_state;
  out->options = info.tcpi_options;
  out->snd_wscale = info.tcpi_snd_wscale;
  out->rcv_wscale = info.tcpi_rcv_wscale;
  out->snd_mss = info.tcpi_snd_mss;
  out->last_ack_recv_ms = info.tcpi_last_ack_recv;
  out->bytes_acked = info.tcpi_bytes_acked;
  out->bytes_received = info.tcpi_bytes_received;
  out->total_retrans = info.tcpi_total_retrans;
  return 0;
}

}  // namespace seamless::repair
