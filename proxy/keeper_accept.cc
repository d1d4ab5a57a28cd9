// Keeper: accepting clients and passing them to the worker. See keeper.h.
#include <sys/resource.h>

#include <algorithm>
#include <chrono>

#include "proxy/keeper.h"
#include "proxy/pair.h"

namespace seamless::proxy {
namespace {

size_t fd_limit() {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur == RLIM_INFINITY) return 1 << 20;
  return size_t(limit.rlim_cur);
}

// Fds kept for everything but proxied sockets: logs, the channel, memfds, health
// checks, /metrics connections. A tiny limit (a test) keeps half.
size_t fd_reserve(size_t limit) { return std::min<size_t>(100, limit / 2); }

}  // namespace

Status Keeper::size_fd_cap() {
  const size_t limit = fd_limit();
  max_pairs_ = (limit - fd_reserve(limit)) / 2;
  if (max_pairs_ == 0) {
    return Error::logic("the open-files limit " + std::to_string(limit) +
                        " leaves no room for connections");
  }
  return {};
}

// Not accepting yet: update_accepting() starts it once a worker serves.
void Keeper::add_listener(const std::string& service, UniqueFd fd, const std::string& address) {
  listeners_[service] = std::make_unique<Listener>(
      &loop_, service, std::move(fd),
      [this, service](UniqueFd client) { accept_client(service, std::move(client)); }, log_);
  listener_addresses_[service] = address;
}

void Keeper::watch_channel(int events) {
  if (!worker_ || worker_->channel_eof || worker_->channel_events == events) return;
  if (uv_poll_start(worker_->channel_poll.get(), events, &Keeper::on_channel) == 0) {
    worker_->channel_events = events;
  }
}

bool Keeper::serving() const {
  return worker_ && worker_->ready && running_ == Action::kNone && !stopping_;
}

void Keeper::update_accepting() {
  const bool full = pairs_.size() >= max_pairs_;
  // One line per episode: it ends once well below the cap, not at each close; and no
  // new one within a second of the last, when clients keep coming and going around it.
  const auto now = std::chrono::steady_clock::now();
  if (full && !fd_cap_episode_) {
    fd_cap_episode_ = true;
    fd_cap_logged_ = now - last_fd_cap_log_ >= std::chrono::seconds(1);
    if (fd_cap_logged_) {
      last_fd_cap_log_ = now;
      log_->error(
          "keeper: {} connections held, the most the open-files limit {} allows ((limit - {}) "
          "/ 2: each socket is open in the keeper and in the worker); new connections wait in "
          "the listen backlog until some close. Raise LimitNOFILE / ulimit -n to serve more.",
          pairs_.size(), fd_limit(), fd_reserve(fd_limit()));
    }
  } else if (fd_cap_episode_ && pairs_.size() < max_pairs_ - max_pairs_ / 10) {
    fd_cap_episode_ = false;
    if (fd_cap_logged_) {
      log_->info("keeper: {} connections held, below the open-files cap again", pairs_.size());
    }
  }
  at_fd_cap_ = full;
  const bool accept = serving() && unsent_clients_.empty() && !full;
  for (auto& [service, listener] : listeners_) {
    if (!accept) {
      listener->stop();
    } else if (Status s = listener->start(); !s) {
      log_->error("keeper: {}", s.error().message);
    }
  }
}

void Keeper::accept_client(const std::string& service, UniqueFd fd) {
  const int64_t now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                             std::chrono::system_clock::now().time_since_epoch())
                             .count();
  unsent_clients_.push_back(pairs_.hold_client(std::move(fd), accepted_client_record(service, now_ms)));
  send_unsent_clients();
  if (pairs_.size() >= max_pairs_) update_accepting();
}

// In order, without ever waiting on the worker: a keeper blocked in a send would stop
// reading the worker's messages, and the worker may be blocked sending them.
void Keeper::send_unsent_clients() {
  const bool was_held_back = worker_ && worker_->channel_events != UV_READABLE;
  while (!unsent_clients_.empty() && serving()) {
    const uint64_t id = unsent_clients_.front();
    auto it = pairs_.pairs().find(id);
    if (it == pairs_.pairs().end()) {
      unsent_clients_.pop_front();
      continue;
    }
    const int fd = it->second.client.get();
    const Status sent = worker_->channel.try_send(
        make_message(MessageType::kClientAccepted, id, it->second.record),
        std::span<const int>(&fd, 1));
    if (!sent) {
      // Full: no more accepts until the worker has read (the channel turns writable).
      // Broken: the worker is dying; its successor adopts every held client.
      if (sent.error().code == EAGAIN) {
        watch_channel(UV_READABLE | UV_WRITABLE);
      } else {
        log_->error("keeper: {}; client {} waits for the next worker", sent.error().message, id);
      }
      update_accepting();
      return;
    }
    unsent_clients_.pop_front();
  }
  if (was_held_back && unsent_clients_.empty()) {
    watch_channel(UV_READABLE);
    update_accepting();
  }
}

}  // namespace seamless::proxy
