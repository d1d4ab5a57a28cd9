#include "repair/flow_lock.h"

#include <linux/netfilter/nf_tables.h>

#include <cerrno>
#include <cstring>
#include <utility>
#include <vector>

#include "repair/nft_netlink.h"
#include "repair/nft_ruleset.h"
#include "repair/packet_hold.h"

namespace seamless::repair {
namespace {

// What an errno means for the flow lock, by the kind of message that drew it
// (type 0: the kernel refused the whole batch, or the socket itself failed).
std::string advice(uint16_t type, int code) {
  const bool elements = type == NFT_MSG_NEWSETELEM || type == NFT_MSG_GETSETELEM;
  switch (code) {
    case EPERM:
      return "needs CAP_NET_ADMIN in this network namespace";
    case EPROTONOSUPPORT:
      return "nf_tables is missing: the kernel has no nfnetlink (CONFIG_NF_TABLES)";
    case EAFNOSUPPORT:
      return "nf_tables is missing its inet family (CONFIG_NF_TABLES_INET)";
    case EOPNOTSUPP:
    case EBUSY:
      if (type == 0) return "nf_tables is missing: no nf_tables module (CONFIG_NF_TABLES)";
      if (type == NFT_MSG_NEWCHAIN) return "chain lock exists with another type, hook or priority";
      break;
    case ENOENT:
      if (type == NFT_MSG_NEWCHAIN || type == NFT_MSG_NEWRULE) {
        return "nf_tables is missing the inet filter chain type or an expression";
      }
      if (elements) return "the table or its set is gone (destroyed by someone else?)";
      if (type == NFT_MSG_DELSETELEM) return "not locked, or the table or its set is gone";
      break;
    case EEXIST:
      if (type == NFT_MSG_NEWSET) return "the set exists with another type or flags";
      if (type == NFT_MSG_NEWSETELEM) return "already locked (refresh() extends a lock)";
      break;
    default:
      break;
  }
  return "";
}

Error with_advice(const Error& error, uint16_t type) {
  const std::string text = advice(type, error.code);
  return text.empty() ? error : Error{error.code, error.message + ": " + text};
}

// The flows of one call, as set element keys, split by the set they go to.
struct Keys {
  std::vector<nft::Key> v4;
  std::vector<nft::Key> v6;
};

Result<Keys> encode(std::span<const Flow> flows) {
  Keys keys;
  for (size_t i = 0; i < flows.size(); ++i) {
    Result<nft::Key> key = nft::key_of(flows[i], i);
    if (!key) return key.error();
    (key->len == nft::kKeyBytes4 ? keys.v4 : keys.v6).push_back(*key);
  }
  return keys;
}

// The element messages of one call, per set, in this order within the transaction.
struct Steps {
  bool ensure = false;                       // add without timeout if absent
  bool remove = false;                       // delete
  std::chrono::milliseconds add_timeout{0};  // > 0: add with this timeout
  std::optional<bool> holding;               // switch the holding set on or off
};

Status run_steps(nft::Socket& socket, const std::string& table, std::span<const Flow> flows,
                 const Steps& steps) {
  if (flows.empty()) return {};
  Result<Keys> keys = encode(flows);
  if (!keys) return keys.error();
  nft::Batch batch = socket.new_batch();
  for (const auto& [set, list] :
       {std::pair{nft::kSet4, &keys->v4}, std::pair{nft::kSet6, &keys->v6}}) {
    if (list->empty()) continue;
    using nft::ElementOp;
    Status s;
    if (s && steps.ensure) s = nft::append_elements(batch, table, set, *list, ElementOp::kEnsure);
    if (s && steps.remove) s = nft::append_elements(batch, table, set, *list, ElementOp::kDelete);
    if (s && steps.add_timeout.count() > 0) {
      s = nft::append_elements(batch, table, set, *list, ElementOp::kAdd, steps.add_timeout);
    }
    if (!s) return s;
  }
  if (steps.holding) {
    if (Status s = nft::append_holding_switch(batch, table, *steps.holding); !s) return s;
  }
  batch.seal();
  const nft::Reporter reporter{[&](size_t i) { return "flow " + to_string(flows[i]); }, advice};
  return socket.commit(batch, reporter);
}

Status check_timeout(std::chrono::milliseconds timeout) {
  if (timeout.count() > 0) return {};
  return Error{EINVAL, "timeout must be positive, got " + std::to_string(timeout.count()) + " ms"};
}

}  // namespace

std::string to_string(const Flow& flow) {
  return flow.peer.to_string() + " -> " + flow.local.to_string();
}

FlowLock::FlowLock(std::string table, uint32_t mark, std::unique_ptr<nft::Socket> socket)
    : table_(std::move(table)), mark_(mark), socket_(std::move(socket)) {}
FlowLock::FlowLock(FlowLock&&) noexcept = default;
FlowLock& FlowLock::operator=(FlowLock&&) noexcept = default;
FlowLock::~FlowLock() = default;

Result<FlowLock> FlowLock::open(std::string table, FlowLockOptions options) {
  return start(std::move(table), options, nft::Socket::open(!options.keep_on_exec));
}

Result<FlowLock> FlowLock::adopt(UniqueFd netlink_fd, std::string table, FlowLockOptions options) {
  return start(std::move(table), options, nft::Socket::adopt(std::move(netlink_fd)));
}

Result<FlowLock> FlowLock::start(std::string table, FlowLockOptions options,
                                 Result<nft::Socket> socket) {
  const std::string where = "open inet " + table;
  if (table.empty() || table.size() >= NFT_TABLE_MAXNAMELEN) {
    return Error{EINVAL, where + ": the table name must have 1 to " +
                             std::to_string(NFT_TABLE_MAXNAMELEN - 1) + " characters"};
  }
  if (!socket) return with_advice(socket.error(), 0).context(where);
  FlowLock lock(std::move(table), options.mark,
                std::make_unique<nft::Socket>(std::move(socket).value()));
  lock.hold_queue_ = options.hold_queue;
  lock.hold_up_to_flows_ = options.hold_up_to_flows;
  if (options.ensure_ruleset) {
    if (Status s = lock.ensure_ruleset(); !s) return s.error();
  }
  return lock;
}

Status FlowLock::ensure_ruleset() {
  nft::Batch batch = socket_->new_batch();
  if (Status s = nft::append_ruleset(batch, table_, mark_, hold_queue_); !s)
    return failure("open", s.error());
  batch.seal();
  if (Status s = socket_->commit(batch, {{}, advice}); !s) return failure("open", s.error());
  return {};
}

Status FlowLock::lock(std::span<const Flow> flows, std::chrono::milliseconds timeout) {
  if (Status s = check_timeout(timeout); !s) return failure("lock", s.error());
  Steps steps;
  steps.add_timeout = timeout;
  if (hold_queue_) steps.holding = flows.size() <= hold_up_to_flows_;
  Status s = run_steps(*socket_, table_, flows, steps);
  return s ? s : failure("lock", s.error());
}

Status FlowLock::lock_more(std::span<const Flow> flows, std::chrono::milliseconds timeout) {
  if (Status s = check_timeout(timeout); !s) return failure("lock", s.error());
  Status s = run_steps(*socket_, table_, flows,
                       {.ensure = false, .remove = false, .add_timeout = timeout, .holding = {}});
  return s ? s : failure("lock", s.error());
}

Status FlowLock::unlock(std::span<const Flow> flows) {
  Status s = run_steps(*socket_, table_, flows,
                       {.ensure = true, .remove = true, .add_timeout = {}, .holding = {}});
  if (!s) return failure("unlock", s.error());
  return release_held(flows);
}

Status FlowLock::unlock_all() {
  nft::Batch batch = socket_->new_batch();
  for (const char* set : {nft::kSet4, nft::kSet6}) {
    if (Status s = nft::append_flush_set(batch, table_, set); !s)
      return failure("unlock", s.error());
  }
  batch.seal();
  if (Status s = socket_->commit(batch, {{}, advice}); !s) return failure("unlock", s.error());
  if (hold_ == nullptr) return {};
  if (Result<ReleaseCounts> r = hold_->release_all(); !r) {
    return failure("release held packets of", r.error());
  }
  return {};
}

void FlowLock::release_on_unlock(PacketHold* hold, ReleaseOnUnlock what) {
  hold_ = hold;
  release_ = what;
}

Status FlowLock::release_held(std::span<const Flow> flows) {
  if (hold_ == nullptr) return {};
  Result<ReleaseCounts> released =
      release_ == ReleaseOnUnlock::kAllPackets ? hold_->release_all() : hold_->release(flows);
  if (!released) return failure("release held packets of", released.error());
  return {};
}

Status FlowLock::refresh(std::span<const Flow> flows, std::chrono::milliseconds timeout) {
  if (Status s = check_timeout(timeout); !s) return failure("refresh", s.error());
  Status s = run_steps(*socket_, table_, flows,
                       {.ensure = true, .remove = true, .add_timeout = timeout, .holding = {}});
  return s ? s : failure("refresh", s.error());
}

Result<size_t> FlowLock::count_locked() {
  size_t total = 0;
  for (const char* set : {nft::kSet4, nft::kSet6}) {
    // A dump cut short by a concurrent change (EINTR) is simply asked again.
    Result<size_t> count = nft::count_elements(*socket_, table_, set);
    for (int retry = 0; !count && count.error().code == EINTR && retry < 3; ++retry) {
      count = nft::count_elements(*socket_, table_, set);
    }
    if (!count) return failure("count", with_advice(count.error(), NFT_MSG_GETSETELEM));
    total += *count;
  }
  return total;
}

Status FlowLock::destroy() {
  nft::Batch batch = socket_->new_batch();
  if (Status s = nft::append_delete_table(batch, table_); !s) return failure("destroy", s.error());
  batch.seal();
  Status s = socket_->commit(batch, {{}, advice});
  if (!s && s.error().code != ENOENT) return failure("destroy", s.error());
  // ENOENT: already gone, which is what destroy() is for. Nothing is locked now.
  if (hold_ != nullptr) {
    if (Result<ReleaseCounts> r = hold_->release_all(); !r) {
      return failure("release held packets of", r.error());
    }
  }
  return {};
}

int FlowLock::netlink_fd() const { return socket_->fd(); }

Error FlowLock::failure(const char* op, const Error& cause) const {
  return cause.context(std::string(op) + " inet " + table_);
}

}  // namespace seamless::repair
