// The rise/fall rule of an active health check, on its own so it can be tested without
// sockets: an up backend goes down after `fall` consecutive failed checks, a down one
// comes back after `rise` consecutive good ones. A single result never flips it unless
// rise/fall is 1.
#pragma once

#include <cstdint>

#include "config/config.h"

namespace seamless::proxy {

class HealthState {
 public:
  explicit HealthState(bool up) : up_(up) {}

  // Records one check; returns true when this result changed the verdict.
  bool record(bool ok, const config::HealthCheck& check) {
    if (ok) {
      failures_ = 0;
      if (up_ || ++successes_ < check.rise) return false;
      successes_ = 0;
      up_ = true;
      return true;
    }
    successes_ = 0;
    if (!up_ || ++failures_ < check.fall) return false;
    failures_ = 0;
    up_ = false;
    return true;
  }

  bool up() const { return up_; }
  uint32_t successes() const { return successes_; }
  uint32_t failures() const { return failures_; }

 private:
  bool up_;
  uint32_t successes_ = 0;  // consecutive, while down
  uint32_t failures_ = 0;   // consecutive, while up
};

}  // namespace seamless::proxy
