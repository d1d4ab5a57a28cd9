#include "proxy/run_command.h"

#include <sys/resource.h>
#include <unistd.h>

#include <climits>
#include <csignal>
#include <cstdio>
#include <cstdlib>

#include "config/load.h"
#include "metrics/metrics.h"
#include "metrics/segment.h"
#include "proxy/keeper.h"
#include "proxy/logging.h"
#include "proxy/preconditions.h"
#include "repair/flow_lock.h"
#include "repair/packet_hold.h"
#include "repair/handoff_file.h"

namespace seamless::proxy {
namespace {

constexpr int kExitRuntimeError = 1;
constexpr int kExitConfigError = 2;

// A proxy needs two fds per connection (and the keeper a duplicate of each); the usual
// soft limit (1024) is far too low and the hard limit is what the operator granted.
void raise_fd_limit(const Logger& log) {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) return;
  if (limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &limit);
  }
  log->info("fd limit {} (each proxied connection needs 2 in the worker and 2 in the keeper)",
            limit.rlim_cur);
}

// The segment an exec'ing keeper passed down (SEAMLESS_METRICS_FD), else a fresh one.
Result<metrics::MetricsSegment> open_segment(const Logger& log) {
  const char* inherited = std::getenv(metrics::kFdEnvVar);
  if (inherited != nullptr) {
    Result<int> fd = metrics::parse_fd_number(inherited);
    ::unsetenv(metrics::kFdEnvVar);
    if (fd) {
      Result<metrics::MetricsSegment> segment = metrics::MetricsSegment::adopt(UniqueFd(*fd));
      if (segment) {
        (void)segment->set_inherit_on_exec(false);
        return segment;
      }
      log->warn("metrics: cannot adopt inherited segment: {}; starting a new one",
                segment.error().message);
    }
  }
  return metrics::MetricsSegment::create();
}

std::string own_binary_path() {
  char path[PATH_MAX];
  const ssize_t n = ::readlink("/proc/self/exe", path, sizeof(path) - 1);
  return n > 0 ? std::string(path, size_t(n)) : std::string();
}

// The flow lock's packet hold: inherited across the exec with the lock's rules that
// name its queue, or a new one. Without one (no nfnetlink_queue) the lock drops
// packets, as before: slower handoffs (peers resend on their own timers), no loss.
std::optional<repair::PacketHold> open_packet_hold(KeeperInheritance& inherited,
                                                   const Logger& log) {
  if (inherited.packet_hold_socket) {
    Result<repair::PacketHold> hold = repair::PacketHold::adopt(
        std::move(inherited.packet_hold_socket), inherited.packet_hold_queue);
    if (hold) return std::move(*hold);
    log->warn("{}", hold.error().message);
    return std::nullopt;
  }
  if (inherited.after_exec) return std::nullopt;  // the rules in place drop, keep it so
  Result<repair::PacketHold> hold = repair::PacketHold::open();
  if (hold) return std::move(*hold);
  log->warn("the flow lock drops packets during handoffs (it cannot queue them: {})",
            hold.error().message);
  return std::nullopt;
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
  Result<KeeperInheritance> inherited = inherit_from_environment();
  if (!inherited) {
    log->error("{}", inherited.error().message);
    return kExitRuntimeError;
  }
  // Upgrades exec the binary at the path the first keeper was started with.
  if (inherited->binary_path.empty()) inherited->binary_path = own_binary_path();
  Result<metrics::MetricsSegment> segment = open_segment(log);
  if (!segment) {
    log->error("metrics: {}", segment.error().message);
    return kExitRuntimeError;
  }
  std::optional<repair::PacketHold> hold = open_packet_hold(*inherited, log);
  // After an exec the table holds the locked flows of this very handoff.
  repair::FlowLockOptions lock_options;
  lock_options.ensure_ruleset = !inherited->after_exec;
  if (hold) lock_options.hold_queue = hold->queue();
  Result<repair::FlowLock> lock =
      inherited->flow_lock_socket ? repair::FlowLock::adopt(std::move(inherited->flow_lock_socket),
                                                            config->handoff.nft_table, lock_options)
                                  : repair::FlowLock::open(config->handoff.nft_table, lock_options);
  if (!lock && hold && lock_options.ensure_ruleset) {
    log->warn("the flow lock drops packets during handoffs (it cannot queue them: {})",
              lock.error().message);
    hold.reset();
    lock_options.hold_queue.reset();
    lock = repair::FlowLock::open(config->handoff.nft_table, lock_options);
  }
  if (!lock) {
    log->error("{}", lock.error().message);
    return kExitRuntimeError;
  }
  // A keeper that died mid-handoff left locked flows and a file: resume that restore.
  const std::string leftover =
      config->handoff.dir + "/" + std::string(repair::HandoffWriter::kFileName);
  if (inherited->handoff_path.empty() && ::access(leftover.c_str(), F_OK) == 0) {
    Result<size_t> locked = lock->count_locked();
    if (locked && *locked > 0) {
      log->warn("resuming the handoff in {} ({} flows still locked)", leftover, *locked);
      inherited->handoff_path = leftover;
    } else {
      log->warn("removing stale handoff file {} (no flow is locked any more)", leftover);
      (void)repair::remove_handoff_file(leftover);
    }
  }
  if (!inherited->after_exec) {
    metrics::Metrics(*segment).set_process_start_time(
        double(std::chrono::duration_cast<std::chrono::milliseconds>(
                   std::chrono::system_clock::now().time_since_epoch())
                   .count()) /
        1000.0);
  }
  Keeper keeper(*config, config_path, log, std::move(*segment), std::move(hold), std::move(*lock),
                std::move(*inherited));
  return keeper.run();
}

}  // namespace seamless::proxy
