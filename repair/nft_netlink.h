// Private to repair/: the netfilter netlink socket the flow lock talks through, and
// the batches it sends. Nothing here knows about flows; flow_lock.cc and
// nft_ruleset.cc fill batches with nf_tables messages built by libnftnl.
//
// A batch is BEGIN, messages, END in one contiguous buffer, sent with ONE sendmsg:
// nfnetlink applies a batch as one transaction only when BEGIN and END arrive in the
// same skb (a batch cut across two sendmsg calls is aborted). So a large batch grows
// the socket's send buffer instead of being split. Every message carries NLM_F_ACK;
// commit() reads one reply per message and reports the first failure.
#pragma once

#include <linux/netlink.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"

struct mnl_socket;

namespace seamless::repair::nft {

// The largest message a batch will hold. Set element lists live in one attribute
// whose length field is 16 bits, so element messages stay well below 64 KiB.
inline constexpr size_t kMaxMessageBytes = size_t{48} * 1024;

class Batch {
 public:
  explicit Batch(uint32_t first_seq);

  // Opens a message (type is an NFT_MSG_*, family an NFPROTO_*; NLM_F_ACK is
  // added) and returns its header for libnftnl to fill. `what` names it in errors
  // ("add set flows4"). The header stays valid until close(); the caller must not
  // write more than kMaxMessageBytes in total (check room()).
  nlmsghdr* open(uint16_t type, uint16_t family, uint16_t flags, std::string what);
  // Bytes still free in the open message.
  size_t room() const;
  // Records that `attr`, inside the open message, encodes the caller's item
  // `index`, so an error the kernel pins on that attribute names the item.
  void note_item(const nlattr* attr, size_t index);
  // Ends the open message.
  void close();
  // Appends END; afterwards the buffer is ready to send.
  void seal();

  size_t message_count() const { return messages_; }  // without BEGIN and END
  const std::vector<uint8_t>& bytes() const { return buffer_; }
  uint32_t first_seq() const { return first_seq_; }
  uint32_t last_seq() const { return next_seq_ - 1; }

  struct Record {
    uint32_t seq;
    uint16_t type;  // NFT_MSG_*, 0 for BEGIN and END
    std::string what;
    std::vector<std::pair<uint32_t, size_t>> items;  // (offset in message, item index)
  };
  const Record* find(uint32_t seq) const;

 private:
  nlmsghdr* current() { return reinterpret_cast<nlmsghdr*>(buffer_.data() + open_at_); }
  const nlmsghdr* current() const {
    return reinterpret_cast<const nlmsghdr*>(buffer_.data() + open_at_);
  }

  uint32_t first_seq_;
  uint32_t next_seq_;
  std::vector<uint8_t> buffer_;
  size_t open_at_ = kNone;
  size_t messages_ = 0;
  std::vector<Record> records_;  // records_[0] is BEGIN; seq of records_[i] = first + i
  static constexpr size_t kNone = static_cast<size_t>(-1);
};

// How commit() words a failure. Both parts are optional.
struct Reporter {
  // Names item `index` of the batch: "flow 198.18.0.1:5000 -> 198.18.0.2:80".
  std::function<std::string(size_t index)> item;
  // Advice for errno `code` on a message of NFT_MSG_* `type` (0: the whole batch was
  // refused, e.g. EPERM), or "" for none.
  std::function<std::string(uint16_t type, int code)> advice;
};

class Socket {
 public:
  // A new NETLINK_NETFILTER socket; close_on_exec false lets it survive exec.
  static Result<Socket> open(bool close_on_exec);
  // Takes over an already bound netfilter socket, e.g. one inherited across exec.
  static Result<Socket> adopt(UniqueFd fd);

  Socket(Socket&&) noexcept;
  Socket& operator=(Socket&&) noexcept;
  ~Socket();

  int fd() const;
  Batch new_batch() const { return Batch(seq_); }

  // Sends the sealed batch as one transaction and waits for every message's ACK.
  // The error (errno in code) names the first failed message and, when the kernel
  // points at one of its noted items, that item.
  Status commit(const Batch& batch, const Reporter& reporter = {});

  // Runs a dump request (NLM_F_DUMP is added) whose payload `build` writes, calling
  // `on_reply` for every reply message until NLMSG_DONE. A dump the kernel marks
  // as interrupted (the ruleset changed meanwhile) fails with EINTR.
  Status dump(uint16_t type, uint16_t family, const std::function<void(nlmsghdr*)>& build,
              const std::function<void(const nlmsghdr*)>& on_reply);

 private:
  struct Closer {
    void operator()(mnl_socket* nl) const;
  };
  explicit Socket(std::unique_ptr<mnl_socket, Closer> nl);

  Status prepare();
  Status grow_send_buffer(size_t bytes);
  Status send(const void* data, size_t len);
  Result<size_t> receive(bool wait);
  void drain();
  Status read_acks(const Batch& batch, const Reporter& reporter);

  std::unique_ptr<mnl_socket, Closer> nl_;
  uint32_t portid_ = 0;
  uint32_t seq_ = 1;
  std::vector<uint8_t> receive_buffer_;
};

}  // namespace seamless::repair::nft
