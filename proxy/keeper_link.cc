#include "proxy/keeper_link.h"

#include "proxy/pair.h"

namespace seamless::proxy {

bool KeeperLink::send(const Message& message, std::span<const int> fds) {
  if (broken_) return false;
  if (Status s = channel_.send(message, fds); !s) {
    broken_ = true;
    log_->error("keeper link broken ({}): connections are no longer crash-protected",
                s.error().message);
    return false;
  }
  return true;
}

void KeeperLink::on_client_refused(uint64_t pair_id) {
  send(make_message(MessageType::kPairClosed, pair_id));
}

void KeeperLink::on_backend_connected(const Pair& pair) {
  const int fd = pair.server.fd();
  send(make_message(MessageType::kBackendConnected, pair.id, to_record(pair)),
       std::span<const int>(&fd, 1));
}

void KeeperLink::on_pair_closed(const Pair& pair, CloseReason) {
  send(make_message(MessageType::kPairClosed, pair.id));
}

}  // namespace seamless::proxy
