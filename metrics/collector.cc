#include "metrics/collector.h"

#include <limits>
#include <utility>

namespace seamless::metrics {
namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

MetricFamily family(const char* name, const char* help, MetricType type) {
  return MetricFamily{name, help, type, {}};
}

ClientMetric::Label label(const char* name, std::string_view value) {
  return ClientMetric::Label{name, std::string(value)};
}

ClientMetric counter(std::uint64_t value, std::vector<ClientMetric::Label> labels = {}) {
  ClientMetric metric;
  metric.label = std::move(labels);
  metric.counter.value = static_cast<double>(value);
  return metric;
}

ClientMetric gauge(double value, std::vector<ClientMetric::Label> labels = {}) {
  ClientMetric metric;
  metric.label = std::move(labels);
  metric.gauge.value = value;
  return metric;
}

void add_service_families(const Snapshot& snapshot, std::vector<MetricFamily>& out) {
  MetricFamily active =
      family("seamless_connections_active", "Client connections currently proxied, per service.",
             MetricType::Gauge);
  MetricFamily total = family("seamless_connections_total",
                              "Client connections accepted, per service.", MetricType::Counter);
  MetricFamily bytes = family("seamless_bytes_total",
                              "Payload bytes forwarded, per service; direction \"in\" is "
                              "client to backend, \"out\" is backend to client.",
                              MetricType::Counter);
  MetricFamily rejected =
      family("seamless_connections_rejected_total",
             "Client connections closed without being served, per service; reason "
             "\"max_connections\" (closed at accept) or \"no_backend\" (no backend reachable).",
             MetricType::Counter);
  for (const ServiceSample& service : snapshot.services) {
    active.metric.push_back(
        gauge(static_cast<double>(service.active), {label("service", service.name)}));
    total.metric.push_back(counter(service.total, {label("service", service.name)}));
    for (std::size_t d = 0; d < kDirectionCount; ++d) {
      const auto direction = static_cast<Direction>(d);
      bytes.metric.push_back(counter(service.bytes[d], {label("direction", label_value(direction)),
                                                        label("service", service.name)}));
    }
    for (std::size_t r = 0; r < kRejectReasonCount; ++r) {
      const auto reason = static_cast<RejectReason>(r);
      rejected.metric.push_back(counter(service.rejected[r], {label("reason", label_value(reason)),
                                                              label("service", service.name)}));
    }
  }
  out.push_back(std::move(active));
  out.push_back(std::move(total));
  out.push_back(std::move(rejected));
  out.push_back(std::move(bytes));
}

void add_backend_families(const Snapshot& snapshot, std::vector<MetricFamily>& out) {
  MetricFamily up = family("seamless_backend_up",
                           "1 if the backend passes its health check, 0 if not; absent until "
                           "checked.",
                           MetricType::Gauge);
  MetricFamily failures =
      family("seamless_backend_connect_failures_total",
             "Connects to the backend that failed or timed out.", MetricType::Counter);
  for (const BackendSample& backend : snapshot.backends) {
    std::vector<ClientMetric::Label> labels = {label("backend", backend.address),
                                               label("service", backend.service)};
    if (backend.up) up.metric.push_back(gauge(*backend.up ? 1 : 0, labels));
    failures.metric.push_back(counter(backend.connect_failures, labels));
  }
  out.push_back(std::move(up));
  out.push_back(std::move(failures));
}

ClientMetric phase_histogram(const PhaseSample& sample, HandoffPhase phase) {
  ClientMetric metric;
  metric.label = {label("phase", label_value(phase))};
  metric.histogram.sample_count = sample.count;
  metric.histogram.sample_sum = sample.sum_seconds;
  std::uint64_t cumulative = 0;
  for (std::size_t b = 0; b < layout::kPhaseBuckets; ++b) {
    cumulative += sample.buckets[b];
    const double bound = b < layout::kPhaseFiniteBuckets
                             ? static_cast<double>(layout::kPhaseBucketBoundsNs[b]) / 1e9
                             : std::numeric_limits<double>::infinity();
    metric.histogram.bucket.push_back({cumulative, bound});
  }
  return metric;
}

void add_handoff_families(const Snapshot& snapshot, std::vector<MetricFamily>& out) {
  MetricFamily handoffs =
      family("seamless_handoffs_total",
             "Handoffs (upgrade, reload, crash recovery) by how they ended.", MetricType::Counter);
  for (std::size_t r = 0; r < kHandoffReasonCount; ++r) {
    for (std::size_t s = 0; s < kHandoffResultCount; ++s) {
      handoffs.metric.push_back(counter(
          snapshot.handoffs[r][s], {label("reason", label_value(static_cast<HandoffReason>(r))),
                                    label("result", label_value(static_cast<HandoffResult>(s)))}));
    }
  }
  MetricFamily phases =
      family("seamless_handoff_phase_seconds",
             "Duration of each handoff phase, and of the whole handoff.", MetricType::Histogram);
  for (std::size_t p = 0; p < kHandoffPhaseCount; ++p) {
    phases.metric.push_back(phase_histogram(snapshot.phases[p], static_cast<HandoffPhase>(p)));
  }
  MetricFamily connections =
      family("seamless_handoff_connections_total",
             "Connections carried through handoffs, by outcome.", MetricType::Counter);
  for (std::size_t i = 0; i < kHandoffConnectionResultCount; ++i) {
    const auto result = static_cast<HandoffConnectionResult>(i);
    connections.metric.push_back(
        counter(snapshot.handoff_connections[i], {label("result", label_value(result))}));
  }
  MetricFamily queued =
      family("seamless_handoff_queued_bytes",
             "Bytes in the socket queues that the last handoff dumped.", MetricType::Gauge);
  queued.metric.push_back(gauge(static_cast<double>(snapshot.queued_bytes)));
  out.push_back(std::move(handoffs));
  out.push_back(std::move(phases));
  out.push_back(std::move(connections));
  out.push_back(std::move(queued));
}

void add_process_families(const Snapshot& snapshot, std::string_view version,
                          std::vector<MetricFamily>& out) {
  MetricFamily restarts =
      family("seamless_worker_restarts_total",
             "Workers the keeper started in place of another, by cause.", MetricType::Counter);
  for (std::size_t i = 0; i < kWorkerRestartCauseCount; ++i) {
    const auto cause = static_cast<WorkerRestartCause>(i);
    restarts.metric.push_back(
        counter(snapshot.worker_restarts[i], {label("cause", label_value(cause))}));
  }
  MetricFamily locked =
      family("seamless_locked_flows", "Flows currently held by the nftables flow lock.",
             MetricType::Gauge);
  locked.metric.push_back(gauge(static_cast<double>(snapshot.locked_flows)));
  MetricFamily generation =
      family("seamless_restart_generation", "Execs of a new binary since the keeper first started.",
             MetricType::Gauge);
  generation.metric.push_back(gauge(static_cast<double>(snapshot.generation)));
  MetricFamily start = family("seamless_process_start_time_seconds",
                              "When the keeper first started (unix seconds); kept across "
                              "upgrades and worker restarts, like the counters.",
                              MetricType::Gauge);
  start.metric.push_back(gauge(snapshot.process_start_time));
  MetricFamily build =
      family("seamless_build_info", "Always 1; the version label names the running binary.",
             MetricType::Gauge);
  build.metric.push_back(gauge(1, {label("version", version)}));
  out.push_back(std::move(restarts));
  out.push_back(std::move(locked));
  out.push_back(std::move(generation));
  out.push_back(std::move(start));
  out.push_back(std::move(build));
}

}  // namespace

std::vector<MetricFamily> to_families(const Snapshot& snapshot, std::string_view version) {
  std::vector<MetricFamily> out;
  add_service_families(snapshot, out);
  add_backend_families(snapshot, out);
  add_handoff_families(snapshot, out);
  add_process_families(snapshot, version, out);
  return out;
}

std::vector<MetricFamily> SegmentCollector::Collect() const {
  return to_families(take_snapshot(*segment_), version_);
}

}  // namespace seamless::metrics
