#include "tests/integration/support/streams.h"

#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

namespace seamless::testing {

long send_stream(int fd, StreamState& s, uint64_t target, size_t budget) {
  if (s.sent >= target) return 0;
  uint8_t buf[65536];
  long total = 0;
  while (s.sent < target && static_cast<size_t>(total) < budget) {
    const size_t n = static_cast<size_t>(std::min<uint64_t>(sizeof(buf), target - s.sent));
    for (size_t i = 0; i < n; ++i) buf[i] = stream_byte(s.seed, s.sent + i);
    const ssize_t k = ::send(fd, buf, n, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (k < 0) return errno == EAGAIN ? total : -errno;
    s.sent += static_cast<uint64_t>(k);
    total += k;
    if (static_cast<size_t>(k) < n) break;
  }
  return total;
}

long receive_stream(int fd, StreamState& s, std::string* error) {
  uint8_t buf[65536];
  long total = 0;
  for (;;) {
    const ssize_t k = ::recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
    if (k < 0) {
      if (errno == EAGAIN) return total;
      *error = std::string("recv: ") + std::strerror(errno) + " after " +
               std::to_string(s.received) + " bytes";
      return total;
    }
    if (k == 0) {
      *error = "EOF after " + std::to_string(s.received) + " bytes";
      return total;
    }
    for (ssize_t i = 0; i < k; ++i) {
      if (buf[i] != stream_byte(s.seed, s.received + static_cast<uint64_t>(i))) {
        *error = "byte mismatch at offset " + std::to_string(s.received + static_cast<uint64_t>(i));
        return total;
      }
    }
    s.received += static_cast<uint64_t>(k);
    total += k;
  }
}

void pump_for(std::vector<Endpoints>& ends, uint64_t target, std::chrono::milliseconds duration,
              std::vector<std::string>* errors) {
  const auto until = std::chrono::steady_clock::now() + duration;
  std::vector<pollfd> fds(ends.size());
  while (std::chrono::steady_clock::now() < until) {
    for (size_t i = 0; i < ends.size(); ++i) fds[i] = {ends[i].fd, POLLIN | POLLOUT, 0};
    ::poll(fds.data(), fds.size(), 5);
    for (size_t i = 0; i < ends.size(); ++i) {
      if (ends[i].fd < 0) continue;
      std::string error;
      receive_stream(ends[i].fd, ends[i].in, &error);
      if (send_stream(ends[i].fd, ends[i].out, target) < 0) error = "send failed";
      if (!error.empty()) errors->push_back("end " + std::to_string(i) + ": " + error);
    }
    if (!errors->empty()) return;
  }
}

StreamPump::StreamPump(std::vector<Endpoints> ends, uint64_t target)
    : ends_(std::move(ends)), target_(target), thread_([this] { run(); }) {}

StreamPump::~StreamPump() { stop(); }

void StreamPump::stop() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
}

std::vector<std::string> StreamPump::errors() {
  std::lock_guard lock(mu_);
  return errors_;
}

std::vector<Endpoints> StreamPump::progress() {
  std::lock_guard lock(mu_);
  return ends_;
}

void StreamPump::run() {
  std::vector<pollfd> fds(ends_.size());
  std::vector<bool> failed(ends_.size(), false);
  while (!stop_) {
    for (size_t i = 0; i < ends_.size(); ++i) {
      const bool more = ends_[i].out.sent < target_;
      fds[i] = {failed[i] ? -1 : ends_[i].fd, static_cast<short>(POLLIN | (more ? POLLOUT : 0)),
                0};
    }
    ::poll(fds.data(), fds.size(), 20);
    std::lock_guard lock(mu_);
    for (size_t i = 0; i < ends_.size(); ++i) {
      if (failed[i] || fds[i].revents == 0) continue;
      std::string error;
      receive_stream(ends_[i].fd, ends_[i].in, &error);
      const long sent = send_stream(ends_[i].fd, ends_[i].out, target_);
      if (sent < 0) error = std::string("send: ") + std::strerror(static_cast<int>(-sent));
      if (!error.empty()) {
        failed[i] = true;
        errors_.push_back("connection " + std::to_string(i) + ": " + error);
      }
    }
  }
}

}  // namespace seamless::testing
