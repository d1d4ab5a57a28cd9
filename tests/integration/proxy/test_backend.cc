#include "tests/integration/proxy/test_backend.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include "tests/integration/support/streams.h"
#include "tests/integration/support/tcp.h"

namespace seamless::proxy::testing {

using seamless::testing::StreamState;

struct TestBackend::Connection {
  UniqueFd fd;
  std::string header;  // bytes of a PROXY header still being parsed
  bool header_done = true;
  std::string pending;  // echo bytes not yet written back
  StreamState greeting;
  StreamState in;
  bool peer_eof = false;
  bool shut = false;
  bool dead = false;
  bool got_data = false;
};

namespace {

constexpr size_t kMaxPending = 4 << 20;  // stop reading while this much echo is unsent
const std::string kV2Signature("\r\n\r\n\0\r\nQUIT\n", 12);

std::string v2_to_text(const std::string& h) {
  const auto* b = reinterpret_cast<const uint8_t*>(h.data());
  const bool v4 = b[13] == 0x11;
  const size_t a = v4 ? 4 : 16;
  char src[INET6_ADDRSTRLEN], dst[INET6_ADDRSTRLEN];
  inet_ntop(v4 ? AF_INET : AF_INET6, b + 16, src, sizeof(src));
  inet_ntop(v4 ? AF_INET : AF_INET6, b + 16 + a, dst, sizeof(dst));
  const unsigned sport = b[16 + 2 * a] << 8 | b[17 + 2 * a];
  const unsigned dport = b[18 + 2 * a] << 8 | b[19 + 2 * a];
  return std::string("v2 PROXY ") + (v4 ? "TCP4 " : "TCP6 ") + src + " " + dst + " " +
         std::to_string(sport) + " " + std::to_string(dport);
}

}  // namespace

TestBackend::TestBackend(const seamless::testing::NetNamespace* ns, const std::string& host,
                         uint16_t port, BackendBehaviour behaviour)
    : ns_(ns), host_(host), port_(port), behaviour_(behaviour) {
  listener_ = make_listener();
  thread_ = std::thread([this] { run(); });
}

TestBackend::~TestBackend() {
  stop_ = true;
  thread_.join();
}

UniqueFd TestBackend::make_listener() const {
  std::unique_ptr<seamless::testing::InNetns> in;
  if (ns_ != nullptr) in = std::make_unique<seamless::testing::InNetns>(*ns_);
  UniqueFd fd = seamless::testing::listen_on(host_, port_);
  seamless::testing::set_nonblocking(fd.get());
  return fd;
}

void TestBackend::kill(bool abortive) {
  std::lock_guard lock(mu_);
  listener_.reset();
  for (auto& c : connections_) {
    if (abortive) {
      const linger rst{1, 0};
      ::setsockopt(c->fd.get(), SOL_SOCKET, SO_LINGER, &rst, sizeof(rst));
    }
  }
  open_ -= connections_.size();
  connections_.clear();
}

void TestBackend::close_listener() {
  std::lock_guard lock(mu_);
  listener_.reset();
}

void TestBackend::reopen_listener() {
  UniqueFd fd = make_listener();
  std::lock_guard lock(mu_);
  listener_ = std::move(fd);
}

std::vector<std::string> TestBackend::headers() const {
  std::lock_guard lock(mu_);
  return headers_;
}

std::vector<std::string> TestBackend::errors() const {
  std::lock_guard lock(mu_);
  return errors_;
}

void TestBackend::run() {
  std::vector<pollfd> fds;
  while (!stop_) {
    std::unique_lock lock(mu_);
    fds.clear();
    fds.push_back({listener_.get(), POLLIN, 0});
    for (auto& c : connections_) {
      short events = 0;
      if (!c->peer_eof && c->pending.size() < kMaxPending) events |= POLLIN;
      const bool greeting_left = c->greeting.sent < behaviour_.greeting_bytes;
      if (!c->pending.empty() || greeting_left) events |= POLLOUT;
      fds.push_back({c->fd.get(), events, 0});
    }
    lock.unlock();
    ::poll(fds.data(), fds.size(), 10);
    lock.lock();
    if (fds[0].fd == listener_.get() && (fds[0].revents & POLLIN)) {
      UniqueFd fd(::accept4(listener_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
      if (fd) {
        auto c = std::make_unique<Connection>();
        c->fd = std::move(fd);
        c->header_done = !behaviour_.expect_proxy_header;
        c->greeting.seed = behaviour_.greeting_seed;
        c->in.seed = behaviour_.verify_seed;
        connections_.push_back(std::move(c));
        ++accepted_;
        ++open_;
      }
    }
    // Connections may have changed under kill(): serve only those polled, by fd.
    for (size_t i = 1; i < fds.size(); ++i) {
      for (auto& c : connections_) {
        if (c->fd.get() == fds[i].fd && fds[i].revents != 0) serve(*c, fds[i].revents);
      }
    }
    std::erase_if(connections_, [this](const auto& c) {
      if (c->dead) --open_;
      return c->dead;
    });
  }
}

void TestBackend::serve(Connection& c, short revents) {
  if (!c.peer_eof && (revents & (POLLIN | POLLERR | POLLHUP))) {
    char buf[65536];
    const ssize_t n = ::recv(c.fd.get(), buf, sizeof(buf), MSG_DONTWAIT);
    if (n > 0) {
      on_data(c, buf, static_cast<size_t>(n));
    } else if (n == 0) {
      c.peer_eof = true;
      ++eofs_;
    } else if (errno != EAGAIN) {
      // Health check probes (no data, closed with an RST) are not what tests count.
      if (c.got_data) ++resets_;
      c.dead = true;
      return;
    }
  }
  if (c.greeting.sent < behaviour_.greeting_bytes) {
    if (seamless::testing::send_stream(c.fd.get(), c.greeting, behaviour_.greeting_bytes) < 0) {
      c.dead = true;  // the peer is gone (health check probes close with an RST)
      return;
    }
    if (c.greeting.sent == behaviour_.greeting_bytes && behaviour_.close_after_greeting) {
      ::shutdown(c.fd.get(), SHUT_WR);
      c.shut = true;
    }
  } else if (!c.pending.empty()) {
    const ssize_t k =
        ::send(c.fd.get(), c.pending.data(), c.pending.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
    if (k > 0) c.pending.erase(0, static_cast<size_t>(k));
    if (k < 0 && errno != EAGAIN) {
      ++resets_;
      c.dead = true;
      return;
    }
  }
  // The client's FIN is answered once everything owed to it is out.
  const bool owed = !c.pending.empty() || c.greeting.sent < behaviour_.greeting_bytes;
  if (c.peer_eof && !owed && !c.shut) {
    ::shutdown(c.fd.get(), SHUT_WR);
    c.shut = true;
  }
  if (c.peer_eof && c.shut) c.dead = true;
}

void TestBackend::on_data(Connection& c, const char* data, size_t n) {
  if (!c.got_data) ++data_connections_;
  c.got_data = true;
  if (!c.header_done) {
    c.header.append(data, n);
    if (!parse_header(c)) return;
    const std::string rest = std::move(c.header);
    c.header.clear();
    if (!rest.empty()) on_data(c, rest.data(), rest.size());
    return;
  }
  bytes_received_ += n;
  if (behaviour_.echo) {
    c.pending.append(data, n);
    return;
  }
  for (size_t i = 0; i < n; ++i) {
    if (static_cast<uint8_t>(data[i]) !=
        seamless::testing::stream_byte(c.in.seed, c.in.received + i)) {
      errors_.push_back("backend: byte mismatch at " + std::to_string(c.in.received + i));
      c.dead = true;
      return;
    }
  }
  c.in.received += n;
}

// True once a whole header was taken off c.header (what follows stays in c.header).
bool TestBackend::parse_header(Connection& c) {
  std::string& h = c.header;
  if (!h.empty() && h[0] == 'P') {
    const size_t end = h.find("\r\n");
    if (end == std::string::npos) return false;
    headers_.push_back("v1 " + h.substr(0, end));
    h.erase(0, end + 2);
  } else {
    if (h.size() < 16) return false;
    if (h.compare(0, 12, kV2Signature) != 0) {
      errors_.push_back("backend: no PROXY header");
      c.dead = true;
      return false;
    }
    const size_t len = static_cast<uint8_t>(h[14]) << 8 | static_cast<uint8_t>(h[15]);
    if (h.size() < 16 + len) return false;
    headers_.push_back(v2_to_text(h.substr(0, 16 + len)));
    h.erase(0, 16 + len);
  }
  c.header_done = true;
  return true;
}

}  // namespace seamless::proxy::testing
