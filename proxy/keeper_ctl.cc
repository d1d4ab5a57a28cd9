// Keeper: the control socket's side (`seamless ctl`, ctl_server.h). Requests made here
// are the same requests SIGHUP and SIGUSR2 make, coalesced the same way; what differs
// is that the client hears how they ended (CtlWaiters).
#include <unistd.h>

#include "proxy/keeper.h"
#include "proxy/version.h"

namespace seamless::proxy {

std::string Keeper::status() {
  std::string state = "serving";
  if (stopping_) {
    state = "stopping";
  } else if (running_ == Action::kReload) {
    state = "reloading";
  } else if (running_ == Action::kUpgrade) {
    state = "upgrading";
  } else if (!worker_ || running_ == Action::kCrash) {
    state = "restarting the worker";
  } else if (!restoring_path_.empty()) {
    state = "restoring after a worker crash";
  }
  std::string pending;
  if (upgrade_requested_) pending += " upgrade";
  if (reload_requested_) pending += " reload";
  std::string text = std::string("seamless ") + kVersion + ": " + state + "\n";
  text += "pid: " + std::to_string(::getpid()) + "\n";
  text += "generation: " + std::to_string(metrics_.generation()) + "\n";
  text += "worker: " + (worker_ ? std::to_string(worker_->pid) : std::string("none")) + "\n";
  text += "pairs: " + std::to_string(pairs_.size()) + "\n";
  text += "state: " + state + "\n";
  if (!pending.empty()) text += "pending:" + pending + "\n";
  text += "config: " + config_path_ + "\n";
  text += "binary: " + inherited_.binary_path + "\n";
  return text;
}

void Keeper::reload(CtlDone done) {
  if (stopping_) {
    done(false, "seamless is stopping");
    return;
  }
  ctl_waiters_.add(CtlWaiters::Kind::kReload, std::move(done));
  request(Action::kReload);
}

void Keeper::upgrade(CtlDone done) {
  if (stopping_) {
    done(false, "seamless is stopping");
    return;
  }
  ctl_waiters_.add(CtlWaiters::Kind::kUpgrade, std::move(done));
  request(Action::kUpgrade);
}

void Keeper::start_ctl() {
  // Before the first worker is spawned: what is inherited must be close-on-exec first.
  CtlInheritance inherited = CtlInheritance::from_environment();
  ctl_ = std::make_unique<CtlServer>(&loop_, *this, log_);
  const std::string path = ctl_socket_path(config_.handoff.dir);
  if (Status s = ctl_->listen(path, std::move(inherited.listener), inherited.path); !s) {
    // The proxy matters more than its remote control: serve without it.
    log_->error("keeper: control socket disabled: {}", s.error().message);
  }
  // The clients that asked the keeper before this exec for the upgrade now running.
  ctl_waiters_.adopt_running(ctl_->adopt_waiting(std::move(inherited.waiting)));
}

void Keeper::ctl_finished(bool ok, const std::string& message) {
  ctl_waiters_.finish(ok, message);
  // A reload may have moved handoff.dir: the socket follows it.
  const std::string path = ctl_socket_path(config_.handoff.dir);
  if (ctl_ && ok && ctl_->path() != path) {
    if (Status s = ctl_->listen(path); !s) {
      log_->error("keeper: control socket stays at {}: {}", ctl_->path(), s.error().message);
    }
  }
}

}  // namespace seamless::proxy
