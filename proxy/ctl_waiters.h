// The control-socket clients waiting for a handoff's outcome (ctl_server.h), as the
// keeper coalesces requests: a request made while a handoff runs is served by the
// next one, not by the one already running (a reload must read the config as it was
// when it was asked for). So waiters sit in `pending` per kind until a handoff of that
// kind begins; an upgrade also takes the pending reloads, since the new keeper reads
// the config afresh. Every waiter is answered exactly once, by finish().
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "proxy/ctl_server.h"

namespace seamless::proxy {

class CtlWaiters {
 public:
  enum class Kind { kReload, kUpgrade };

  void add(Kind kind, CtlDone done) { pending(kind).push_back(std::move(done)); }

  // A handoff of `kind` starts: it will answer the requests made so far.
  void begin(Kind kind) {
    take(pending(kind));
    if (kind == Kind::kUpgrade) take(pending(Kind::kReload));
  }

  // The running handoff's answers, from a keeper image that exec'ed into this one.
  void adopt_running(std::vector<CtlDone> done) { take(done); }

  // A restore of the running upgrade failed: it ends in failure, not success.
  void restore_failed(std::string reason) { restore_error_ = std::move(reason); }

  // The running handoff ended. An upgrade whose restore failed is reported as failed
  // whatever `ok` says.
  void finish(bool ok, const std::string& message) {
    std::vector<CtlDone> running = std::exchange(running_, {});
    const std::string restore_error = std::exchange(restore_error_, {});
    for (CtlDone& done : running) {
      if (ok && !restore_error.empty()) {
        done(false, message + "\nrestore failed: " + restore_error);
      } else {
        done(ok, message);
      }
    }
  }

  size_t waiting() const { return running_.size() + reloads_.size() + upgrades_.size(); }

 private:
  std::vector<CtlDone>& pending(Kind kind) { return kind == Kind::kReload ? reloads_ : upgrades_; }
  void take(std::vector<CtlDone>& from) {
    for (CtlDone& done : from) running_.push_back(std::move(done));
    from.clear();
  }

  std::vector<CtlDone> reloads_, upgrades_;  // pending
  std::vector<CtlDone> running_;
  std::string restore_error_;
};

}  // namespace seamless::proxy
