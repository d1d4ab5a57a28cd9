// FakeSys: a scripted socket for unit tests of repair/. It answers the calls that
// dump_socket() and SocketRestorer make from a plain description of a TCP socket's
// kernel state, records what the code under test set, and fails on request.
#pragma once

#include <linux/sockios.h>
#include <netinet/tcp.h>

#include <map>
#include <string>
#include <vector>

#include "repair/sys.h"

namespace seamless::repair::testing {

struct KernelSocket {
  int family = AF_INET;
  sockaddr_storage local{}, peer{};
  uint8_t state = 1;
  uint8_t options = 7;
  uint8_t snd_wscale = 7, rcv_wscale = 7;
  uint32_t mss = 1460;
  uint32_t rcv_nxt = 0, write_seq = 0;  // as TCP_QUEUE_SEQ reports them (FINs included)
  int inq = 0, outq = 0, notsent = 0;   // as the ioctls report them
  std::string recv_bytes, send_bytes;   // what a peek returns
  tcp_repair_window window{};
  uint32_t timestamp = 1000;
};

class FakeSys : public Sys {
 public:
  KernelSocket sock;
  std::map<std::string, int> fail;   // call name -> errno to fail with
  std::vector<std::string> calls;    // every call, in order, e.g. "setsockopt TCP_REPAIR=1"
  size_t max_send = SIZE_MAX;        // short writes: at most this many bytes per send()
  int repair_queue = 0;
  std::string sent_recv_queue, sent_send_queue;
  uint32_t set_recv_seq = 0, set_send_seq = 0;
  int next_fd = 100;

  int socket(int, int, int) override { return failing("socket") ? -1 : next_fd++; }
  int setsockopt(int fd, int level, int name, const void* value, socklen_t len) override;
  int getsockopt(int fd, int level, int name, void* value, socklen_t* len) override;
  int ioctl_int(int fd, unsigned long request, int* value) override;
  ssize_t send(int fd, const void* buf, size_t len, int flags) override;
  ssize_t sendto(int, const void*, size_t len, int, const sockaddr*, socklen_t) override {
    return failing("sendto") ? -1 : static_cast<ssize_t>(len);
  }
  ssize_t recv(int fd, void* buf, size_t len, int flags) override;
  int bind(int, const sockaddr*, socklen_t) override { return failing("bind") ? -1 : 0; }
  int connect(int, const sockaddr*, socklen_t) override { return failing("connect") ? -1 : 0; }
  int shutdown(int, int) override;
  int getsockname(int, sockaddr* addr, socklen_t* len) override;
  int getpeername(int, sockaddr* addr, socklen_t* len) override;
  int tcp_info(int fd, TcpInfo* info) override;

  bool called(const std::string& prefix) const;

 private:
  // Records the call; fails it when `fail` names "call" or "call=detail".
  bool failing(const std::string& call, const std::string& detail = "");
};

// "198.18.0.1", 41000 -> a sockaddr_storage
sockaddr_storage make_sockaddr(const char* host, uint16_t port);

}  // namespace seamless::repair::testing
