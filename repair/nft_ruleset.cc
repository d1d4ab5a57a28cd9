#include "repair/nft_ruleset.h"

// clang-format off
// First: <linux/netfilter.h> pulls in <linux/in.h>, which clashes with glibc's
// definitions unless glibc's come first (glibc's header then suppresses the kernel's).
#include <netinet/in.h>
// clang-format on

#include <libmnl/libmnl.h>
#include <libnftnl/chain.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <libnftnl/set.h>
#include <libnftnl/table.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/xt_NFQUEUE.h>

#include <cstdlib>
#include <cstring>
#include <functional>
#include <initializer_list>
#include <memory>
#include <vector>

namespace seamless::repair::nft {
namespace {

// RAII for libnftnl objects: each is freed by its own function.
template <auto Free>
struct FreeWith {
  template <typename T>
  void operator()(T* object) const {
    Free(object);
  }
};
using TablePtr = std::unique_ptr<nftnl_table, FreeWith<nftnl_table_free>>;
using SetPtr = std::unique_ptr<nftnl_set, FreeWith<nftnl_set_free>>;
using ElemPtr = std::unique_ptr<nftnl_set_elem, FreeWith<nftnl_set_elem_free>>;
using ChainPtr = std::unique_ptr<nftnl_chain, FreeWith<nftnl_chain_free>>;
using RulePtr = std::unique_ptr<nftnl_rule, FreeWith<nftnl_rule_free>>;
using ExprPtr = std::unique_ptr<nftnl_expr, FreeWith<nftnl_expr_free>>;

Error out_of_memory(const char* what) { return Error{ENOMEM, std::string("build ") + what}; }

// nftables datatype ids (nftables include/datatype.h); a concatenation's type is
// its members' ids, 6 bits each. `nft list` reads the set's type from this.
constexpr uint32_t kTypeIpv4Addr = 7;
constexpr uint32_t kTypeIpv6Addr = 8;
constexpr uint32_t kTypeInetService = 13;
constexpr uint32_t concat_type(uint32_t addr_type) {
  uint32_t type = 0;
  for (uint32_t member : {addr_type, kTypeInetService, addr_type, kTypeInetService}) {
    type = type << 6 | member;
  }
  return type;
}

// What differs between the IPv4 and the IPv6 half of the lock.
struct FamilySpec {
  const char* set;
  uint32_t set_id;  // names the set inside the batch that creates it
  uint8_t nfproto;
  uint32_t key_type;
  uint32_t key_len;
  uint32_t saddr_offset;  // in the network header
  uint32_t daddr_offset;
  uint32_t addr_len;
};
constexpr FamilySpec kFamilies[] = {
    {kSet4, 1, NFPROTO_IPV4, concat_type(kTypeIpv4Addr), kKeyBytes4, 12, 16, 4},
    {kSet6, 2, NFPROTO_IPV6, concat_type(kTypeIpv6Addr), kKeyBytes6, 8, 24, 16},
};

// The register holding byte `offset` of a concatenation, numbered as nft numbers
// them (16-byte NFT_REG_1.. when aligned, else 4-byte NFT_REG32_xx), so that
// `nft --debug=netlink` output matches TCP_REPAIR.md.
uint32_t register_at(uint32_t offset) {
  const uint32_t slot = offset / NFT_REG32_SIZE;
  const uint32_t per_reg = NFT_REG_SIZE / NFT_REG32_SIZE;
  return slot % per_reg == 0 ? NFT_REG_1 + slot / per_reg : NFT_REG32_00 + slot;
}

Status append_table(Batch& batch, const std::string& table) {
  TablePtr t(nftnl_table_alloc());
  if (!t || nftnl_table_set_str(t.get(), NFTNL_TABLE_NAME, table.c_str()) < 0) {
    return out_of_memory("table");
  }
  nftnl_table_set_u32(t.get(), NFTNL_TABLE_FAMILY, NFPROTO_INET);
  // No NLM_F_EXCL: an existing table is kept as it is. No NFT_TABLE_F_OWNER either:
  // the table must outlive this socket (a restarting keeper resumes a handoff).
  nftnl_table_nlmsg_build_payload(
      batch.open(NFT_MSG_NEWTABLE, NFPROTO_INET, NLM_F_CREATE, "add table"), t.get());
  batch.close();
  return {};
}

struct SetSpec {
  const char* name;
  uint32_t set_id;  // names the set inside the batch that creates it
  uint32_t key_type;
  uint32_t key_len;
  uint32_t flags;
};

Status append_set(Batch& batch, const std::string& table, const SetSpec& spec) {
  SetPtr s(nftnl_set_alloc());
  if (!s || nftnl_set_set_str(s.get(), NFTNL_SET_TABLE, table.c_str()) < 0 ||
      nftnl_set_set_str(s.get(), NFTNL_SET_NAME, spec.name) < 0) {
    return out_of_memory("set");
  }
  nftnl_set_set_u32(s.get(), NFTNL_SET_FAMILY, NFPROTO_INET);
  nftnl_set_set_u32(s.get(), NFTNL_SET_KEY_TYPE, spec.key_type);
  nftnl_set_set_u32(s.get(), NFTNL_SET_KEY_LEN, spec.key_len);
  nftnl_set_set_u32(s.get(), NFTNL_SET_FLAGS, spec.flags);
  nftnl_set_set_u32(s.get(), NFTNL_SET_ID, spec.set_id);
  // Without NLM_F_EXCL the kernel accepts an identical existing set, elements and
  // all, and refuses (EEXIST) one whose type or flags differ.
  nftnl_set_nlmsg_build_payload(
      batch.open(NFT_MSG_NEWSET, NFPROTO_INET, NLM_F_CREATE, std::string("add set ") + spec.name),
      s.get());
  batch.close();
  return {};
}

SetSpec flow_set(const FamilySpec& family) {
  return {family.set, family.set_id, family.key_type, family.key_len, NFT_SET_TIMEOUT};
}

// One element, tcp, or none: whether the lock holds packets or drops them.
constexpr uint32_t kTypeInetProto = 12;
constexpr SetSpec kHolding{kHoldingSet, 3, kTypeInetProto, 1, 0};

Status append_chain(Batch& batch, const std::string& table) {
  ChainPtr c(nftnl_chain_alloc());
  if (!c || nftnl_chain_set_str(c.get(), NFTNL_CHAIN_TABLE, table.c_str()) < 0 ||
      nftnl_chain_set_str(c.get(), NFTNL_CHAIN_NAME, kChain) < 0 ||
      nftnl_chain_set_str(c.get(), NFTNL_CHAIN_TYPE, "filter") < 0) {
    return out_of_memory("chain");
  }
  nftnl_chain_set_u32(c.get(), NFTNL_CHAIN_HOOKNUM, NF_INET_PRE_ROUTING);
  nftnl_chain_set_s32(c.get(), NFTNL_CHAIN_PRIO, kChainPriority);
  nftnl_chain_set_u32(c.get(), NFTNL_CHAIN_POLICY, NF_ACCEPT);
  nftnl_chain_nlmsg_build_payload(
      batch.open(NFT_MSG_NEWCHAIN, NFPROTO_INET, NLM_F_CREATE, "add chain lock"), c.get());
  batch.close();
  return {};
}

Result<RulePtr> new_rule(const std::string& table) {
  RulePtr r(nftnl_rule_alloc());
  if (!r || nftnl_rule_set_str(r.get(), NFTNL_RULE_TABLE, table.c_str()) < 0 ||
      nftnl_rule_set_str(r.get(), NFTNL_RULE_CHAIN, kChain) < 0) {
    return out_of_memory("rule");
  }
  nftnl_rule_set_u32(r.get(), NFTNL_RULE_FAMILY, NFPROTO_INET);
  return r;
}

// A DELRULE naming only the chain deletes all of its rules; followed by the NEWRULEs
// in the same transaction, packets see either the old rules or the new ones.
Status append_flush_chain(Batch& batch, const std::string& table) {
  Result<RulePtr> r = new_rule(table);
  if (!r) return r.error();
  nftnl_rule_nlmsg_build_payload(batch.open(NFT_MSG_DELRULE, NFPROTO_INET, 0, "flush chain lock"),
                                 r->get());
  batch.close();
  return {};
}

// The expression builders: nftnl_rule_add_expr() takes ownership.
Status add_expr(nftnl_rule* rule, const char* name, const std::function<void(nftnl_expr*)>& fill) {
  ExprPtr e(nftnl_expr_alloc(name));
  if (!e) return out_of_memory(name);
  fill(e.get());
  nftnl_rule_add_expr(rule, e.release());
  return {};
}

Status add_meta(nftnl_rule* rule, uint32_t key) {
  return add_expr(rule, "meta", [&](nftnl_expr* e) {
    nftnl_expr_set_u32(e, NFTNL_EXPR_META_KEY, key);
    nftnl_expr_set_u32(e, NFTNL_EXPR_META_DREG, NFT_REG_1);
  });
}

Status add_cmp_eq(nftnl_rule* rule, const void* data, uint32_t len) {
  return add_expr(rule, "cmp", [&](nftnl_expr* e) {
    nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_SREG, NFT_REG_1);
    nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_OP, NFT_CMP_EQ);
    nftnl_expr_set(e, NFTNL_EXPR_CMP_DATA, data, len);
  });
}

Status add_payload(nftnl_rule* rule, uint32_t base, uint32_t offset, uint32_t len, uint32_t reg) {
  return add_expr(rule, "payload", [&](nftnl_expr* e) {
    nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_BASE, base);
    nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_OFFSET, offset);
    nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_LEN, len);
    nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_DREG, reg);
  });
}

Status add_verdict(nftnl_rule* rule, int verdict) {
  return add_expr(rule, "immediate", [&](nftnl_expr* e) {
    nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_DREG, NFT_REG_VERDICT);
    nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_VERDICT, static_cast<uint32_t>(verdict));
  });
}

Status add_lookup(nftnl_rule* rule, const char* set) {
  return add_expr(rule, "lookup", [&](nftnl_expr* e) {
    nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_SREG, NFT_REG_1);
    nftnl_expr_set_str(e, NFTNL_EXPR_LOOKUP_SET, set);
  });
}

// Runs each step in turn and stops at the first failure.
Status all_of(std::initializer_list<std::function<Status()>> steps) {
  for (const auto& step : steps) {
    if (Status s = step(); !s) return s;
  }
  return {};
}

// meta mark <mark> accept: our own injected segments (FIN/ACK) pass the lock.
Status build_mark_rule(nftnl_rule* rule, uint32_t mark) {
  return all_of({[&] { return add_meta(rule, NFT_META_MARK); },
                 [&] { return add_cmp_eq(rule, &mark, sizeof(mark)); },
                 [&] { return add_verdict(rule, NF_ACCEPT); }});
}

// The xtables NFQUEUE target, revision 3, without bypass: a queue nobody has bound
// drops the packet instead of letting it reach a socket mid-handoff.
Status add_queue_target(nftnl_rule* rule, uint16_t queue) {
  return add_expr(rule, "target", [&](nftnl_expr* e) {
    xt_NFQ_info_v3 info{};
    info.queuenum = queue;
    info.queues_total = 1;
    nftnl_expr_set_str(e, NFTNL_EXPR_TG_NAME, "NFQUEUE");
    nftnl_expr_set_u32(e, NFTNL_EXPR_TG_REV, 3);
    // libnftnl frees the info with the expression, so it gets its own copy.
    void* copy = std::malloc(sizeof(info));
    if (copy == nullptr) return;
    std::memcpy(copy, &info, sizeof(info));
    nftnl_expr_set(e, NFTNL_EXPR_TG_INFO, copy, sizeof(info));
  });
}

// <ip|ip6> saddr . tcp sport . <ip|ip6> daddr . tcp dport @<set>, then with a queue
// `meta l4proto @holding queue`, else `drop`.
Status build_lock_rule(nftnl_rule* rule, const FamilySpec& f, std::optional<uint16_t> queue) {
  const uint8_t tcp = IPPROTO_TCP;
  const uint32_t sport_at = f.addr_len;  // where each field lands in the key
  const uint32_t daddr_at = sport_at + NFT_REG32_SIZE;
  const uint32_t dport_at = daddr_at + f.addr_len;
  return all_of({
      [&] { return add_meta(rule, NFT_META_NFPROTO); },
      [&] { return add_cmp_eq(rule, &f.nfproto, sizeof(f.nfproto)); },
      [&] { return add_meta(rule, NFT_META_L4PROTO); },
      [&] { return add_cmp_eq(rule, &tcp, sizeof(tcp)); },
      [&] {
        return add_payload(rule, NFT_PAYLOAD_NETWORK_HEADER, f.saddr_offset, f.addr_len,
                           register_at(0));
      },
      [&] { return add_payload(rule, NFT_PAYLOAD_TRANSPORT_HEADER, 0, 2, register_at(sport_at)); },
      [&] {
        return add_payload(rule, NFT_PAYLOAD_NETWORK_HEADER, f.daddr_offset, f.addr_len,
                           register_at(daddr_at));
      },
      [&] { return add_payload(rule, NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2, register_at(dport_at)); },
      [&] { return add_lookup(rule, f.set); },
      [&] { return queue ? add_meta(rule, NFT_META_L4PROTO) : Status{}; },
      [&] { return queue ? add_lookup(rule, kHoldingSet) : Status{}; },
      [&] { return queue ? add_queue_target(rule, *queue) : add_verdict(rule, NF_DROP); },
  });
}

Status append_rule(Batch& batch, const std::string& table, const std::string& what,
                   const std::function<Status(nftnl_rule*)>& build) {
  Result<RulePtr> r = new_rule(table);
  if (!r) return r.error();
  if (Status s = build(r->get()); !s) return s;
  nftnl_rule_nlmsg_build_payload(
      batch.open(NFT_MSG_NEWRULE, NFPROTO_INET, NLM_F_CREATE | NLM_F_APPEND, what), r->get());
  batch.close();
  return {};
}

}  // namespace

Status append_ruleset(Batch& batch, const std::string& table, uint32_t mark,
                      std::optional<uint16_t> hold_queue) {
  std::vector<std::function<Status()>> steps = {
      [&] { return append_table(batch, table); },
      [&] { return append_set(batch, table, flow_set(kFamilies[0])); },
      [&] { return append_set(batch, table, flow_set(kFamilies[1])); },
      [&] { return hold_queue ? append_set(batch, table, kHolding) : Status{}; },
      [&] { return append_chain(batch, table); },
      [&] { return append_flush_chain(batch, table); },
      [&] {
        return append_rule(batch, table, "add mark rule",
                           [&](nftnl_rule* r) { return build_mark_rule(r, mark); });
      },
  };
  for (const FamilySpec& family : kFamilies) {
    if (hold_queue) {
      steps.emplace_back([&] {
        return append_rule(batch, table, std::string("add ") + family.set + " hold rule",
                           [&](nftnl_rule* r) { return build_lock_rule(r, family, hold_queue); });
      });
    }
    steps.emplace_back([&] {
      return append_rule(batch, table, std::string("add ") + family.set + " rule",
                         [&](nftnl_rule* r) { return build_lock_rule(r, family, std::nullopt); });
    });
  }
  for (const auto& step : steps) {
    if (Status s = step(); !s) return s;
  }
  return {};
}

Status append_holding_switch(Batch& batch, const std::string& table, bool hold) {
  Key tcp;
  tcp.bytes[0] = IPPROTO_TCP;
  tcp.len = 1;
  // As unlock does it: make sure it is there, then delete it, which works whether or
  // not it was there.
  if (Status s = append_elements(batch, table, kHoldingSet, {&tcp, 1}, ElementOp::kEnsure); !s) {
    return s;
  }
  if (hold) return {};
  return append_elements(batch, table, kHoldingSet, {&tcp, 1}, ElementOp::kDelete);
}

namespace {

void put_address(const Endpoint& endpoint, int family, uint8_t*& out) {
  if (family == AF_INET) {
    const std::array<uint8_t, 4> v4 = endpoint.v4_bytes();
    std::memcpy(out, v4.data(), v4.size());
    out += v4.size();
  } else {
    std::memcpy(out, endpoint.addr.data(), endpoint.addr.size());
    out += endpoint.addr.size();
  }
}

// Network order in the first two bytes of a 4-byte slot; the padding stays zero.
void put_port(uint16_t port, uint8_t*& out) {
  out[0] = static_cast<uint8_t>(port >> 8);
  out[1] = static_cast<uint8_t>(port);
  out += 4;
}

}  // namespace

Result<Key> key_of(const Flow& flow, size_t item) {
  const int family = flow.peer.wire_family();
  if (flow.local.wire_family() != family) {
    return Error{EINVAL, "flow " + to_string(flow) + ": peer and local families differ"};
  }
  Key key;
  key.item = item;
  uint8_t* out = key.bytes.data();
  put_address(flow.peer, family, out);
  put_port(flow.peer.port, out);
  put_address(flow.local, family, out);
  put_port(flow.local.port, out);
  key.len = static_cast<uint8_t>(out - key.bytes.data());
  return key;
}

Status append_elements(Batch& batch, const std::string& table, const char* set,
                       std::span<const Key> keys, ElementOp op, std::chrono::milliseconds timeout) {
  // The list header (table, set name) comes from an element-less nftnl_set; the
  // elements are nested by hand so that each one's offset can be noted.
  SetPtr header(nftnl_set_alloc());
  ElemPtr elem(nftnl_set_elem_alloc());
  if (!header || !elem || nftnl_set_set_str(header.get(), NFTNL_SET_TABLE, table.c_str()) < 0 ||
      nftnl_set_set_str(header.get(), NFTNL_SET_NAME, set) < 0) {
    return out_of_memory("set elements");
  }
  if (op == ElementOp::kAdd) {
    nftnl_set_elem_set_u64(elem.get(), NFTNL_SET_ELEM_TIMEOUT,
                           static_cast<uint64_t>(timeout.count()));
  }
  const uint16_t type = op == ElementOp::kDelete ? NFT_MSG_DELSETELEM : NFT_MSG_NEWSETELEM;
  const uint16_t flags = op == ElementOp::kDelete ? 0
                         : op == ElementOp::kAdd  ? NLM_F_CREATE | NLM_F_EXCL
                                                  : NLM_F_CREATE;
  const std::string what =
      std::string(op == ElementOp::kDelete ? "delete elements from set " : "add elements to set ") +
      set;
  // Generous bound on one encoded element (a flows6 one takes 64 bytes).
  constexpr size_t kMaxElementBytes = 128;
  for (size_t i = 0; i < keys.size();) {
    nlmsghdr* nlh = batch.open(type, NFPROTO_INET, flags, what);
    nftnl_set_elems_nlmsg_build_payload(nlh, header.get());
    nlattr* list = mnl_attr_nest_start(nlh, NFTA_SET_ELEM_LIST_ELEMENTS);
    for (; i < keys.size() && batch.room() >= kMaxElementBytes; ++i) {
      if (nftnl_set_elem_set(elem.get(), NFTNL_SET_ELEM_KEY, keys[i].bytes.data(), keys[i].len) <
          0) {
        batch.close();
        return Error{EINVAL, "build set element: bad key length"};
      }
      nlattr* one = mnl_attr_nest_start(nlh, NFTA_LIST_ELEM);
      batch.note_item(one, keys[i].item);
      nftnl_set_elem_nlmsg_build_payload(nlh, elem.get());
      mnl_attr_nest_end(nlh, one);
    }
    mnl_attr_nest_end(nlh, list);
    batch.close();
  }
  return {};
}

Status append_flush_set(Batch& batch, const std::string& table, const char* set) {
  SetPtr header(nftnl_set_alloc());
  if (!header || nftnl_set_set_str(header.get(), NFTNL_SET_TABLE, table.c_str()) < 0 ||
      nftnl_set_set_str(header.get(), NFTNL_SET_NAME, set) < 0) {
    return out_of_memory("set");
  }
  // An element-less set builds no NFTA_SET_ELEM_LIST_ELEMENTS, which is the kernel's
  // "flush" form of the message.
  nftnl_set_elems_nlmsg_build_payload(
      batch.open(NFT_MSG_DELSETELEM, NFPROTO_INET, 0, std::string("flush set ") + set),
      header.get());
  batch.close();
  return {};
}

Status append_delete_table(Batch& batch, const std::string& table) {
  TablePtr t(nftnl_table_alloc());
  if (!t || nftnl_table_set_str(t.get(), NFTNL_TABLE_NAME, table.c_str()) < 0) {
    return out_of_memory("table");
  }
  nftnl_table_set_u32(t.get(), NFTNL_TABLE_FAMILY, NFPROTO_INET);
  nftnl_table_nlmsg_build_payload(batch.open(NFT_MSG_DELTABLE, NFPROTO_INET, 0, "delete table"),
                                  t.get());
  batch.close();
  return {};
}

namespace {

// Counts the NFTA_LIST_ELEMs of a NEWSETELEM dump reply.
size_t count_list_elements(const nlmsghdr* nlh) {
  size_t count = 0;
  const auto* attr =
      static_cast<const nlattr*>(mnl_nlmsg_get_payload_offset(nlh, sizeof(nfgenmsg)));
  int left = static_cast<int>(static_cast<const char*>(mnl_nlmsg_get_payload_tail(nlh)) -
                              reinterpret_cast<const char*>(attr));
  for (; mnl_attr_ok(attr, left); attr = mnl_attr_next(attr)) {
    left -= static_cast<int>(NLA_ALIGN(attr->nla_len));
    if (mnl_attr_get_type(attr) != NFTA_SET_ELEM_LIST_ELEMENTS) continue;
    const auto* elem = static_cast<const nlattr*>(mnl_attr_get_payload(attr));
    int inner = static_cast<int>(mnl_attr_get_payload_len(attr));
    for (; mnl_attr_ok(elem, inner); elem = mnl_attr_next(elem)) {
      inner -= static_cast<int>(NLA_ALIGN(elem->nla_len));
      if (mnl_attr_get_type(elem) == NFTA_LIST_ELEM) ++count;
    }
  }
  return count;
}

}  // namespace

Result<size_t> count_elements(Socket& socket, const std::string& table, const char* set) {
  SetPtr s(nftnl_set_alloc());
  if (!s || nftnl_set_set_str(s.get(), NFTNL_SET_TABLE, table.c_str()) < 0 ||
      nftnl_set_set_str(s.get(), NFTNL_SET_NAME, set) < 0) {
    return out_of_memory("set");
  }
  size_t count = 0;
  Status status = socket.dump(
      NFT_MSG_GETSETELEM, NFPROTO_INET,
      [&](nlmsghdr* nlh) { nftnl_set_elems_nlmsg_build_payload(nlh, s.get()); },
      [&](const nlmsghdr* reply) { count += count_list_elements(reply); });
  if (!status) return status.error().context(std::string("list set ") + set);
  return count;
}

}  // namespace seamless::repair::nft
