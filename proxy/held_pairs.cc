#include "proxy/held_pairs.h"

namespace seamless::proxy {
namespace {

Error contradiction(const Message& m, const char* why) {
  return Error::logic(std::string("control channel: ") + to_string(m.type) + " for pair " +
                      std::to_string(m.pair_id) + ": " + why);
}

}  // namespace

uint64_t HeldPairs::hold_client(UniqueFd client, repair::PairRecord record) {
  const uint64_t id = next_id_;
  saw_id(id);
  record.id = id;
  HeldPair pair;
  pair.client = std::move(client);
  pair.record = std::move(record);
  pairs_.emplace(id, std::move(pair));
  return id;
}

Status HeldPairs::apply(Message& m) {
  auto it = pairs_.find(m.pair_id);
  switch (m.type) {
    case MessageType::kRestored:
    case MessageType::kAdopt: {
      if (m.fds.empty() || !m.record) return contradiction(m, "no fd or record");
      if (it != pairs_.end()) return contradiction(m, "id already held");
      HeldPair pair;
      pair.client = std::move(m.fds[0]);
      if (m.fds.size() > 1) pair.backend = std::move(m.fds[1]);
      pair.record = std::move(*m.record);
      pair.restoring = m.type == MessageType::kRestored;
      pair.rebased = !pair.restoring;
      saw_id(m.pair_id);
      pairs_.emplace(m.pair_id, std::move(pair));
      return {};
    }
    case MessageType::kBackendConnected:
      if (m.fds.size() != 1 || !m.record) return contradiction(m, "no fd or record");
      if (it == pairs_.end()) return contradiction(m, "unknown id");
      it->second.backend = std::move(m.fds[0]);
      it->second.record = std::move(*m.record);
      return {};
    case MessageType::kPairRecords: {
      // Each record on its own: one for an unknown id is reported, the others apply.
      std::string unknown;
      for (repair::PairRecord& r : m.records) {
        auto pair = pairs_.find(r.id);
        if (pair == pairs_.end()) {
          unknown += (unknown.empty() ? "" : ", ") + std::to_string(r.id);
          continue;
        }
        pair->second.record = std::move(r);
        pair->second.rebased = true;
      }
      if (unknown.empty()) return {};
      return Error::logic("control channel: pair-records for unknown pairs " + unknown);
    }
    case MessageType::kPairRecord:
      if (!m.record) return contradiction(m, "no record");
      if (it == pairs_.end()) return contradiction(m, "unknown id");
      it->second.record = std::move(*m.record);
      it->second.rebased = true;
      return {};
    case MessageType::kPairClosed:
      if (it == pairs_.end()) return contradiction(m, "unknown id");
      pairs_.erase(it);
      return {};
    default:
      return {};
  }
}

std::vector<repair::LivePair> HeldPairs::live_pairs() const {
  std::vector<repair::LivePair> out;
  out.reserve(pairs_.size());
  for (const auto& [id, p] : pairs_) {
    out.push_back(repair::LivePair{p.client.get(), p.backend.get(), p.record, {}, {}});
  }
  return out;
}

size_t HeldPairs::fd_count() const {
  size_t n = 0;
  for (const auto& [id, p] : pairs_) n += (p.client ? 1 : 0) + (p.backend ? 1 : 0);
  return n;
}

}  // namespace seamless::proxy
