// PairEngine: lifting pairs out (quiesce) and taking them in (adoption). See pair_engine.h.
#include <chrono>

#include "proxy/pair_engine.h"
#include "proxy/service.h"
#include "proxy/sockets.h"

namespace seamless::proxy {

Status PairEngine::open_client(Pair& pair, UniqueFd fd, bool set_options) {
  const int timer_rc = pair.timer.init(uv_timer_init(loop_, pair.timer.get()));
  if (timer_rc == 0) pair.timer.get()->data = &pair;
  const Status options = set_options ? set_proxied_options(fd.get()) : Status{};
  const int poll_rc = pair.client.open(loop_, std::move(fd), &pair);
  if (!options) return options.error().context(pair.describe());
  const int rc = timer_rc != 0 ? timer_rc : poll_rc;
  if (rc != 0) return Error{-rc, pair.describe() + ": " + uv_strerror(rc)};
  return {};
}

DetachedPair PairEngine::detach(Pair& pair) {
  DetachedPair out;
  out.record = to_record(pair);
  pair.timer.close(nullptr);
  out.client = pair.client.detach();
  if (pair.stage == PairStage::kOpen) {
    out.backend = pair.server.detach();
  } else {
    // A connect in progress is not carried: the next worker connects afresh (DESIGN §4).
    pair.server.close(nullptr);
  }
  if (pair.backend != nullptr) pair.backend->active--;
  pair.service->active--;
  return out;
}

void PairEngine::close_handles() {
  addresses_to_read_.clear();
  address_reader_.close(nullptr);
  address_reader_ = UvHandle<uv_idle_t>();
}

std::vector<DetachedPair> PairEngine::detach_all() {
  close_handles();  // the pairs' addresses are no longer this worker's to read
  std::vector<DetachedPair> out;
  out.reserve(pairs_.size());
  for (const uint64_t id : pairs_.ids()) {
    Pair* pair = pairs_.find(id);
    out.push_back(detach(*pair));
    pairs_.erase(id);
  }
  return out;
}

std::vector<repair::PairRecord> PairEngine::records() {
  std::vector<repair::PairRecord> out;
  out.reserve(pairs_.size());
  for (const uint64_t id : pairs_.ids()) out.push_back(to_record(*pairs_.find(id)));
  return out;
}

Status PairEngine::adopt(ServiceRuntime& service, DetachedPair detached) {
  const uint64_t id = detached.record.id;
  if (id != 0 && pairs_.find(id) != nullptr) {
    return Error::logic("adopt pair " + std::to_string(id) + ": id already in use");
  }
  Pair& pair = id != 0 ? pairs_.create_with_id(id) : pairs_.create();
  pair.engine = this;
  pair.service = &service;
  apply_record(detached.record, pair);
  const bool open = static_cast<bool>(detached.backend);
  if (open) {
    pair.addresses_unread = true;
    read_addresses_later(id);
  } else {
    pair.client_peer = peer_endpoint(detached.client.get());
    pair.client_local = local_endpoint(detached.client.get());
  }
  service.active++;
  if ((!detached.client || !detached.backend) && pair.upstream.finished &&
      pair.downstream.finished) {
    // A leg had closed in order: the restore queued what it still owed its partner on
    // the partner's socket, then the FIN (repair/checkpoint.h). The kernel delivers it.
    close_pair(pair, CloseReason::kFinished, 0);
    return {};
  }
  // Its options were set when it was first accepted (a restored socket gets them back
  // from its image).
  if (Status s = open_client(pair, std::move(detached.client), /*set_options=*/false); !s) {
    close_pair(pair, CloseReason::kError, s.error().code);
    return s;
  }
  if (!detached.backend) {
    pair.stage = PairStage::kConnecting;
    connect_next(pair);
    return {};
  }
  pair.stage = PairStage::kOpen;
  pair.backend = service.find_backend(pair.backend_address);
  if (pair.backend != nullptr) pair.backend->active++;
  if (pair.server.open(loop_, std::move(detached.backend), &pair) != 0) {
    close_pair(pair, CloseReason::kError, EIO);
    return Error::logic(pair.describe() + ": cannot watch the backend socket");
  }
  pair.last_activity_ms = uv_now(loop_);
  arm_idle_timer(pair);
  settle(pair);
  return {};
}

void PairEngine::read_addresses_later(uint64_t pair_id) {
  addresses_to_read_.push_back(pair_id);
  if (!address_reader_.initialized()) {
    if (address_reader_.init(uv_idle_init(loop_, address_reader_.get())) != 0) return;
    address_reader_.get()->data = this;
  }
  if (uv_is_active(reinterpret_cast<uv_handle_t*>(address_reader_.get())) == 0) {
    uv_idle_start(address_reader_.get(), &PairEngine::on_address_reader);
  }
}

void PairEngine::on_address_reader(uv_idle_t* handle) {
  auto* self = static_cast<PairEngine*>(handle->data);
  constexpr size_t kBatch = 256;  // ~1,000 syscalls between two polls for I/O
  std::vector<uint64_t>& ids = self->addresses_to_read_;
  const size_t n = std::min(kBatch, ids.size());
  for (size_t i = 0; i < n; ++i) {
    if (Pair* pair = self->pairs_.find(ids[i]); pair != nullptr) pair->read_addresses();
  }
  ids.erase(ids.begin(), ids.begin() + std::ptrdiff_t(n));
  if (ids.empty()) {
    ids.shrink_to_fit();
    uv_idle_stop(handle);
  }
}

}  // namespace seamless::proxy
