// PairEngine: backend connect with failover, the PROXY header, and the pair's timer
// (connect timeout, then idle timeout). See pair_engine.h.
#include <sys/socket.h>

#include <cerrno>
#include <optional>
#include <span>

#include "proxy/pair_engine.h"
#include "proxy/proxy_header.h"
#include "proxy/service.h"
#include "proxy/sockets.h"

namespace seamless::proxy {
namespace {

// A pair carried over while its backend connect was in progress keeps the backend it
// was headed for, if that one is still configured and healthy.
std::optional<size_t> preferred_backend(const Pair& pair) {
  if (pair.backend_address.empty() || !pair.tried.empty()) return std::nullopt;
  const std::vector<BackendRuntime>& backends = pair.service->backends;
  for (size_t i = 0; i < backends.size(); ++i) {
    if (backends[i].address == pair.backend_address && backends[i].healthy) return i;
  }
  return std::nullopt;
}

// Errors that say "this host is out of something", not "that backend is bad": another
// backend would fail the same way, and the backend must not be blamed for it.
bool local_shortage(int error) {
  return error == EMFILE || error == ENFILE || error == ENOBUFS || error == ENOMEM ||
         error == EADDRNOTAVAIL;
}

}  // namespace

uint64_t PairEngine::client_hash(const Pair& pair) const {
  const repair::Endpoint& client = pair.client_peer;
  if (client.wire_family() == AF_INET) {
    const std::array<uint8_t, 4> v4 = client.v4_bytes();
    return hash_bytes(v4);
  }
  return hash_bytes(std::span<const uint8_t>(client.addr.data(), 16));
}

void PairEngine::connect_next(Pair& pair) {
  ServiceRuntime& service = *pair.service;
  for (;;) {
    std::optional<size_t> index = preferred_backend(pair);
    if (!index) index = service.choose_backend(pair.tried, client_hash(pair));
    if (!index) break;
    if (connect_to(pair, *index)) return;
  }
  size_t failed = 0;
  for (const bool t : pair.tried) failed += t ? 1 : 0;
  log_->error("{}: no backend available ({} of {} failed, the rest are down); closing the client",
              pair.describe(), failed, service.backends.size());
  service.metrics.connection_rejected(metrics::RejectReason::kNoBackend);  // before the RST
  ops_.abort(pair.client.fd());
  pair.reset_flags |= repair::kBackendReset;
  close_pair(pair, CloseReason::kConnectFailed, 0);
}

bool PairEngine::connect_to(Pair& pair, size_t backend_index) {
  ServiceRuntime& service = *pair.service;
  BackendRuntime& backend = service.backends[backend_index];
  if (pair.tried.size() < service.backends.size()) pair.tried.resize(service.backends.size());
  pair.backend = &backend;
  pair.backend_address = backend.address;
  pair.stage = PairStage::kConnecting;
  backend.active++;
  const int error = open_backend_socket(pair, backend);
  if (error == 0) {
    uv_timer_start(pair.timer.get(), &PairEngine::on_timer,
                   static_cast<uint64_t>(service.config.connect_timeout.count()), 0);
    return true;
  }
  if (!local_shortage(error)) {
    connect_failed(pair, error, /*try_next=*/false);
    return false;
  }
  backend.active--;
  pair.backend = nullptr;
  pair.server.close(nullptr);
  log_->error("{}: cannot connect to backend {}: {}; closing the client", pair.describe(),
              backend.address, errno_text(error));
  ops_.abort(pair.client.fd());
  close_pair(pair, CloseReason::kError, error);
  return true;  // settled: the pair is gone
}

int PairEngine::open_backend_socket(Pair& pair, const BackendRuntime& backend) {
  Result<UniqueFd> fd = start_connect(backend.endpoint, /*proxied=*/true);
  if (!fd) return fd.error().code != 0 ? fd.error().code : EIO;
  if (pair.server.open(loop_, std::move(*fd), &pair) != 0 ||
      pair.server.watch(UV_WRITABLE, &PairEngine::on_poll) != 0) {
    return EIO;
  }
  return 0;
}

void PairEngine::connect_failed(Pair& pair, int error, bool try_next) {
  BackendRuntime& backend = *pair.backend;
  log_->warn("{}: backend {}: connect: {}", pair.describe(), backend.address, errno_text(error));
  backend.metrics.connect_failed();
  backend.active--;
  pair.tried[static_cast<size_t>(&backend - pair.service->backends.data())] = true;
  pair.backend = nullptr;
  uv_timer_stop(pair.timer.get());
  pair.server.close(nullptr);  // poll handle first, then the fd
  if (try_next) connect_next(pair);
}

void PairEngine::connect_succeeded(Pair& pair) {
  uv_timer_stop(pair.timer.get());
  pair.stage = PairStage::kOpen;
  pair.backend_local = local_endpoint(pair.server.fd());
  pair.backend_peer = pair.backend->endpoint;
  pair.tried = {};
  const config::ProxyProtocol version = pair.service->config.proxy_protocol;
  if (pair.proxy_header.empty() && version != config::ProxyProtocol::kOff) {
    pair.proxy_header = build_proxy_header(version, pair.client_peer, pair.client_local);
  }
  // A fresh backend connection has received nothing: the whole header is owed.
  pair.header_pending = static_cast<uint32_t>(pair.proxy_header.size());
  pair.last_activity_ms = uv_now(loop_);
  if (log_->should_log(spdlog::level::debug)) log_->debug("{}: connected", pair.describe_full());
  observer_.on_backend_connected(pair);
  arm_idle_timer(pair);
  if (pair.header_pending > 0 && !write_pending_header(pair)) return;
  settle(pair);
}

bool PairEngine::write_pending_header(Pair& pair) {
  int error = 0;
  const HeaderResult result =
      write_header(ops_, pair.server.fd(), pair.proxy_header, &pair.header_pending, &error);
  if (result == HeaderResult::kFailed) {
    leg_failed(pair, /*client_leg=*/false, error);
    return false;
  }
  return true;
}

void PairEngine::on_timer(uv_timer_t* timer) {
  Pair* pair = static_cast<Pair*>(timer->data);
  PairEngine* self = pair->engine;
  if (pair->stage == PairStage::kConnecting) {
    self->connect_failed(*pair, ETIMEDOUT, /*try_next=*/true);
  } else {
    self->on_idle_timer(*pair);
  }
}

void PairEngine::arm_idle_timer(Pair& pair) {
  const auto idle = static_cast<uint64_t>(pair.service->config.idle_timeout.count());
  if (idle == 0) return;
  uv_timer_start(pair.timer.get(), &PairEngine::on_timer, idle, 0);
}

// Re-arming on every byte would cost a timer-heap update per step; instead the timer
// fires once per period and checks how long the pair has really been idle.
void PairEngine::on_idle_timer(Pair& pair) {
  const uint64_t idle = static_cast<uint64_t>(pair.service->config.idle_timeout.count());
  const uint64_t quiet = uv_now(loop_) - pair.last_activity_ms;
  if (quiet >= idle) {
    close_gracefully(pair, CloseReason::kIdle);
    return;
  }
  uv_timer_start(pair.timer.get(), &PairEngine::on_timer, idle - quiet, 0);
}

}  // namespace seamless::proxy
