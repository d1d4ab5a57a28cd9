#include "tests/integration/proxy/client_io.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <sstream>

#include "base/unique_fd.h"

namespace seamless::proxy::testing {
namespace {

using Clock = std::chrono::steady_clock;

int remaining_ms(Clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  return left.count() < 0 ? 0 : static_cast<int>(left.count());
}

ReadResult read_until(int fd, size_t bytes, std::chrono::milliseconds timeout) {
  ReadResult r;
  const auto deadline = Clock::now() + timeout;
  char buf[65536];
  while (r.data.size() < bytes) {
    const ssize_t n = ::recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
    if (n > 0) {
      r.data.append(buf, static_cast<size_t>(n));
      continue;
    }
    if (n == 0) {
      r.eof = true;
      return r;
    }
    if (errno != EAGAIN) {
      r.error = errno;
      return r;
    }
    pollfd p{fd, POLLIN, 0};
    if (remaining_ms(deadline) == 0 || ::poll(&p, 1, remaining_ms(deadline)) == 0) {
      r.timed_out = true;
      return r;
    }
  }
  return r;
}

}  // namespace

ReadResult read_some(int fd, size_t bytes, std::chrono::milliseconds timeout) {
  return read_until(fd, bytes, timeout);
}

ReadResult read_to_end(int fd, std::chrono::milliseconds timeout) {
  return read_until(fd, SIZE_MAX, timeout);
}

bool write_all(int fd, const std::string& data, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  size_t done = 0;
  while (done < data.size()) {
    const ssize_t k =
        ::send(fd, data.data() + done, data.size() - done, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (k > 0) {
      done += static_cast<size_t>(k);
      continue;
    }
    if (k < 0 && errno != EAGAIN) return false;
    pollfd p{fd, POLLOUT, 0};
    if (remaining_ms(deadline) == 0 || ::poll(&p, 1, remaining_ms(deadline)) == 0) return false;
  }
  return true;
}

bool echo_roundtrip(int fd, const std::string& text) {
  if (!write_all(fd, text)) return false;
  return read_some(fd, text.size()).data == text;
}

std::string scrape(const seamless::testing::NetNamespace& ns, uint16_t port) {
  UniqueFd fd;
  {
    seamless::testing::InNetns in(ns);
    fd.reset(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  }
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) return "";
  if (!write_all(fd.get(), "GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")) return "";
  const ReadResult r = read_to_end(fd.get(), std::chrono::seconds(5));
  const size_t body = r.data.find("\r\n\r\n");
  return body == std::string::npos ? "" : r.data.substr(body + 4);
}

std::optional<double> metric_value(const std::string& page, const std::string& name,
                                   const std::string& label_a, const std::string& label_b) {
  std::istringstream lines(page);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.rfind(name + "{", 0) != 0) continue;
    if (line.find(label_a) == std::string::npos) continue;
    if (!label_b.empty() && line.find(label_b) == std::string::npos) continue;
    return std::stod(line.substr(line.rfind(' ') + 1));
  }
  return std::nullopt;
}

}  // namespace seamless::proxy::testing
