#include "proxy/service.h"

#include <span>

#include "proxy/sockets.h"

namespace seamless::proxy {
namespace {

Result<BackendRuntime> build_backend(const config::Service& service, const config::Backend& backend,
                                     metrics::Metrics& metrics) {
  const std::string address = backend.address.to_string();
  Result<metrics::BackendMetrics> handle = metrics.backend(service.name, address);
  if (!handle) return handle.error().context("service " + service.name + ": backend " + address);
  const std::span<const uint8_t> bytes(reinterpret_cast<const uint8_t*>(address.data()),
                                       address.size());
  return BackendRuntime{.address = address,
                        .endpoint = to_endpoint(backend.address),
                        .weight = backend.weight,
                        .identity = hash_bytes(bytes),
                        .healthy = handle->up().value_or(true),
                        .active = 0,
                        .metrics = *handle};
}

}  // namespace

std::optional<size_t> ServiceRuntime::choose_backend(const std::vector<bool>& tried,
                                                     uint64_t client_hash) {
  std::vector<Candidate> candidates(backends.size());
  for (size_t i = 0; i < backends.size(); ++i) {
    const bool was_tried = i < tried.size() && tried[i];
    candidates[i] = Candidate{.weight = backends[i].weight,
                              .eligible = backends[i].healthy && !was_tried,
                              .active = backends[i].active,
                              .identity = backends[i].identity};
  }
  return balancer.pick(candidates, client_hash);
}

BackendRuntime* ServiceRuntime::find_backend(std::string_view address) {
  for (BackendRuntime& b : backends) {
    if (b.address == address) return &b;
  }
  return nullptr;
}

Result<std::vector<std::unique_ptr<ServiceRuntime>>> build_services(const config::Config& config,
                                                                    metrics::Metrics& metrics) {
  std::vector<std::unique_ptr<ServiceRuntime>> services;
  for (const config::Service& service : config.services) {
    Result<metrics::ServiceMetrics> handle = metrics.service(service.name);
    if (!handle) return handle.error().context("service " + service.name);
    std::vector<BackendRuntime> backends;
    for (const config::Backend& backend : service.backends) {
      Result<BackendRuntime> b = build_backend(service, backend, metrics);
      if (!b) return b.error();
      backends.push_back(std::move(*b));
    }
    const size_t count = backends.size();
    services.push_back(std::make_unique<ServiceRuntime>(ServiceRuntime{
        .config = service,
        .metrics = *handle,
        .backends = std::move(backends),
        .balancer = Balancer(service.balance, count),
    }));
  }
  return services;
}

}  // namespace seamless::proxy
