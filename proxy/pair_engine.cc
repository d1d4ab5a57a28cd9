// PairEngine: poll events, forwarding and closing (see pair_engine.h).
#include "proxy/pair_engine.h"

#include <sys/socket.h>

#include <cerrno>
#include <climits>

#include "metrics/labels.h"
#include "proxy/service.h"
#include "proxy/sockets.h"

namespace seamless::proxy {
namespace {

static_assert(kWantRead == UV_READABLE && kWantWrite == UV_WRITABLE);

// Reads and drops whatever the peer sent that nobody will forward any more. close()
// on a socket with unread data sends an RST; a graceful close must send a FIN.
void discard_unread(SocketOps& ops, int fd) {
  if (fd < 0) return;
  while (ops.recv(fd, nullptr, INT_MAX, MSG_TRUNC | MSG_DONTWAIT) > 0) {
  }
}

}  // namespace

PairEngine::PairEngine(uv_loop_t* loop, PairTable& pairs, PairObserver& observer, SocketOps& ops,
                       Logger log, size_t scratch_bytes)
    : loop_(loop),
      pairs_(pairs),
      observer_(observer),
      ops_(ops),
      log_(std::move(log)),
      scratch_(scratch_bytes) {}

void PairEngine::accept_client(ServiceRuntime& service, UniqueFd fd, uint64_t pair_id) {
  Pair& pair = pair_id != 0 ? pairs_.create_with_id(pair_id) : pairs_.create();
  pair.engine = this;
  pair.service = &service;
  pair.created_at_unix_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                                std::chrono::system_clock::now().time_since_epoch())
                                .count();
  pair.client_peer = peer_endpoint(fd.get());
  pair.client_local = local_endpoint(fd.get());
  service.active++;
  service.metrics.connection_opened();
  const Status opened = open_client(pair, std::move(fd));
  observer_.on_client_accepted(pair);
  if (!opened) {
    close_pair(pair, CloseReason::kError, opened.error().code);
    return;
  }
  if (log_->should_log(spdlog::level::debug)) log_->debug("{}: accepted", pair.describe());
  connect_next(pair);
}

void PairEngine::on_poll(uv_poll_t* handle, int status, int events) {
  Pair* pair = static_cast<Pair*>(handle->data);
  PairEngine* self = pair->engine;
  if (handle == pair->client.handle()) {
    self->on_client_event(*pair, status, events);
  } else {
    self->on_backend_event(*pair, status, events);
  }
}

void PairEngine::on_client_event(Pair& pair, int status, int events) {
  if (status < 0) {  // POLLERR: libuv stopped the handle; SO_ERROR says what happened
    pair.client.forget_events();
    const int error = ops_.socket_error(pair.client.fd());
    leg_failed(pair, /*client_leg=*/true, error != 0 ? error : ECONNRESET);
    return;
  }
  if ((events & UV_WRITABLE) && pair.downstream.blocked && !pump_flow(pair, false)) return;
  if ((events & UV_READABLE) && !pump_flow(pair, true)) return;
  settle(pair);
}

void PairEngine::on_backend_event(Pair& pair, int status, int events) {
  if (status < 0) pair.server.forget_events();
  if (pair.stage == PairStage::kConnecting) {
    int error = ops_.socket_error(pair.server.fd());
    if (status < 0 && error == 0) error = ECONNREFUSED;
    if (error != 0) {
      connect_failed(pair, error, /*try_next=*/true);
    } else {
      connect_succeeded(pair);
    }
    return;
  }
  if (status < 0) {
    const int error = ops_.socket_error(pair.server.fd());
    leg_failed(pair, /*client_leg=*/false, error != 0 ? error : ECONNRESET);
    return;
  }
  if (events & UV_WRITABLE) {
    if (pair.header_pending > 0 && !write_pending_header(pair)) return;
    if (pair.header_pending == 0 && pair.upstream.blocked && !pump_flow(pair, true)) return;
  }
  if ((events & UV_READABLE) && !pump_flow(pair, false)) return;
  settle(pair);
}

bool PairEngine::pump_flow(Pair& pair, bool upstream) {
  Flow& flow = upstream ? pair.upstream : pair.downstream;
  if (flow.finished) return true;
  const int src = upstream ? pair.client.fd() : pair.server.fd();
  const int dst = upstream ? pair.server.fd() : pair.client.fd();
  const PumpOutcome out = pump(ops_, src, dst, flow, scratch_, kPumpBudget);
  if (out.moved > 0) {
    pair.service->metrics.add_bytes(upstream ? metrics::Direction::kIn : metrics::Direction::kOut,
                                    out.moved);
    pair.last_activity_ms = uv_now(loop_);
  }
  switch (out.result) {
    case PumpResult::kSourceFailed:
    case PumpResult::kDestinationFailed: {
      // pump() already aborted the partner of the failed socket.
      const bool client_failed = upstream == (out.result == PumpResult::kSourceFailed);
      pair.reset_flags |= client_failed ? repair::kClientReset : repair::kBackendReset;
      close_pair(pair, client_failed ? CloseReason::kClientReset : CloseReason::kBackendReset,
                 out.error);
      return false;
    }
    case PumpResult::kFinished:
      if (log_->should_log(spdlog::level::debug)) {
        log_->debug("{}: {} finished sending", pair.describe(), upstream ? "client" : "backend");
      }
      return true;
    case PumpResult::kIdle:
    case PumpResult::kBlocked:
    case PumpResult::kYield:
      return true;
  }
  return true;
}

void PairEngine::leg_failed(Pair& pair, bool client_leg, int error) {
  PolledSocket& partner = client_leg ? pair.server : pair.client;
  if (partner.valid()) ops_.abort(partner.fd());
  pair.reset_flags |= client_leg ? repair::kClientReset : repair::kBackendReset;
  close_pair(pair, client_leg ? CloseReason::kClientReset : CloseReason::kBackendReset, error);
}

void PairEngine::settle(Pair& pair) {
  if (pair.upstream.finished && pair.downstream.finished) {
    close_pair(pair, CloseReason::kFinished, 0);
    return;
  }
  if (!update_watch(pair)) {
    if (pair.client.valid()) ops_.abort(pair.client.fd());
    if (pair.server.valid()) ops_.abort(pair.server.fd());
    close_pair(pair, CloseReason::kError, EIO);
  }
}

bool PairEngine::update_watch(Pair& pair) {
  const bool open = pair.stage == PairStage::kOpen;
  const int client_events =
      leg_events(pair.upstream, open && pair.header_pending == 0, pair.downstream, false);
  const int server_events =
      open ? leg_events(pair.downstream, true, pair.upstream, pair.header_pending > 0)
           : kWantWrite;  // connect in progress
  const int rc_client = pair.client.watch(client_events, &PairEngine::on_poll);
  const int rc_server = pair.server.watch(server_events, &PairEngine::on_poll);
  if (rc_client == 0 && rc_server == 0) return true;
  log_->error("{}: poll: {}", pair.describe_full(),
              uv_strerror(rc_client != 0 ? rc_client : rc_server));
  return false;
}

void PairEngine::close_gracefully(Pair& pair, CloseReason reason) {
  if (pair.stage == PairStage::kOpen) {
    if (!pair.upstream.finished) ops_.shutdown(pair.server.fd(), SHUT_WR);
    discard_unread(ops_, pair.server.fd());
  }
  if (!pair.downstream.finished) ops_.shutdown(pair.client.fd(), SHUT_WR);
  discard_unread(ops_, pair.client.fd());
  close_pair(pair, reason, 0);
}

void PairEngine::close_all_gracefully(CloseReason reason) {
  for (const uint64_t id : pairs_.ids()) {
    if (Pair* pair = pairs_.find(id)) close_gracefully(*pair, reason);
  }
}

void PairEngine::close_pair(Pair& pair, CloseReason reason, int error) {
  log_close(pair, reason, error);
  observer_.on_pair_closed(pair, reason);
  if (pair.backend != nullptr) pair.backend->active--;
  pair.service->active--;
  pair.service->metrics.connection_closed();
  pairs_.erase(pair.id);  // closes the poll handles, then the fds
  if (pairs_.empty() && on_empty_) on_empty_();
}

// Formatting a pair's addresses costs more than forwarding a small message: only
// when the line will be written.
void PairEngine::log_close(const Pair& pair, CloseReason reason, int error) {
  const auto level = reason == CloseReason::kBackendReset || reason == CloseReason::kError
                         ? spdlog::level::warn
                     : reason == CloseReason::kClientReset ? spdlog::level::info
                                                           : spdlog::level::debug;
  if (!log_->should_log(level)) return;
  const std::string error_text = error != 0 ? " (" + errno_text(error) + ")" : "";
  log_->log(level, "{}: closed: {}{}; {} bytes in, {} bytes out", pair.describe_full(),
            to_string(reason), error_text, pair.upstream.bytes, pair.downstream.bytes);
}

}  // namespace seamless::proxy
