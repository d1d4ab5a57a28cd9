#include "proxy/worker.h"

#include <csignal>

#include "proxy/sockets.h"

namespace seamless::proxy {
namespace {

constexpr uint64_t kRejectLogIntervalMs = 1000;

Status uv_status(int rc, const std::string& what) {
  if (rc == 0) return {};
  return Error{-rc, what + ": " + uv_strerror(rc)};
}

}  // namespace

Worker::Worker(const config::Config& config, Logger log, PairObserver& observer,
               WorkerOptions options)
    : config_(config),
      log_(std::move(log)),
      options_(options),
      loop_(std::make_unique<uv_loop_t>()),
      observer_(observer) {
  engine_ = std::make_unique<PairEngine>(loop_.get(), pairs_, observer,
                                         options_.ops != nullptr ? *options_.ops : ops_, log_,
                                         options_.scratch_bytes);
}

Result<std::unique_ptr<Worker>> Worker::create(const config::Config& config,
                                               metrics::Metrics& metrics, Logger log,
                                               PairObserver& observer, WorkerOptions options) {
  std::unique_ptr<Worker> worker(new Worker(config, std::move(log), observer, options));
  if (Status s = worker->init(metrics); !s) return s.error();
  return worker;
}

Status Worker::init(metrics::Metrics& metrics) {
  if (Status s = uv_status(uv_loop_init(loop_.get()), "uv_loop_init"); !s) return s;
  loop_open_ = true;
  Result<std::vector<std::unique_ptr<ServiceRuntime>>> services = build_services(config_, metrics);
  if (!services) return services.error();
  services_ = std::move(*services);
  listeners_.resize(services_.size());
  if (Status s = uv_status(async_.init(uv_async_init(loop_.get(), async_.get(), &on_async)),
                           "uv_async_init");
      !s) {
    return s;
  }
  async_.get()->data = this;
  async_open_ = true;
  if (Status s = uv_status(drain_timer_.init(uv_timer_init(loop_.get(), drain_timer_.get())),
                           "uv_timer_init");
      !s) {
    return s;
  }
  drain_timer_.get()->data = this;
  engine_->set_on_empty([this] {
    if (draining_) finish();
  });
  return {};
}

Worker::~Worker() { close_loop(); }

Status Worker::open_listeners() {
  for (size_t i = 0; i < services_.size(); ++i) {
    const config::Service& service = services_[i]->config;
    Result<UniqueFd> fd = open_listener(service.listen, service.v6only);
    if (!fd) return fd.error().context("service " + service.name);
    ServiceRuntime* runtime = services_[i].get();
    listeners_[i] = std::make_unique<Listener>(
        loop_.get(), service.name, std::move(*fd),
        [this, runtime](UniqueFd client) { admit(*runtime, std::move(client)); }, log_);
  }
  return {};
}

Status Worker::adopt_listeners(std::vector<ListenerFd> listeners) {
  for (ListenerFd& l : listeners) {
    size_t i = 0;
    while (i < services_.size() && services_[i]->config.name != l.service) ++i;
    if (i == services_.size()) return Error::logic("adopt listener: no service " + l.service);
    ServiceRuntime* runtime = services_[i].get();
    listeners_[i] = std::make_unique<Listener>(
        loop_.get(), l.service, std::move(l.fd),
        [this, runtime](UniqueFd client) { admit(*runtime, std::move(client)); }, log_);
  }
  return {};
}

Status Worker::adopt_pairs(std::vector<DetachedPair> pairs) {
  for (DetachedPair& pair : pairs) adopt_pair(std::move(pair));
  adoption_done();
  return {};
}

void Worker::adopt_pair(DetachedPair pair) {
  ServiceRuntime* service = nullptr;
  for (auto& s : services_) {
    if (s->config.name == pair.record.service) service = s.get();
  }
  if (service == nullptr) {
    log_->warn("pair {}: service {} is not configured; aborting it", pair.record.id,
               pair.record.service);
    ops_.abort(pair.client.get());
    if (pair.backend) ops_.abort(pair.backend.get());
    observer_.on_client_refused(pair.record.id);  // the keeper drops its duplicates
    return;
  }
  if (Status s = engine_->adopt(*service, std::move(pair)); !s)
    log_->error("{}", s.error().message);
}

void Worker::adoption_done() {
  // The predecessor may have died between a close and its decrement (metrics.h).
  for (auto& s : services_) s->metrics.set_active(s->active);
}

void Worker::log_ready() const {
  log_->info("worker ready: {} services, {} pairs", services_.size(), pairs_.size());
}

Status Worker::start_serving() {
  for (size_t i = 0; i < services_.size(); ++i) {
    ServiceRuntime& service = *services_[i];
    for (BackendRuntime& backend : service.backends) {
      checkers_.push_back(std::make_unique<HealthChecker>(
          loop_.get(), service.config.name, service.config.health_check, backend, log_));
      if (Status s = checkers_.back()->start(); !s) return s;
    }
    if (!listeners_[i]) continue;
    if (Status s = listeners_[i]->start(); !s) return s;
    log_->info("service {}: listening on {} ({} backends, {})", service.config.name,
               service.config.listen.to_string(), service.backends.size(),
               config::to_string(service.config.balance));
  }
  if (!options_.handle_signals) return {};
  for (auto [handle, signum] : {std::pair{&sigterm_, SIGTERM}, std::pair{&sigint_, SIGINT}}) {
    if (Status s = uv_status(handle->init(uv_signal_init(loop_.get(), handle->get())), "signal");
        !s) {
      return s;
    }
    handle->get()->data = this;
    if (Status s = uv_status(uv_signal_start(handle->get(), &on_signal, signum), "signal"); !s) {
      return s;
    }
  }
  return {};
}

int Worker::run() {
  if (Status s = start_serving(); !s) {
    log_->error("{}", s.error().message);
    finish();
    uv_run(loop_.get(), UV_RUN_DEFAULT);
    return 1;
  }
  if (options_.ready_when_running) log_ready();
  // A request that arrived before the loop ran is still pending in requested_.
  on_async(async_.get());
  uv_run(loop_.get(), UV_RUN_DEFAULT);
  log_->info("worker stopped");
  return 0;
}

void Worker::accept_from_keeper(const std::string& service, uint64_t pair_id, UniqueFd fd) {
  for (auto& s : services_) {
    if (s->config.name != service) continue;
    if (draining_ || finished_) break;
    admit(*s, std::move(fd), pair_id);
    return;
  }
  log_->warn("pair {}: client for service {} refused: {}", pair_id, service,
             draining_ || finished_ ? "stopping" : "no such service");
  fd.reset();
  observer_.on_client_refused(pair_id);
}

void Worker::admit(ServiceRuntime& service, UniqueFd fd, uint64_t pair_id) {
  if (service.active >= service.config.max_connections) {
    reject(service, std::move(fd), pair_id);
    return;
  }
  engine_->accept_client(service, std::move(fd), pair_id);
}

// Over max_connections: closed at once. Logged at most once a second per service, with
// the count, so a flood does not become a flood of log lines.
void Worker::reject(ServiceRuntime& service, UniqueFd fd, uint64_t pair_id) {
  const repair::Endpoint peer = peer_endpoint(fd.get());
  // Counted before the close, so that a client which saw the close also sees the count.
  service.metrics.connection_rejected(metrics::RejectReason::kMaxConnections);
  fd.reset();
  // The keeper's duplicate keeps the connection open until the keeper drops it.
  if (pair_id != 0) observer_.on_client_refused(pair_id);
  service.rejected++;
  service.rejected_unlogged++;
  const uint64_t now = uv_now(loop_.get());
  if (service.rejected != service.rejected_unlogged &&
      now < service.last_reject_log_ms + kRejectLogIntervalMs) {
    return;
  }
  log_->warn(
      "service {}: max_connections {} reached: closed {} new connection(s) (last from {}), "
      "{} in total",
      service.config.name, service.config.max_connections, service.rejected_unlogged,
      peer.to_string(), service.rejected);
  service.rejected_unlogged = 0;
  service.last_reject_log_ms = now;
}

}  // namespace seamless::proxy
