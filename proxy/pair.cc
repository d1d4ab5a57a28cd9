#include "proxy/pair.h"

#include "proxy/service.h"
#include "proxy/sockets.h"

namespace seamless::proxy {

uint32_t Pair::flags() const {
  uint32_t flags = reset_flags;
  if (upstream.finished) flags |= repair::kClientFinished;
  if (downstream.finished) flags |= repair::kBackendFinished;
  return flags;
}

void Pair::read_addresses() const {
  if (!addresses_unread) return;
  addresses_unread = false;
  client_peer = peer_endpoint(client.fd());
  client_local = local_endpoint(client.fd());
  backend_local = local_endpoint(server.fd());
  backend_peer = peer_endpoint(server.fd());
}

std::string Pair::describe() const {
  read_addresses();
  return "pair " + std::to_string(id) + " " + (service ? service->config.name : "?") + " " +
         client_peer.to_string() + "->" + client_local.to_string();
}

std::string Pair::describe_full() const {
  std::string text = describe();
  if (!backend_address.empty()) {
    text += " backend ";
    if (backend_local.port != 0) text += backend_local.to_string() + "->";
    text += backend_address;
  }
  return text;
}

repair::PairRecord to_record(const Pair& pair) {
  repair::PairRecord record;
  record.id = pair.id;
  record.service = pair.service ? pair.service->config.name : std::string();
  record.backend = pair.backend_address;
  record.flags = pair.flags();
  record.header_len = static_cast<uint32_t>(pair.proxy_header.size());
  record.header_pending = pair.stage == PairStage::kOpen ? pair.header_pending : record.header_len;
  record.proxy_header = pair.proxy_header;
  record.client_off_w = pair.baselines.client_off_w;
  record.client_off_r = pair.baselines.client_off_r;
  record.backend_off_w = pair.baselines.backend_off_w;
  record.backend_off_r = pair.baselines.backend_off_r;
  record.bytes_client_to_backend = pair.upstream.bytes;
  record.bytes_backend_to_client = pair.downstream.bytes;
  record.created_at_unix_ms = pair.created_at_unix_ms;
  return record;
}

repair::PairRecord accepted_client_record(std::string service, int64_t created_at_unix_ms) {
  const Baselines fresh;
  repair::PairRecord record;
  record.service = std::move(service);
  record.client_off_w = fresh.client_off_w;
  record.client_off_r = fresh.client_off_r;
  record.backend_off_w = fresh.backend_off_w;
  record.backend_off_r = fresh.backend_off_r;
  record.created_at_unix_ms = created_at_unix_ms;
  return record;
}

void apply_record(const repair::PairRecord& record, Pair& pair) {
  pair.backend_address = record.backend;
  pair.upstream.finished = record.has(repair::kClientFinished);
  pair.downstream.finished = record.has(repair::kBackendFinished);
  pair.upstream.bytes = record.bytes_client_to_backend;
  pair.downstream.bytes = record.bytes_backend_to_client;
  pair.reset_flags = record.flags & (repair::kClientReset | repair::kBackendReset);
  pair.proxy_header = record.proxy_header;
  pair.header_pending =
      std::min<uint32_t>(record.header_pending, static_cast<uint32_t>(record.proxy_header.size()));
  pair.baselines = Baselines{record.client_off_w, record.client_off_r, record.backend_off_w,
                             record.backend_off_r};
  pair.created_at_unix_ms = record.created_at_unix_ms;
}

Pair& PairTable::create() { return create_with_id(next_id_); }

Pair& PairTable::create_with_id(uint64_t id) {
  auto pair = std::make_unique<Pair>();
  pair->id = id;
  if (id >= next_id_) next_id_ = id + 1;
  Pair& ref = *pair;
  pairs_[id] = std::move(pair);
  return ref;
}

Pair* PairTable::find(uint64_t id) {
  const auto it = pairs_.find(id);
  return it == pairs_.end() ? nullptr : it->second.get();
}

void PairTable::erase(uint64_t id) { pairs_.erase(id); }

std::vector<uint64_t> PairTable::ids() const {
  std::vector<uint64_t> ids;
  ids.reserve(pairs_.size());
  for (const auto& [id, pair] : pairs_) ids.push_back(id);
  return ids;
}

}  // namespace seamless::proxy
