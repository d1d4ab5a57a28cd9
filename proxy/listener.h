// Listener: one service's listening socket, watched by a uv_poll_t, accepting until
// EAGAIN on each readable event and handing every new fd to the worker.
//
// Running out of fds (EMFILE/ENFILE, also ENOBUFS/ENOMEM) must not make the loop spin
// on a listener that stays readable: accepting pauses for kPauseMs on a timer, and one
// line per episode says so with the fd limit. The pending connections wait in the
// backlog meanwhile. (A pair can still fail for want of an fd for its backend socket;
// that pair alone is closed, with its own log line.)
//
// The fd may come from open_listener() or from elsewhere (a keeper owns listeners and
// passes them on); release() gives it back after stop().
#pragma once

#include <uv.h>

#include <cstdint>
#include <functional>
#include <string>

#include "base/result.h"
#include "base/unique_fd.h"
#include "proxy/logging.h"
#include "proxy/polled_socket.h"
#include "proxy/uv_handle.h"

namespace seamless::proxy {

class Listener {
 public:
  static constexpr uint64_t kPauseMs = 100;
  static constexpr uint64_t kEpisodeGapMs = 1000;
  // Called for each accepted connection (non-blocking, close-on-exec).
  using AcceptFn = std::function<void(UniqueFd)>;

  Listener(uv_loop_t* loop, std::string service, UniqueFd fd, AcceptFn on_accept, Logger log);
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;

  Status start();
  // Stops accepting, also between two accepts of one readable event (so an AcceptFn may
  // call it); the socket stays open (its backlog keeps queueing SYNs).
  void stop();
  // After stop(): the listening fd, for the next owner.
  UniqueFd release();
  int fd() const { return fd_before_start_ ? fd_before_start_.get() : socket_.fd(); }

 private:
  static void on_readable(uv_poll_t* handle, int status, int events);
  static void on_resume(uv_timer_t* timer);
  void accept_all();
  void pause(int err);

  uv_loop_t* loop_;
  std::string service_;
  PolledSocket socket_;
  UniqueFd fd_before_start_;
  UvHandle<uv_timer_t> pause_timer_;
  AcceptFn on_accept_;
  Logger log_;
  bool accepting_ = false;      // between start() and stop()
  bool in_fd_episode_ = false;  // an fd shortage was logged
  uint64_t last_shortage_ms_ = 0;
};

}  // namespace seamless::proxy
