#include "tests/integration/metrics/http_get.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <cstdlib>

#include "base/unique_fd.h"

namespace seamless::metrics::testing {
namespace {

using Clock = std::chrono::steady_clock;

// Waits for `events` on fd until `deadline`; false on timeout or error.
bool wait_for(int fd, short events, Clock::time_point deadline) {
  for (;;) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) return false;
    pollfd p{fd, events, 0};
    const int ready = ::poll(&p, 1, static_cast<int>(left));
    if (ready > 0) return true;
    if (ready < 0 && errno != EINTR) return false;
  }
}

Result<UniqueFd> connect_loopback(std::uint16_t port, Clock::time_point deadline) {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd) return Error::from_errno("socket");
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0 &&
      errno != EINPROGRESS) {
    return Error::from_errno("connect");
  }
  if (!wait_for(fd.get(), POLLOUT, deadline)) return Error::logic("connect timed out");
  int err = 0;
  socklen_t length = sizeof(err);
  ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &length);
  if (err != 0) return Error::from_errno("connect", err);
  return fd;
}

Result<HttpResponse> parse(const std::string& raw) {
  const std::size_t end_of_head = raw.find("\r\n\r\n");
  if (raw.compare(0, 9, "HTTP/1.1 ") != 0 && raw.compare(0, 9, "HTTP/1.0 ") != 0) {
    return Error::logic("not an HTTP response: " + raw.substr(0, 40));
  }
  if (end_of_head == std::string::npos) return Error::logic("no end of headers");
  return HttpResponse{std::atoi(raw.c_str() + 9), raw.substr(end_of_head + 4)};
}

}  // namespace

Result<HttpResponse> http_get(std::uint16_t port, const std::string& path,
                              std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  Result<UniqueFd> fd = connect_loopback(port, deadline);
  if (!fd) return fd.error();
  const std::string request = "GET " + path + " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
  std::size_t sent = 0;
  while (sent < request.size()) {
    if (!wait_for(fd->get(), POLLOUT, deadline)) return Error::logic("send timed out");
    const ssize_t n = ::send(fd->get(), request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && errno != EAGAIN && errno != EINTR) return Error::from_errno("send");
    if (n > 0) sent += static_cast<std::size_t>(n);
  }
  std::string raw;
  char buffer[16384];
  for (;;) {  // HTTP/1.0: the server closes after the response
    if (!wait_for(fd->get(), POLLIN, deadline)) return Error::logic("response timed out");
    const ssize_t n = ::recv(fd->get(), buffer, sizeof(buffer), 0);
    if (n == 0) break;
    if (n < 0 && errno != EAGAIN && errno != EINTR) return Error::from_errno("recv");
    if (n > 0) raw.append(buffer, static_cast<std::size_t>(n));
  }
  return parse(raw);
}

}  // namespace seamless::metrics::testing
