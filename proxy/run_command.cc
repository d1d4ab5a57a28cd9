#include "proxy/run_command.h"

#include <sys/resource.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>

#include "config/load.h"
#include "metrics/metrics.h"
#include "metrics/segment.h"
#include "metrics/server.h"
#include "proxy/logging.h"
#include "proxy/observer.h"
#include "proxy/preconditions.h"
#include "proxy/worker.h"

namespace seamless::proxy {
namespace {

constexpr int kExitRuntimeError = 1;
constexpr int kExitConfigError = 2;

// A proxy needs two fds per connection; the usual soft limit (1024) is far too low and
// the hard limit is what the operator granted.
void raise_fd_limit(const Logger& log) {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur >= limit.rlim_max) return;
  const rlim_t before = limit.rlim_cur;
  limit.rlim_cur = limit.rlim_max;
  if (::setrlimit(RLIMIT_NOFILE, &limit) == 0) {
    log->debug("fd limit raised from {} to {}", before, limit.rlim_cur);
  }
}

// The segment a keeper passed down (SEAMLESS_METRICS_FD), else a fresh one of our own.
Result<metrics::MetricsSegment> open_segment(const Logger& log) {
  const char* inherited = std::getenv(metrics::kFdEnvVar);
  if (inherited != nullptr) {
    Result<int> fd = metrics::parse_fd_number(inherited);
    if (fd) {
      Result<metrics::MetricsSegment> segment = metrics::MetricsSegment::adopt(UniqueFd(*fd));
      if (segment) return segment;
      log->warn("metrics: cannot adopt inherited segment: {}; starting a new one",
                segment.error().message);
    }
  }
  return metrics::MetricsSegment::create();
}

int serve(const config::Config& config, const Logger& log) {
  Result<metrics::MetricsSegment> segment = open_segment(log);
  if (!segment) {
    log->error("metrics: {}", segment.error().message);
    return kExitRuntimeError;
  }
  metrics::Metrics metrics(*segment);
  NullPairObserver observer;
  Result<std::unique_ptr<Worker>> worker = Worker::create(config, metrics, log, observer);
  if (!worker) {
    log->error("{}", worker.error().message);
    return kExitRuntimeError;
  }
  if (Status s = (*worker)->open_listeners(); !s) {
    log->error("{}", s.error().message);
    return kExitRuntimeError;
  }
  std::unique_ptr<metrics::MetricsServer> server;
  if (config.metrics.listen) {
    auto started = metrics::start_metrics_server(config.metrics.listen->to_string(), *segment);
    if (!started) {
      log->error("{}", started.error().message);
      return kExitRuntimeError;
    }
    server = std::move(*started);
    log->info("metrics: serving /metrics on {}", config.metrics.listen->to_string());
  }
  return (*worker)->run();
}

}  // namespace

int run_command(const std::string& config_path) {
  const Result<config::Config> config = config::load_config_file(config_path);
  if (!config) {
    std::fprintf(stderr, "%s\n", config.error().message.c_str());
    return kExitConfigError;
  }
  const Logger log = make_logger(config->log);
  // Kernel, capabilities, handoff dir: one line each, before anything is touched.
  if (!preconditions_met(*config, SystemPreconditionProbe(), log)) return kExitRuntimeError;
  // Writes use MSG_NOSIGNAL, but nothing that writes to a dead peer may kill the proxy.
  std::signal(SIGPIPE, SIG_IGN);
  raise_fd_limit(log);
  return serve(*config, log);
}

}  // namespace seamless::proxy
