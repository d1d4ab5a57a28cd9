#include "proxy/listener.h"

#include <sys/resource.h>
#include <sys/socket.h>

#include <cerrno>

#include "proxy/sockets.h"

namespace seamless::proxy {
namespace {

// Errors that say "no resources for one more socket right now": retrying at once
// would fail the same way while the listener stays readable.
bool out_of_resources(int err) {
  return err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM;
}

std::string fd_limit_text() {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) return "unknown";
  return std::to_string(limit.rlim_cur);
}

}  // namespace

Listener::Listener(uv_loop_t* loop, std::string service, UniqueFd fd, AcceptFn on_accept,
                   Logger log)
    : loop_(loop),
      service_(std::move(service)),
      fd_before_start_(std::move(fd)),
      on_accept_(std::move(on_accept)),
      log_(std::move(log)) {}

Status Listener::start() {
  if (fd_before_start_) {
    const int rc = socket_.open(loop_, std::move(fd_before_start_), this);
    if (rc != 0) return Error{-rc, "service " + service_ + ": poll listener: " + uv_strerror(rc)};
    const int timer_rc = pause_timer_.init(uv_timer_init(loop_, pause_timer_.get()));
    if (timer_rc != 0) return Error{-timer_rc, "timer: " + std::string(uv_strerror(timer_rc))};
    pause_timer_.get()->data = this;
  }
  const int rc = socket_.watch(UV_READABLE, &Listener::on_readable);
  if (rc != 0) return Error{-rc, "service " + service_ + ": poll listener: " + uv_strerror(rc)};
  accepting_ = true;
  return {};
}

void Listener::stop() {
  accepting_ = false;
  socket_.watch(0, &Listener::on_readable);
  if (pause_timer_.initialized()) uv_timer_stop(pause_timer_.get());
}

UniqueFd Listener::release() {
  pause_timer_.close(nullptr);
  if (fd_before_start_) return std::move(fd_before_start_);
  return socket_.detach();
}

void Listener::on_readable(uv_poll_t* handle, int status, int /*events*/) {
  auto* self = static_cast<Listener*>(handle->data);
  if (status < 0) {
    self->socket_.forget_events();
    self->log_->error("service {}: listener poll error: {}", self->service_, uv_strerror(status));
    self->pause(0);
    return;
  }
  self->accept_all();
}

void Listener::on_resume(uv_timer_t* timer) {
  auto* self = static_cast<Listener*>(timer->data);
  self->socket_.watch(UV_READABLE, &Listener::on_readable);
}

void Listener::accept_all() {
  while (accepting_) {
    UniqueFd fd(::accept4(socket_.fd(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
    if (fd) {
      on_accept_(std::move(fd));
      continue;
    }
    const int err = errno;
    if (err == EAGAIN || err == EWOULDBLOCK) return;
    if (out_of_resources(err)) {
      pause(err);
      return;
    }
    // ECONNABORTED, EPROTO, EPERM (firewall), EINTR: that one connection is gone; go on.
    log_->debug("service {}: accept: {}", service_, errno_text(err));
  }
}

void Listener::pause(int err) {
  // One line per episode: an episode lasts while shortages come less than
  // kEpisodeGapMs apart (accepts that succeed in between, e.g. because a failing pair
  // gave an fd back, do not end it).
  const uint64_t now = uv_now(loop_);
  if (err != 0 && (!in_fd_episode_ || now - last_shortage_ms_ > kEpisodeGapMs)) {
    const char* what = err == EMFILE || err == ENFILE ? "too many open files" : "out of memory";
    log_->error("accept: {} (limit {}); pausing accepts on service {}", what, fd_limit_text(),
                service_);
  }
  if (err != 0) {
    in_fd_episode_ = true;
    last_shortage_ms_ = now;
  }
  socket_.watch(0, &Listener::on_readable);
  uv_timer_start(pause_timer_.get(), &Listener::on_resume, kPauseMs, 0);
}

}  // namespace seamless::proxy
