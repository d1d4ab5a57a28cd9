// PolledSocket: a socket fd and the one uv_poll_t that watches it (DESIGN §2, §3).
//
// Order matters when another process (the keeper) holds a duplicate of the fd: epoll
// watches the open file description, not the fd, so the poll handle must be closed
// before the fd. Destroying a PolledSocket therefore closes the poll handle and closes
// the fd only in the handle's close callback. detach() closes the handle and gives the
// fd back instead (quiesce: the fd moves on to the next owner).
#pragma once

#include <uv.h>

#include <functional>
#include <memory>
#include <utility>

#include "base/unique_fd.h"
#include "proxy/uv_handle.h"

namespace seamless::proxy {

class PolledSocket {
 public:
  PolledSocket() = default;
  ~PolledSocket() { close(nullptr); }
  PolledSocket(PolledSocket&&) noexcept = default;
  PolledSocket& operator=(PolledSocket&& other) noexcept {
    if (this != &other) {
      close(nullptr);
      fd_ = std::move(other.fd_);
      poll_ = std::move(other.poll_);
      events_ = std::exchange(other.events_, 0);
    }
    return *this;
  }

  // Takes the fd and registers a poll handle for it (no events yet). `data` is what
  // the poll callback finds in handle->data. Returns a libuv error (negative) or 0.
  int open(uv_loop_t* loop, UniqueFd fd, void* data) {
    fd_ = std::move(fd);
    poll_ = UvHandle<uv_poll_t>();
    const int rc = poll_.init(uv_poll_init_socket(loop, poll_.get(), fd_.get()));
    if (rc == 0) poll_.get()->data = data;
    events_ = 0;
    return rc;
  }

  int fd() const { return fd_.get(); }  // borrowed
  bool valid() const { return fd_.valid(); }
  uv_poll_t* handle() const { return poll_.get(); }
  int events() const { return events_; }

  // Watches exactly `events` (UV_READABLE | UV_WRITABLE; 0 stops). Every change costs
  // epoll_ctl calls, so an unchanged set is not passed to libuv again.
  int watch(int events, uv_poll_cb callback) {
    if (events == events_ || !poll_.initialized()) return 0;
    const int rc =
        events == 0 ? uv_poll_stop(poll_.get()) : uv_poll_start(poll_.get(), events, callback);
    if (rc == 0) events_ = events;
    return rc;
  }
  // libuv stopped the handle itself (it does so on POLLERR).
  void forget_events() { events_ = 0; }

  // Closes the poll handle, then the fd; `done` runs after both.
  void close(std::function<void()> done) {
    if (!poll_.initialized()) {
      fd_.reset();
      if (done) done();
      return;
    }
    auto fd = std::make_shared<UniqueFd>(std::move(fd_));
    events_ = 0;
    poll_.close([fd, done = std::move(done)] {
      fd->reset();
      if (done) done();
    });
  }

  // Closes the poll handle and returns the fd, still open. epoll forgets the fd at
  // once (uv_close removes it synchronously); the handle's memory goes on a later turn.
  UniqueFd detach() {
    events_ = 0;
    poll_.close(nullptr);
    return std::move(fd_);
  }

 private:
  UniqueFd fd_;
  UvHandle<uv_poll_t> poll_;
  int events_ = 0;
};

}  // namespace seamless::proxy
