#include "tests/integration/proxy/stream_client.h"

#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>

#include "tests/integration/support/tcp.h"

namespace seamless::proxy::testing {

using seamless::testing::send_stream;
using seamless::testing::stream_byte;
using seamless::testing::wait_until;

::testing::AssertionResult send_more(Client& c, uint64_t bytes) {
  const uint64_t target = c.out.sent + bytes;
  long rc = 0;
  const bool sent = wait_until(
      [&] {
        rc = send_stream(c.fd.get(), c.out, target);
        return rc < 0 || c.out.sent == target;
      },
      std::chrono::seconds(60));
  if (rc < 0) return ::testing::AssertionFailure() << "send: " << std::strerror(int(-rc));
  if (!sent) return ::testing::AssertionFailure() << "sent " << c.out.sent << " of " << target;
  return ::testing::AssertionSuccess();
}

namespace {

// Reads what is there, up to `target` in all, each byte checked: "" or what went wrong.
std::string receive_up_to(Client& c, uint64_t target) {
  uint8_t buf[65536];
  while (c.in.received < target) {
    const size_t want = size_t(std::min<uint64_t>(sizeof(buf), target - c.in.received));
    const ssize_t n = ::recv(c.fd.get(), buf, want, MSG_DONTWAIT);
    if (n < 0 && errno == EAGAIN) return "";
    if (n < 0) return std::string("recv: ") + std::strerror(errno);
    if (n == 0) return "EOF";
    for (ssize_t i = 0; i < n; ++i) {
      if (buf[i] != stream_byte(c.in.seed, c.in.received + uint64_t(i))) {
        return "byte mismatch at offset " + std::to_string(c.in.received + uint64_t(i));
      }
    }
    c.in.received += uint64_t(n);
  }
  return "";
}

}  // namespace

::testing::AssertionResult receive_more(Client& c, uint64_t bytes, bool then_eof) {
  const uint64_t target = c.in.received + bytes;
  std::string error;
  wait_until(
      [&] {
        error = receive_up_to(c, target);
        return c.in.received == target || !error.empty();
      },
      std::chrono::seconds(60));
  if (!error.empty() || c.in.received < target) {
    return ::testing::AssertionFailure() << (error.empty() ? "timed out" : error) << " after "
                                         << c.in.received << " bytes, wanted " << target;
  }
  if (!then_eof) return ::testing::AssertionSuccess();
  char byte = 0;
  ssize_t n = -1;
  wait_until([&] {
    n = ::recv(c.fd.get(), &byte, 1, MSG_DONTWAIT);
    return n >= 0 || errno != EAGAIN;
  });
  if (n == 0) return ::testing::AssertionSuccess();
  std::string instead = "timed out";
  if (n > 0) instead = "more data";
  if (n < 0 && errno != EAGAIN) instead = std::strerror(errno);
  return ::testing::AssertionFailure() << "no EOF after " << target << " bytes: " << instead;
}

::testing::AssertionResult stall(Client& c) {
  auto last_progress = std::chrono::steady_clock::now();
  const auto deadline = last_progress + std::chrono::seconds(60);
  while (std::chrono::steady_clock::now() - last_progress < std::chrono::seconds(1)) {
    if (std::chrono::steady_clock::now() > deadline) {
      return ::testing::AssertionFailure() << "still sending after 60 s";
    }
    const long n = send_stream(c.fd.get(), c.out, uint64_t{1} << 40);
    if (n < 0) return ::testing::AssertionFailure() << "send: " << std::strerror(int(-n));
    if (n > 0) {
      last_progress = std::chrono::steady_clock::now();
      continue;
    }
    pollfd p{c.fd.get(), POLLOUT, 0};
    ::poll(&p, 1, 50);
  }
  return ::testing::AssertionSuccess();
}

::testing::AssertionResult resume(Client& c) {
  if (auto r = receive_more(c, c.out.sent - c.in.received, false); !r) return r;
  if (auto r = send_more(c, kMiB); !r) return r;
  return receive_more(c, kMiB, false);
}

}  // namespace seamless::proxy::testing
