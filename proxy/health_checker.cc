#include "proxy/health_checker.h"

#include <sys/socket.h>

#include <cerrno>

#include "proxy/service.h"
#include "proxy/socket_ops.h"
#include "proxy/sockets.h"

namespace seamless::proxy {
namespace {

Status uv_status(int rc, const std::string& what) {
  if (rc == 0) return {};
  return Error{-rc, what + ": " + uv_strerror(rc)};
}

}  // namespace

HealthChecker::HealthChecker(uv_loop_t* loop, std::string service, const config::HealthCheck& check,
                             BackendRuntime& backend, Logger log)
    : loop_(loop),
      service_(std::move(service)),
      check_(check),
      backend_(backend),
      log_(std::move(log)),
      state_(backend.healthy) {}

Status HealthChecker::start() {
  if (Status s = uv_status(interval_.init(uv_timer_init(loop_, interval_.get())), "timer"); !s) {
    return s;
  }
  if (Status s = uv_status(timeout_.init(uv_timer_init(loop_, timeout_.get())), "timer"); !s) {
    return s;
  }
  interval_.get()->data = this;
  timeout_.get()->data = this;
  const uint64_t every = static_cast<uint64_t>(check_.interval.count());
  return uv_status(uv_timer_start(interval_.get(), &HealthChecker::on_tick, 0, every),
                   "timer start");
}

void HealthChecker::stop() {
  interval_.close(nullptr);
  timeout_.close(nullptr);
  probe_.close(nullptr);
}

void HealthChecker::on_tick(uv_timer_t* timer) {
  auto* self = static_cast<HealthChecker*>(timer->data);
  // The timeout is below the interval, so a probe still open here is late: a failure.
  if (self->probe_.valid()) self->finish_probe(ETIMEDOUT);
  self->probe();
}

void HealthChecker::on_timeout(uv_timer_t* timer) {
  static_cast<HealthChecker*>(timer->data)->finish_probe(ETIMEDOUT);
}

void HealthChecker::on_probe(uv_poll_t* handle, int status, int /*events*/) {
  auto* self = static_cast<HealthChecker*>(handle->data);
  if (status < 0) self->probe_.forget_events();
  SocketOps ops;
  int error = ops.socket_error(self->probe_.fd());
  if (status < 0 && error == 0) error = ECONNREFUSED;
  self->finish_probe(error);
}

void HealthChecker::probe() {
  Result<UniqueFd> fd = start_connect(backend_.endpoint, /*proxied=*/false);
  if (!fd) {
    finish_probe(fd.error().code != 0 ? fd.error().code : EIO);
    return;
  }
  if (probe_.open(loop_, std::move(*fd), this) != 0 ||
      probe_.watch(UV_WRITABLE, &HealthChecker::on_probe) != 0) {
    finish_probe(EIO);
    return;
  }
  uv_timer_start(timeout_.get(), &HealthChecker::on_timeout,
                 static_cast<uint64_t>(check_.timeout.count()), 0);
}

void HealthChecker::finish_probe(int error) {
  if (timeout_.initialized()) uv_timer_stop(timeout_.get());
  if (probe_.valid()) {
    const linger abort_on_close{1, 0};
    ::setsockopt(probe_.fd(), SOL_SOCKET, SO_LINGER, &abort_on_close, sizeof(abort_on_close));
  }
  probe_.close(nullptr);
  const bool was_up = state_.up();
  const bool changed = state_.record(error == 0, check_);
  if (changed || !reported_) {
    backend_.healthy = state_.up();
    backend_.metrics.set_up(state_.up());
    reported_ = true;
  }
  if (!changed) return;
  if (was_up) {
    log_->warn("service {}: backend {} is down ({} failed checks, last: {})", service_,
               backend_.address, check_.fall, errno_text(error));
  } else {
    log_->info("service {}: backend {} is up ({} good checks)", service_, backend_.address,
               check_.rise);
  }
}

}  // namespace seamless::proxy
