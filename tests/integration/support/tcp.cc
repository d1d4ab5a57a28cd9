#include "tests/integration/support/tcp.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>

#include <cstring>
#include <thread>

namespace seamless::testing {
namespace {

sockaddr_storage make_addr(const std::string& host, uint16_t port, socklen_t* len) {
  sockaddr_storage ss{};
  if (host.find(':') == std::string::npos) {
    auto* sin = reinterpret_cast<sockaddr_in*>(&ss);
    sin->sin_family = AF_INET;
    sin->sin_port = htons(port);
    EXPECT_EQ(inet_pton(AF_INET, host.c_str(), &sin->sin_addr), 1) << host;
    *len = sizeof(*sin);
  } else {
    auto* sin6 = reinterpret_cast<sockaddr_in6*>(&ss);
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons(port);
    EXPECT_EQ(inet_pton(AF_INET6, host.c_str(), &sin6->sin6_addr), 1) << host;
    *len = sizeof(*sin6);
  }
  return ss;
}

}  // namespace

UniqueFd listen_on(const std::string& host, uint16_t port, bool v6only) {
  socklen_t len = 0;
  sockaddr_storage ss = make_addr(host, port, &len);
  UniqueFd fd(::socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0));
  const int one = 1, v6 = v6only ? 1 : 0;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (ss.ss_family == AF_INET6) ::setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &v6, sizeof(v6));
  EXPECT_EQ(::bind(fd.get(), reinterpret_cast<sockaddr*>(&ss), len), 0)
      << "bind " << host << ": " << std::strerror(errno);
  EXPECT_EQ(::listen(fd.get(), 1024), 0);
  return fd;
}

uint16_t local_port(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
  return ntohs(ss.ss_family == AF_INET ? reinterpret_cast<sockaddr_in*>(&ss)->sin_port
                                       : reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port);
}

UniqueFd connect_to(const std::string& host, uint16_t port) {
  socklen_t len = 0;
  sockaddr_storage ss = make_addr(host, port, &len);
  UniqueFd fd(::socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0));
  EXPECT_EQ(::connect(fd.get(), reinterpret_cast<sockaddr*>(&ss), len), 0)
      << "connect " << host << ":" << port << ": " << std::strerror(errno);
  set_nonblocking(fd.get());
  return fd;
}

UniqueFd accept_one(int listener) {
  pollfd p{listener, POLLIN, 0};
  EXPECT_EQ(::poll(&p, 1, 5000), 1) << "no connection to accept";
  UniqueFd fd(::accept4(listener, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
  EXPECT_TRUE(fd.valid()) << "accept: " << std::strerror(errno);
  return fd;
}

bool wait_until(const std::function<bool()>& condition, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!condition()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return true;
}

int tcp_state(int fd) {
  tcp_info info{};
  socklen_t len = sizeof(info);
  if (::getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len) != 0) return -1;
  return info.tcpi_state;
}

int set_nonblocking(int fd) { return ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK); }

}  // namespace seamless::testing
