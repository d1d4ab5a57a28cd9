// Worker: how it stops — drain (SIGTERM), quiesce (handoff), and closing the loop.
#include <csignal>

#include "proxy/worker.h"

namespace seamless::proxy {

void Worker::request_drain() { request(Request::kDrain); }
void Worker::request_quiesce() { request(Request::kQuiesce); }

void Worker::quiesce_now() {
  requested_.store(static_cast<int>(Request::kQuiesce));
  quiesce();
}

void Worker::request(Request r) {
  // Quiesce wins over drain: it must never be downgraded by a later drain request.
  int current = requested_.load();
  while (current < static_cast<int>(r) &&
         !requested_.compare_exchange_weak(current, static_cast<int>(r))) {
  }
  std::lock_guard lock(async_mu_);
  if (async_open_) uv_async_send(async_.get());
}

void Worker::on_async(uv_async_t* handle) {
  auto* self = static_cast<Worker*>(handle->data);
  switch (static_cast<Request>(self->requested_.load())) {
    case Request::kQuiesce:
      self->quiesce();
      break;
    case Request::kDrain:
      self->begin_drain("requested");
      break;
    case Request::kNone:
      break;
  }
}

void Worker::on_signal(uv_signal_t* handle, int signum) {
  auto* self = static_cast<Worker*>(handle->data);
  self->begin_drain(signum == SIGTERM ? "SIGTERM" : "SIGINT");
}

void Worker::on_drain_timeout(uv_timer_t* timer) {
  auto* self = static_cast<Worker*>(timer->data);
  self->log_->warn("drain timeout: closing {} remaining connections with FIN", self->pairs_.size());
  self->engine_->close_all_gracefully(CloseReason::kDrain);
  if (self->pairs_.empty()) self->finish();
}

void Worker::begin_drain(const char* why) {
  if (draining_ || finished_) return;
  draining_ = true;
  // Closing the listeners makes new connections fail at once instead of waiting in a
  // backlog that nobody will accept from.
  for (auto& listener : listeners_) {
    if (!listener) continue;
    listener->stop();
    listener->release().reset();
  }
  listeners_.clear();
  stop_checks();
  log_->info("{}: listeners closed; draining {} connections (drain_timeout {}ms)", why,
             pairs_.size(), config_.drain_timeout.count());
  if (pairs_.empty()) {
    finish();
    return;
  }
  uv_timer_start(drain_timer_.get(), &on_drain_timeout,
                 static_cast<uint64_t>(config_.drain_timeout.count()), 0);
}

void Worker::quiesce() {
  if (finished_) return;
  for (auto& listener : listeners_) {
    if (listener) listener->stop();
  }
  stop_checks();
  quiesced_ = true;
  if (options_.leave_after_quiesce) {  // does not return
    std::vector<repair::PairRecord> records = engine_->records();
    log_->info("quiesced: handing over {} pairs", records.size());
    options_.leave_after_quiesce(std::move(records));
  }
  detached_ = engine_->detach_all();
  log_->info("quiesced: handing over {} pairs", detached_.size());
  finish();
}

void Worker::stop_checks() {
  for (auto& checker : checkers_) checker->stop();
}

// Closes the worker's own handles; the loop returns once their close callbacks ran.
void Worker::finish() {
  if (finished_) return;
  finished_ = true;
  {
    std::lock_guard lock(async_mu_);
    async_open_ = false;
    async_.close(nullptr);
  }
  sigterm_.close(nullptr);
  sigint_.close(nullptr);
  drain_timer_.close(nullptr);
  stop_checks();
  for (auto& listener : listeners_) {
    if (listener) listener->stop();
  }
  if (options_.on_stop) options_.on_stop();
}

std::vector<ListenerFd> Worker::take_listeners() {
  std::vector<ListenerFd> out;
  for (size_t i = 0; i < listeners_.size(); ++i) {
    if (!listeners_[i]) continue;
    listeners_[i]->stop();
    out.push_back(ListenerFd{services_[i]->config.name, listeners_[i]->release()});
    listeners_[i].reset();
  }
  return out;
}

void Worker::close_loop() {
  if (!loop_open_) return;
  // Handles first (their close callbacks still need the loop), then the loop.
  finish();
  listeners_.clear();
  checkers_.clear();
  for (const uint64_t id : pairs_.ids()) pairs_.erase(id);
  if (engine_) engine_->close_handles();
  uv_run(loop_.get(), UV_RUN_DEFAULT);
  if (uv_loop_close(loop_.get()) != 0) log_->error("event loop closed with handles still open");
  loop_open_ = false;
}

}  // namespace seamless::proxy
