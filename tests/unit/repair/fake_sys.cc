#include "tests/unit/repair/fake_sys.h"

#include <arpa/inet.h>

#include <sys/ioctl.h>

#include <cerrno>
#include <cstring>

namespace seamless::repair::testing {
namespace {

std::string option_name(int level, int name) {
  if (level == IPPROTO_TCP) {
    switch (name) {
      case TCP_REPAIR: return "TCP_REPAIR";
      case TCP_REPAIR_QUEUE: return "TCP_REPAIR_QUEUE";
      case TCP_QUEUE_SEQ: return "TCP_QUEUE_SEQ";
      case TCP_REPAIR_OPTIONS: return "TCP_REPAIR_OPTIONS";
      case TCP_REPAIR_WINDOW: return "TCP_REPAIR_WINDOW";
      case TCP_MAXSEG: return "TCP_MAXSEG";
      case TCP_TIMESTAMP: return "TCP_TIMESTAMP";
    }
  }
  return std::to_string(level) + "/" + std::to_string(name);
}

}  // namespace

sockaddr_storage make_sockaddr(const char* host, uint16_t port) {
  sockaddr_storage ss{};
  auto* sin = reinterpret_cast<sockaddr_in*>(&ss);
  sin->sin_family = AF_INET;
  sin->sin_port = htons(port);
  inet_pton(AF_INET, host, &sin->sin_addr);
  return ss;
}

bool FakeSys::failing(const std::string& call, const std::string& detail) {
  calls.push_back(detail.empty() ? call : call + "=" + detail);
  for (const std::string& key : {call, call + "=" + detail}) {
    auto it = fail.find(key);
    if (it == fail.end()) continue;
    errno = it->second;
    return true;
  }
  return false;
}

bool FakeSys::called(const std::string& prefix) const {
  for (const auto& c : calls) {
    if (c.starts_with(prefix)) return true;
  }
  return false;
}

int FakeSys::setsockopt(int, int level, int name, const void* value, socklen_t len) {
  const std::string opt = option_name(level, name);
  int as_int = 0;
  if (len == sizeof(int)) std::memcpy(&as_int, value, sizeof(int));
  if (failing("setsockopt " + opt, std::to_string(as_int))) return -1;
  if (level == IPPROTO_TCP && name == TCP_REPAIR_QUEUE) repair_queue = as_int;
  if (level == IPPROTO_TCP && name == TCP_QUEUE_SEQ) {
    (repair_queue == TCP_RECV_QUEUE ? set_recv_seq : set_send_seq) = static_cast<uint32_t>(as_int);
  }
  return 0;
}

int FakeSys::getsockopt(int, int level, int name, void* value, socklen_t* len) {
  if (failing("getsockopt " + option_name(level, name))) return -1;
  if (level == IPPROTO_TCP && name == TCP_QUEUE_SEQ) {
    const uint32_t seq = repair_queue == TCP_RECV_QUEUE ? sock.rcv_nxt : sock.write_seq;
    std::memcpy(value, &seq, sizeof(seq));
  } else if (level == IPPROTO_TCP && name == TCP_REPAIR_WINDOW) {
    std::memcpy(value, &sock.window, sizeof(sock.window));
    *len = sizeof(sock.window);
  } else if (level == IPPROTO_TCP && name == TCP_MAXSEG) {
    const int mss = static_cast<int>(sock.mss);
    std::memcpy(value, &mss, sizeof(mss));
  } else if (level == IPPROTO_TCP && name == TCP_TIMESTAMP) {
    std::memcpy(value, &sock.timestamp, sizeof(sock.timestamp));
  } else {
    std::memset(value, 0, *len);
  }
  return 0;
}

int FakeSys::ioctl_int(int, unsigned long request, int* value) {
  if (failing("ioctl " + std::to_string(request))) return -1;
  *value = request == SIOCINQ ? sock.inq : request == SIOCOUTQ ? sock.outq : sock.notsent;
  return 0;
}

ssize_t FakeSys::send(int, const void* buf, size_t len, int) {
  if (failing("send")) return -1;
  const size_t n = std::min(len, max_send);
  std::string& queue = repair_queue == TCP_RECV_QUEUE ? sent_recv_queue : sent_send_queue;
  queue.append(static_cast<const char*>(buf), n);
  return static_cast<ssize_t>(n);
}

ssize_t FakeSys::recv(int, void* buf, size_t len, int) {
  if (failing("recv")) return -1;
  const std::string& queue = repair_queue == TCP_RECV_QUEUE ? sock.recv_bytes : sock.send_bytes;
  const size_t n = std::min(len, queue.size());
  std::memcpy(buf, queue.data(), n);
  return static_cast<ssize_t>(n);
}

int FakeSys::shutdown(int, int) { return failing("shutdown") ? -1 : 0; }

int FakeSys::getsockname(int, sockaddr* addr, socklen_t* len) {
  if (failing("getsockname")) return -1;
  std::memcpy(addr, &sock.local, sizeof(sockaddr_in));
  *len = sizeof(sockaddr_in);
  return 0;
}

int FakeSys::getpeername(int, sockaddr* addr, socklen_t* len) {
  if (failing("getpeername")) return -1;
  std::memcpy(addr, &sock.peer, sizeof(sockaddr_in));
  *len = sizeof(sockaddr_in);
  return 0;
}

int FakeSys::tcp_info(int, TcpInfo* info) {
  if (failing("tcp_info")) return -1;
  info->state = sock.state;
  info->options = sock.options;
  info->snd_wscale = sock.snd_wscale;
  info->rcv_wscale = sock.rcv_wscale;
  info->snd_mss = sock.mss;
  return 0;
}

}  // namespace seamless::repair::testing
