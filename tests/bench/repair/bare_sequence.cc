#include "tests/bench/repair/bare_sequence.h"

#include <linux/sockios.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

namespace seamless::bench {

bool bare_dump(int fd, BareImage* out) {
  int one = 1, q = 0;
  socklen_t len = sizeof(out->local);
  getsockname(fd, reinterpret_cast<sockaddr*>(out->local), &len);
  out->addr_len = len;
  getpeername(fd, reinterpret_cast<sockaddr*>(out->peer), &len);
  if (setsockopt(fd, IPPROTO_TCP, TCP_REPAIR, &one, sizeof(one)) != 0) return false;
  tcp_info info{};
  len = sizeof(info);
  getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len);
  out->wscale_snd = info.tcpi_snd_wscale;
  out->wscale_rcv = info.tcpi_rcv_wscale;
  int inq = 0, outq = 0;
  ioctl(fd, SIOCINQ, &inq);
  ioctl(fd, SIOCOUTQ, &outq);
  q = TCP_RECV_QUEUE;
  setsockopt(fd, IPPROTO_TCP, TCP_REPAIR_QUEUE, &q, sizeof(q));
  len = sizeof(uint32_t);
  getsockopt(fd, IPPROTO_TCP, TCP_QUEUE_SEQ, &out->rcv_seq, &len);
  out->recvq.resize(static_cast<size_t>(inq));
  if (inq) recv(fd, out->recvq.data(), out->recvq.size(), MSG_PEEK | MSG_DONTWAIT);
  q = TCP_SEND_QUEUE;
  setsockopt(fd, IPPROTO_TCP, TCP_REPAIR_QUEUE, &q, sizeof(q));
  getsockopt(fd, IPPROTO_TCP, TCP_QUEUE_SEQ, &out->snd_seq, &len);
  out->sendq.resize(static_cast<size_t>(outq));
  if (outq) recv(fd, out->sendq.data(), out->sendq.size(), MSG_PEEK | MSG_DONTWAIT);
  out->rcv_seq -= static_cast<uint32_t>(inq);
  out->snd_seq -= static_cast<uint32_t>(outq);
  getsockopt(fd, IPPROTO_TCP, TCP_MAXSEG, &out->mss, &len);
  getsockopt(fd, IPPROTO_TCP, TCP_TIMESTAMP, &out->ts, &len);
  len = sizeof(out->window);
  return getsockopt(fd, IPPROTO_TCP, TCP_REPAIR_WINDOW, out->window, &len) == 0;
}

int bare_restore(const BareImage& image) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int one = 1, q = TCP_RECV_QUEUE;
  setsockopt(fd, IPPROTO_TCP, TCP_REPAIR, &one, sizeof(one));
  int mss = static_cast<int>(image.mss > 32767 ? 32767 : image.mss);
  setsockopt(fd, IPPROTO_TCP, TCP_MAXSEG, &mss, sizeof(mss));
  setsockopt(fd, IPPROTO_TCP, TCP_REPAIR_QUEUE, &q, sizeof(q));
  setsockopt(fd, IPPROTO_TCP, TCP_QUEUE_SEQ, &image.rcv_seq, sizeof(image.rcv_seq));
  q = TCP_SEND_QUEUE;
  setsockopt(fd, IPPROTO_TCP, TCP_REPAIR_QUEUE, &q, sizeof(q));
  setsockopt(fd, IPPROTO_TCP, TCP_QUEUE_SEQ, &image.snd_seq, sizeof(image.snd_seq));
  bind(fd, reinterpret_cast<const sockaddr*>(image.local), image.addr_len);
  connect(fd, reinterpret_cast<const sockaddr*>(image.peer), image.addr_len);
  tcp_repair_opt opts[4] = {{2, image.mss},
                            {3, static_cast<uint32_t>(image.wscale_snd | image.wscale_rcv << 16)},
                            {4, 0},
                            {8, 0}};
  setsockopt(fd, IPPROTO_TCP, TCP_REPAIR_OPTIONS, opts, sizeof(opts));
  setsockopt(fd, IPPROTO_TCP, TCP_TIMESTAMP, &image.ts, sizeof(image.ts));
  setsockopt(fd, IPPROTO_TCP, TCP_REPAIR_WINDOW, image.window, sizeof(image.window));
  int off = TCP_REPAIR_OFF_NO_WP;
  setsockopt(fd, IPPROTO_TCP, TCP_REPAIR, &off, sizeof(off));
  return fd;
}

}  // namespace seamless::bench
