// KeeperLink: the worker's end of the control channel (control_channel.h) as a
// PairObserver: every connected backend (with its fd), refused client and closed pair
// is reported to the keeper as it happens. The keeper accepted each client itself, so
// with the backends it always holds a duplicate of every proxied socket (DESIGN §2).
//
// A send that fails means the keeper is gone: the link logs it once and stops sending;
// the worker notices the channel's EOF on its own and drains.
#pragma once

#include "proxy/control_channel.h"
#include "proxy/logging.h"
#include "proxy/observer.h"

namespace seamless::proxy {

class KeeperLink final : public PairObserver {
 public:
  KeeperLink(ControlChannel& channel, Logger log) : channel_(channel), log_(std::move(log)) {}

  void on_client_accepted(const Pair&) override {}  // the keeper accepted it
  void on_client_refused(uint64_t pair_id) override;
  void on_backend_connected(const Pair& pair) override;
  void on_pair_closed(const Pair& pair, CloseReason reason) override;

  // Sends one message unless the link already broke; false once it has.
  bool send(const Message& message, std::span<const int> fds = {});
  bool broken() const { return broken_; }

 private:
  ControlChannel& channel_;
  Logger log_;
  bool broken_ = false;
};

}  // namespace seamless::proxy
