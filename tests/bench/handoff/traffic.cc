#include "tests/bench/handoff/traffic.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace seamless::bench {
namespace {

constexpr int64_t kTickNs = 1000000;  // pacing granularity: 1 ms
constexpr uint64_t kListenerTag = ~uint64_t{0};

}  // namespace

int64_t now_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

TrafficState::TrafficState(const TrafficOptions& options)
    : options_(options),
      sent_at_(new std::atomic<int64_t>[2 * options.total() * options.ring]()),
      delivered_(new std::atomic<uint64_t>[2 * options.total()]()),
      last_rx_(new std::atomic<int64_t>[2 * options.total()]()) {}

std::atomic<int64_t>& TrafficState::sent_at(Direction d, size_t conn, uint64_t chunk_index) {
  return sent_at_[slot(d, conn) * options_.ring + chunk_index % options_.ring];
}

TrafficSide::TrafficSide(Role role, TrafficState& state)
    : role_(role),
      state_(state),
      epoll_(::epoll_create1(EPOLL_CLOEXEC)),
      conns_(state.options().total()),
      stats_(state.options().total()) {
  if (!epoll_) throw std::runtime_error(std::string("epoll_create1: ") + std::strerror(errno));
  for (size_t i = 0; i < conns_.size(); ++i) {
    if (state.options().is_probe(i)) probes_.push_back(i);
  }
}

TrafficSide::~TrafficSide() {
  state_.stop = true;
  join();
}

void TrafficSide::add_connection(UniqueFd fd, size_t index) {
  set_nodelay(fd.get());
  auto c = std::make_unique<Conn>();
  c->fd = std::move(fd);
  c->index = int64_t(index);
  c->out.seed = stream_seed(index, out_dir());
  c->in.seed = stream_seed(index, in_dir());
  epoll_event ev{EPOLLIN, {.ptr = c.get()}};
  if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, c->fd.get(), &ev) != 0) {
    throw std::runtime_error(std::string("epoll_ctl: ") + std::strerror(errno));
  }
  conns_[index] = std::move(c);
  ++identified_;
}

void TrafficSide::set_listener(UniqueFd fd) {
  listener_ = std::move(fd);
  epoll_event ev{EPOLLIN, {.u64 = kListenerTag}};
  if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, listener_.get(), &ev) != 0) {
    throw std::runtime_error(std::string("epoll_ctl: ") + std::strerror(errno));
  }
}

void TrafficSide::set_nodelay(int fd) const {
  if (!state_.options().nodelay) return;
  const int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

void TrafficSide::start() { thread_ = std::thread([this] { run(); }); }

void TrafficSide::join() {
  if (thread_.joinable()) thread_.join();
}

std::vector<std::string> TrafficSide::errors() {
  std::lock_guard lock(errors_mu_);
  return errors_;
}

void TrafficSide::fail(Conn& c, const std::string& what) {
  c.dead = true;
  ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, c.fd.get(), nullptr);
  ++error_count_;
  std::lock_guard lock(errors_mu_);
  if (errors_.size() < 20) {
    errors_.push_back(std::string(role_ == Role::kClient ? "client" : "backend") + " side, conn " +
                      std::to_string(c.index) + ": " + what);
  }
}

void TrafficSide::run() {
  const size_t slots = size_t(std::max(1, state_.options().interval_ms));
  epoll_event events[256];
  int64_t next_tick = 0;
  uint64_t tick = 0;
  while (!state_.stop.load(std::memory_order_relaxed)) {
    const int ready = ::epoll_wait(epoll_.get(), events, 256, 1);
    for (int i = 0; i < ready; ++i) {
      if (events[i].data.u64 == kListenerTag) {
        accept_all();
        continue;
      }
      Conn& c = *static_cast<Conn*>(events[i].data.ptr);
      if (c.dead) continue;
      if (c.index < 0) {
        read_header(c);
      } else {
        on_readable(c);
      }
    }
    const int64_t start = state_.start_ns.load(std::memory_order_relaxed);
    if (start == 0) continue;
    if (next_tick == 0) next_tick = start;
    const int64_t now = now_ns();
    // A late wake-up catches up on every slot it missed, so each connection keeps
    // its rate; a tick never sends more than one chunk per connection.
    for (size_t k = 0; now >= next_tick && k < slots; ++k) {
      send_slot(tick % slots, now);
      send_probes(tick, now);
      ++tick;
      next_tick += kTickNs;
    }
    if (now >= next_tick) next_tick = now + kTickNs;  // more than a whole interval late
  }
}

void TrafficSide::accept_all() {
  for (;;) {
    UniqueFd fd(::accept4(listener_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
    if (!fd) return;
    set_nodelay(fd.get());
    auto c = std::make_unique<Conn>();
    c->fd = std::move(fd);
    epoll_event ev{EPOLLIN, {.ptr = c.get()}};
    if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, c->fd.get(), &ev) != 0) continue;
    pending_.push_back(std::move(c));
  }
}

// A health check connects and closes without a header: dropped quietly.
void TrafficSide::read_header(Conn& c) {
  const ssize_t k = ::recv(c.fd.get(), c.header + c.header_got, sizeof(c.header) - c.header_got,
                           MSG_DONTWAIT);
  if (k < 0 && errno == EAGAIN) return;
  if (k <= 0) {
    ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, c.fd.get(), nullptr);
    c.dead = true;
    c.fd.reset();
    return;
  }
  c.header_got += size_t(k);
  if (c.header_got < sizeof(c.header)) return;
  uint32_t index = 0;
  std::memcpy(&index, c.header, sizeof(index));
  auto it = std::find_if(pending_.begin(), pending_.end(),
                         [&](const std::unique_ptr<Conn>& p) { return p.get() == &c; });
  if (index >= conns_.size() || conns_[index] || it == pending_.end()) {
    fail(c, "bad index header " + std::to_string(index));
    return;
  }
  c.index = index;
  c.out.seed = stream_seed(index, out_dir());
  c.in.seed = stream_seed(index, in_dir());
  conns_[index] = std::move(*it);
  pending_.erase(it);
  ++identified_;
}

void TrafficSide::on_readable(Conn& c) {
  const uint64_t before = c.in.received;
  std::string error;
  const long got = testing::receive_stream(c.fd.get(), c.in, &error);
  if (got > 0) {
    const int64_t t = now_ns();
    const size_t index = size_t(c.index);
    DirectionStats& s = stats_[index];
    const int p = state_.phase.load(std::memory_order_relaxed);
    if (c.last_rx != 0 && t - c.last_rx > s.max_gap_ns[p]) {
      s.max_gap_ns[p] = t - c.last_rx;
      s.max_gap_end_ns[p] = t;
    }
    const int64_t sent =
        state_.sent_at(in_dir(), index, before / state_.options().chunk).load(std::memory_order_acquire);
    if (sent != 0) s.max_latency_ns[p] = std::max(s.max_latency_ns[p], t - sent);
    ++s.deliveries[p];
    s.bytes = c.in.received;
    c.last_rx = t;
    state_.delivered(in_dir(), index).store(c.in.received, std::memory_order_release);
    state_.last_delivery(in_dir(), index).store(t, std::memory_order_release);
  }
  if (!error.empty()) fail(c, error);
}

void TrafficSide::send_slot(size_t slot, int64_t now) {
  const size_t slots = size_t(std::max(1, state_.options().interval_ms));
  for (size_t i = slot; i < conns_.size(); i += slots) {
    if (!state_.options().is_probe(i)) send_one(i, now);
  }
}

// The probes spread over their own (shorter) interval, like the bulk over theirs.
void TrafficSide::send_probes(uint64_t tick, int64_t now) {
  const uint64_t slots = uint64_t(std::max(1, state_.options().probe_interval_ms));
  for (size_t j = 0; j < probes_.size(); ++j) {
    if (j % slots == tick % slots) send_one(probes_[j], now);
  }
}

void TrafficSide::send_one(size_t i, int64_t now) {
  const TrafficOptions& o = state_.options();
  const uint64_t cap = (o.ring - 2) * o.chunk;
  Conn* c = conns_[i].get();
  if (c == nullptr || c->dead) return;
  const uint64_t delivered = state_.delivered(out_dir(), i).load(std::memory_order_acquire);
  if (c->out_target - delivered <= cap) {
    state_.sent_at(out_dir(), i, c->out_target / o.chunk).store(now, std::memory_order_release);
    c->out_target += o.chunk;
  }
  // Also retries what an earlier tick could not send (a full send buffer).
  const long sent = testing::send_stream(c->fd.get(), c->out, c->out_target);
  if (sent < 0) fail(*c, std::string("send: ") + std::strerror(int(-sent)));
}

}  // namespace seamless::bench
