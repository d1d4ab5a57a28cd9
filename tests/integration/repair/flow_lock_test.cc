// The flow lock on the real kernel: two hosts in network namespaces, the lock in the
// host's. Each drop check is paired with its control (the same data arriving once
// the lock is gone), so a lock that dropped nothing, or everything, fails.
#include "repair/flow_lock.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/capability.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <iostream>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "repair/packet_hold.h"
#include "tests/integration/support/netns.h"

namespace seamless::repair {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using testing::InNetns;
using testing::TwoHosts;

#define ASSERT_OK(expr)                                   \
  do {                                                    \
    const auto& status_ = (expr);                         \
    ASSERT_TRUE(status_.ok()) << status_.error().message; \
  } while (0)

// ---- sockets ----

Endpoint parse(const std::string& text) {
  Result<Endpoint> endpoint = Endpoint::parse(text);
  EXPECT_TRUE(endpoint.ok()) << text;
  return endpoint ? *endpoint : Endpoint{};
}

// `host` as "198.18.0.2" or "[2001:db8::2]"; port 0 (which parse() refuses) is fine.
Endpoint at(const std::string& host, uint16_t port) {
  Endpoint endpoint = parse(host + ":1");
  endpoint.port = port;
  return endpoint;
}

Endpoint socket_name(int fd, bool peer) {
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  const int rc = peer ? ::getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len)
                      : ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
  EXPECT_EQ(rc, 0);
  Result<Endpoint> endpoint = Endpoint::from_sockaddr(reinterpret_cast<sockaddr*>(&ss), len);
  return endpoint ? *endpoint : Endpoint{};
}

// The flow of an accepted socket, as the peer's packets carry it.
Flow inbound_flow(int fd) { return {socket_name(fd, true), socket_name(fd, false)}; }

UniqueFd tcp_socket(const Endpoint& endpoint, int flags = 0) {
  UniqueFd fd(::socket(endpoint.family, SOCK_STREAM | SOCK_CLOEXEC | flags, 0));
  EXPECT_TRUE(fd.valid());
  return fd;
}

UniqueFd listen_at(const std::string& host) {
  const Endpoint endpoint = at(host, 0);
  UniqueFd fd = tcp_socket(endpoint, SOCK_NONBLOCK);
  const int off = 0;  // dual-stack when bound to [::]
  if (endpoint.family == AF_INET6)
    ::setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof(off));
  socklen_t len = 0;
  const sockaddr_storage ss = endpoint.to_sockaddr(&len);
  EXPECT_EQ(::bind(fd.get(), reinterpret_cast<const sockaddr*>(&ss), len), 0) << host;
  EXPECT_EQ(::listen(fd.get(), 8), 0);
  return fd;
}

UniqueFd connect_to(const Endpoint& endpoint, uint32_t mark = 0) {
  UniqueFd fd = tcp_socket(endpoint);
  if (mark) {
    EXPECT_EQ(::setsockopt(fd.get(), SOL_SOCKET, SO_MARK, &mark, sizeof(mark)), 0);
  }
  socklen_t len = 0;
  const sockaddr_storage ss = endpoint.to_sockaddr(&len);
  EXPECT_EQ(::connect(fd.get(), reinterpret_cast<const sockaddr*>(&ss), len), 0)
      << endpoint.to_string();
  return fd;
}

bool readable_within(int fd, milliseconds timeout) {
  pollfd pfd{fd, POLLIN, 0};
  return ::poll(&pfd, 1, static_cast<int>(timeout.count())) > 0;
}

UniqueFd accept_from(int listener) {
  EXPECT_TRUE(readable_within(listener, seconds(5)));
  return UniqueFd(::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
}

// A deterministic, position-dependent payload: reordering or loss shows up.
std::string pattern(size_t size) {
  std::string data(size, '\0');
  for (size_t i = 0; i < size; ++i) data[i] = static_cast<char>('a' + (i * 7 + i / 251) % 26);
  return data;
}

void send_all(int fd, const std::string& data) {
  for (size_t sent = 0; sent < data.size();) {
    const ssize_t n = ::send(fd, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
    ASSERT_GT(n, 0) << "send";
    sent += static_cast<size_t>(n);
  }
}

// Reads exactly `size` bytes within `timeout`; EOF or an error ends early.
std::string receive(int fd, size_t size, milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::string data;
  char buffer[16384];
  while (data.size() < size) {
    const auto left =
        std::chrono::duration_cast<milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0 || !readable_within(fd, left)) break;
    const ssize_t n = ::recv(fd, buffer, std::min(sizeof(buffer), size - data.size()), 0);
    if (n <= 0) break;
    data.append(buffer, static_cast<size_t>(n));
  }
  return data;
}

struct Connection {
  UniqueFd client;  // the side whose packets the lock drops
  UniqueFd server;  // the host's accepted socket
};

// Listens on `listen_host` in `server_ns`, connects to `target_host` from `client_ns`.
Connection connect_pair(const testing::NetNamespace& server_ns, const std::string& listen_host,
                        const testing::NetNamespace& client_ns, const std::string& target_host,
                        uint32_t mark = 0) {
  UniqueFd listener;
  {
    InNetns in(server_ns);
    listener = listen_at(listen_host);
  }
  const Endpoint target = at(target_host, socket_name(listener.get(), false).port);
  Connection c;
  {
    InNetns in(client_ns);
    c.client = connect_to(target, mark);
  }
  c.server = accept_from(listener.get());
  return c;
}

bool wait_until(const std::function<bool()>& condition, milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!condition()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(milliseconds(20));
  }
  return true;
}

// Output of a shell command.
std::string capture(const std::string& command) {
  std::string out;
  if (FILE* pipe = ::popen(command.c_str(), "r")) {
    char buffer[4096];
    while (size_t n = std::fread(buffer, 1, sizeof(buffer), pipe)) out.append(buffer, n);
    ::pclose(pipe);
  }
  return out;
}

std::string replace_all(std::string text, const std::string& from, const std::string& to) {
  for (size_t at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size())) {
    text.replace(at, from.size(), to);
  }
  return text;
}

size_t occurrences(const std::string& text, const std::string& what) {
  size_t count = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++count;
  return count;
}

// ---- fixture ----

class FlowLockTest : public ::testing::Test {
 protected:
  ~FlowLockTest() override {
    for (const std::string& table : {table_, reference_}) {
      testing::sh(hosts_.host.exec("nft delete table inet " + table + " 2>/dev/null"));
    }
  }

  FlowLock open_lock(FlowLockOptions options = {}) {
    InNetns in(hosts_.host);
    Result<FlowLock> lock = FlowLock::open(table_, options);
    if (!lock) ADD_FAILURE() << lock.error().message;
    return std::move(lock).value();  // a failed open throws here, ending the test
  }

  // A lock whose rules queue to a new PacketHold (hold_), each unlock releasing the
  // unlocked flows' packets, as a restore's locks do.
  FlowLock open_holding_lock(size_t hold_up_to_flows = FlowLockOptions{}.hold_up_to_flows) {
    Result<PacketHold> hold = [&] {
      InNetns in(hosts_.host);
      return PacketHold::open();
    }();
    if (!hold) ADD_FAILURE() << hold.error().message;
    hold_.emplace(std::move(hold).value());  // a failed open throws here, ending the test
    FlowLockOptions options;
    options.hold_queue = hold_->queue();
    options.hold_up_to_flows = hold_up_to_flows;
    FlowLock lock = open_lock(options);
    lock.release_on_unlock(&*hold_, ReleaseOnUnlock::kTheirPackets);
    return lock;
  }

  std::string nft(const std::string& args) { return capture(hosts_.host.exec("nft " + args)); }

  size_t count(FlowLock& lock) {
    Result<size_t> n = lock.count_locked();
    EXPECT_TRUE(n.ok()) << n.error().message;
    return n ? *n : static_cast<size_t>(-1);
  }

  // Data from the client is dropped while its flow is locked and arrives, whole and in
  // order, once unlocked (the client's retransmission).
  void expect_lock_holds_back(FlowLock& lock, Connection& c) {
    send_all(c.client.get(), "control");
    ASSERT_EQ(receive(c.server.get(), 7, seconds(5)), "control") << "no traffic even unlocked";
    const Flow flow = inbound_flow(c.server.get());
    ASSERT_OK(lock.lock({&flow, 1}, seconds(30)));
    const std::string payload = pattern(20000);
    send_all(c.client.get(), payload);
    EXPECT_FALSE(readable_within(c.server.get(), milliseconds(300))) << "the lock let data in";
    ASSERT_OK(lock.unlock({&flow, 1}));
    EXPECT_EQ(receive(c.server.get(), payload.size(), seconds(10)), payload);
    EXPECT_EQ(count(lock), 0u);
  }

  TwoHosts hosts_;
  std::optional<PacketHold> hold_;  // open_holding_lock's
  const std::string table_ = "sl_lock_" + std::to_string(::getpid());
  const std::string reference_ = "sl_ref_" + std::to_string(::getpid());
};

TEST_F(FlowLockTest, OpenBuildsTheRulesetThatNftBuilds) {
  FlowLock lock = open_lock();
  // The ruleset of TCP_REPAIR.md, made by nft itself: both must list identically,
  // down to the netlink expressions and registers.
  testing::must_sh(hosts_.host.exec(
      "nft -f - <<'EOF'\ntable inet " + reference_ + " {\n" +
      "  set flows4 { type ipv4_addr . inet_service . ipv4_addr . inet_service; flags timeout; }\n"
      "  set flows6 { type ipv6_addr . inet_service . ipv6_addr . inet_service; flags timeout; }\n"
      "  chain lock { type filter hook prerouting priority -90; policy accept;\n"
      "    meta mark 0x5ea1 accept\n"
      "    ip saddr . tcp sport . ip daddr . tcp dport @flows4 drop\n"
      "    ip6 saddr . tcp sport . ip6 daddr . tcp dport @flows6 drop\n  }\n}\nEOF"));
  for (const std::string args : {"list table inet ", "--debug=netlink list table inet "}) {
    const std::string ours = replace_all(nft(args + table_), table_, "T");
    ASSERT_NE(ours.find("chain lock"), std::string::npos) << ours;
    EXPECT_EQ(ours, replace_all(nft(args + reference_), reference_, "T"));
  }
  const std::string listing = nft("list table inet " + table_);
  EXPECT_NE(listing.find("type ipv4_addr . inet_service . ipv4_addr . inet_service"),
            std::string::npos);
  EXPECT_NE(listing.find("type ipv6_addr . inet_service . ipv6_addr . inet_service"),
            std::string::npos);
  EXPECT_NE(listing.find("hook prerouting priority dstnat + 10; policy accept;"),
            std::string::npos);  // -90
  EXPECT_NE(listing.find("meta mark 0x00005ea1 accept"), std::string::npos);
  EXPECT_EQ(lock.table(), table_);
  EXPECT_EQ(lock.mark(), kFlowLockMark);
}

TEST_F(FlowLockTest, OpenTwiceKeepsLockedFlowsAndRulesOnce) {
  FlowLock first = open_lock();
  const Flow flows[] = {{parse("198.18.0.1:4000"), parse("198.18.0.2:80")},
                        {parse("[2001:db8::1]:4000"), parse("[2001:db8::2]:80")}};
  ASSERT_OK(first.lock(flows, seconds(60)));
  FlowLock second = open_lock();  // e.g. a keeper restarting mid-handoff
  EXPECT_EQ(count(second), 2u);
  const std::string listing = nft("list table inet " + table_);
  EXPECT_EQ(occurrences(listing, "@flows4 drop"), 1u) << listing;
  EXPECT_EQ(occurrences(listing, "meta mark"), 1u) << listing;
  EXPECT_NE(listing.find("198.18.0.1 . 4000 . 198.18.0.2 . 80"), std::string::npos) << listing;
  ASSERT_OK(second.unlock(flows));
  EXPECT_EQ(count(first), 0u);
}

TEST_F(FlowLockTest, OpeningWithoutEnsuringTrustsTheTableAndLeavesItsRulesAlone) {
  FlowLock maker = open_lock();
  const Flow flow{parse("198.18.0.1:4000"), parse("198.18.0.2:80")};
  ASSERT_OK(maker.lock({&flow, 1}, seconds(60)));
  FlowLockOptions attach;
  attach.ensure_ruleset = false;
  FlowLock attached = open_lock(attach);  // e.g. a restoring worker
  EXPECT_EQ(count(attached), 1u);
  ASSERT_OK(attached.unlock({&flow, 1}));
  EXPECT_EQ(count(maker), 0u);
  // Without the table, the first use says so.
  ASSERT_OK(maker.destroy());
  FlowLock orphan = open_lock(attach);
  const Status status = orphan.lock({&flow, 1}, seconds(1));
  ASSERT_FALSE(status.ok());
  EXPECT_NE(status.error().message.find("lock inet " + table_), std::string::npos)
      << status.error().message;
}

TEST_F(FlowLockTest, DestroyRemovesTheTable) {
  FlowLock lock = open_lock();
  ASSERT_EQ(testing::sh(hosts_.host.exec("nft list table inet " + table_ + " >/dev/null")), 0);
  ASSERT_OK(lock.destroy());
  EXPECT_NE(testing::sh(hosts_.host.exec("nft list table inet " + table_ + " 2>/dev/null")), 0);
  EXPECT_TRUE(lock.destroy().ok()) << "destroy is idempotent";
  const Flow flow{parse("198.18.0.1:4000"), parse("198.18.0.2:80")};
  const Status status = lock.lock({&flow, 1}, seconds(1));
  ASSERT_FALSE(status.ok());
  EXPECT_NE(status.error().message.find("lock inet " + table_), std::string::npos);
  EXPECT_NE(status.error().message.find("gone"), std::string::npos) << status.error().message;
}

TEST_F(FlowLockTest, LockedIpv4FlowIsHeldBackUntilUnlocked) {
  FlowLock lock = open_lock();
  Connection c = connect_pair(hosts_.host, "198.18.0.2", hosts_.peer, "198.18.0.2");
  expect_lock_holds_back(lock, c);
}

TEST_F(FlowLockTest, LockedIpv6FlowIsHeldBackUntilUnlocked) {
  FlowLock lock = open_lock();
  Connection c = connect_pair(hosts_.host, "[2001:db8::2]", hosts_.peer, "[2001:db8::2]");
  expect_lock_holds_back(lock, c);
}

TEST_F(FlowLockTest, MappedClientOfDualStackListenerGoesToFlows4) {
  FlowLock lock = open_lock();
  Connection c = connect_pair(hosts_.host, "[::]", hosts_.peer, "198.18.0.2");
  const Flow flow = inbound_flow(c.server.get());
  ASSERT_TRUE(flow.peer.is_v4_mapped()) << to_string(flow);
  ASSERT_OK(lock.lock({&flow, 1}, seconds(30)));
  const std::string set4 = nft("list set inet " + table_ + " flows4");
  EXPECT_NE(set4.find("198.18.0.1 . " + std::to_string(flow.peer.port) + " . 198.18.0.2"),
            std::string::npos)
      << set4;
  ASSERT_OK(lock.unlock({&flow, 1}));
  expect_lock_holds_back(lock, c);
}

// skb marks are cleared crossing namespaces, so this runs over loopback inside the
// host namespace (its own address, still 198.18.0.2), where the mark survives.
TEST_F(FlowLockTest, MarkedPacketsPassTheLock) {
  FlowLock lock = open_lock();
  Connection marked =
      connect_pair(hosts_.host, "198.18.0.2", hosts_.host, "198.18.0.2", kFlowLockMark);
  Connection plain = connect_pair(hosts_.host, "198.18.0.2", hosts_.host, "198.18.0.2");
  const Flow flows[] = {inbound_flow(marked.server.get()), inbound_flow(plain.server.get())};
  ASSERT_OK(lock.lock(flows, seconds(30)));
  ASSERT_EQ(count(lock), 2u);
  send_all(marked.client.get(), "marked");
  send_all(plain.client.get(), "plain");
  EXPECT_EQ(receive(marked.server.get(), 6, seconds(5)), "marked");
  EXPECT_FALSE(readable_within(plain.server.get(), milliseconds(300)));
  ASSERT_OK(lock.unlock(flows));
  EXPECT_EQ(receive(plain.server.get(), 5, seconds(10)), "plain");
}

TEST_F(FlowLockTest, LocksExpire) {
  FlowLock lock = open_lock();
  const Flow flow{parse("198.18.0.1:4000"), parse("198.18.0.2:80")};
  ASSERT_OK(lock.lock({&flow, 1}, milliseconds(300)));
  EXPECT_EQ(count(lock), 1u);
  EXPECT_TRUE(wait_until([&] { return count(lock) == 0; }, seconds(5)));
  EXPECT_TRUE(lock.unlock({&flow, 1}).ok()) << "unlocking an expired flow is fine";
}

TEST_F(FlowLockTest, RefreshRenewsTheTimeout) {
  FlowLock lock = open_lock();
  const Flow kept{parse("198.18.0.1:4000"), parse("198.18.0.2:80")};
  const Flow lapsed{parse("198.18.0.1:4001"), parse("198.18.0.2:80")};
  const Flow fresh{parse("[2001:db8::1]:4002"), parse("[2001:db8::2]:80")};
  const Flow both[] = {kept, lapsed};
  ASSERT_OK(lock.lock(both, milliseconds(400)));
  const Flow renewed[] = {kept, fresh};  // `fresh` was not locked: refresh locks it
  ASSERT_OK(lock.refresh(renewed, seconds(60)));
  EXPECT_EQ(count(lock), 3u);
  // `lapsed` is the clock: once it has expired, `kept` would have too.
  EXPECT_TRUE(wait_until([&] { return count(lock) == 2; }, seconds(5)));
  const std::string set4 = nft("list set inet " + table_ + " flows4");
  EXPECT_NE(set4.find("198.18.0.1 . 4000 "), std::string::npos) << set4;
  ASSERT_OK(lock.unlock(renewed));
}

TEST_F(FlowLockTest, UnlockToleratesFlowsThatAreNotLocked) {
  FlowLock lock = open_lock();
  const Flow locked{parse("198.18.0.1:4000"), parse("198.18.0.2:80")};
  const Flow never{parse("198.18.0.1:4001"), parse("198.18.0.2:80")};
  ASSERT_OK(lock.lock({&locked, 1}, seconds(60)));
  const Flow both[] = {never, locked};
  ASSERT_OK(lock.unlock(both));
  EXPECT_EQ(count(lock), 0u);
}

TEST_F(FlowLockTest, LockingALockedFlowFailsWholeAndNamesIt) {
  FlowLock lock = open_lock();
  const Flow held{parse("[2001:db8::1]:4000"), parse("[2001:db8::2]:80")};
  const Flow other{parse("198.18.0.1:4001"), parse("198.18.0.2:80")};
  ASSERT_OK(lock.lock({&held, 1}, seconds(60)));
  const Flow both[] = {other, held};
  const Status status = lock.lock(both, seconds(60));
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.error().code, EEXIST);
  const std::string& message = status.error().message;
  EXPECT_NE(message.find("lock inet " + table_), std::string::npos) << message;
  EXPECT_NE(message.find(to_string(held)), std::string::npos) << message;
  EXPECT_NE(message.find("already locked"), std::string::npos) << message;
  EXPECT_EQ(count(lock), 1u) << "one transaction: `other` must not be locked either";
}

std::vector<Flow> many_flows(size_t n, bool v4, bool v6) {
  std::vector<Flow> flows;
  for (size_t i = 0; i < n; ++i) {
    const bool four = v4 && (!v6 || i % 2 == 0);
    const std::string port = std::to_string(10000 + i);
    if (four) {
      flows.push_back({parse("198.18." + std::to_string(1 + i / 250) + "." +
                             std::to_string(1 + i % 250) + ":" + port),
                       parse("198.18.0.2:80")});
    } else {
      flows.push_back(
          {parse("[2001:db8::1:" + std::to_string(i) + "]:" + port), parse("[2001:db8::2]:443")});
    }
  }
  return flows;
}

TEST_F(FlowLockTest, FiveThousandFlowsInOneCall) {
  FlowLock lock = open_lock();
  struct Case {
    const char* name;
    bool v4, v6;
  };
  for (const Case& c :
       {Case{"IPv4", true, false}, Case{"IPv6", false, true}, Case{"mixed", true, true}}) {
    const std::vector<Flow> flows = many_flows(5000, c.v4, c.v6);
    const auto t0 = std::chrono::steady_clock::now();
    ASSERT_OK(lock.lock(flows, seconds(60)));
    const auto t1 = std::chrono::steady_clock::now();
    EXPECT_EQ(count(lock), 5000u) << c.name;
    const auto t2 = std::chrono::steady_clock::now();
    ASSERT_OK(lock.unlock(flows));
    const auto t3 = std::chrono::steady_clock::now();
    EXPECT_EQ(count(lock), 0u) << c.name;
    ASSERT_OK(lock.lock(flows, seconds(60)));
    const auto t4 = std::chrono::steady_clock::now();
    ASSERT_OK(lock.unlock_all());
    const auto t5 = std::chrono::steady_clock::now();
    EXPECT_EQ(count(lock), 0u) << c.name;
    using us = std::chrono::microseconds;
    std::cout << "[ figures  ] 5000 " << c.name << " flows: lock "
              << std::chrono::duration_cast<us>(t1 - t0).count() / 1000.0 << " ms, unlock "
              << std::chrono::duration_cast<us>(t3 - t2).count() / 1000.0 << " ms, unlock_all "
              << std::chrono::duration_cast<us>(t5 - t4).count() / 1000.0 << " ms\n";
  }
}

TEST_F(FlowLockTest, SocketIsCloseOnExecUnlessAsked) {
  FlowLock closing = open_lock();
  EXPECT_NE(::fcntl(closing.netlink_fd(), F_GETFD) & FD_CLOEXEC, 0);
  FlowLock kept =
      open_lock({.keep_on_exec = true, .ensure_ruleset = true, .hold_queue = std::nullopt});
  EXPECT_EQ(::fcntl(kept.netlink_fd(), F_GETFD) & FD_CLOEXEC, 0);
  const Flow flow{parse("198.18.0.1:4000"), parse("198.18.0.2:80")};
  ASSERT_OK(kept.lock({&flow, 1}, seconds(60)));
  // What an exec'd successor does with the inherited descriptor.
  Result<FlowLock> adopted = FlowLock::adopt(UniqueFd(::dup(kept.netlink_fd())), table_);
  ASSERT_TRUE(adopted.ok()) << adopted.error().message;
  EXPECT_EQ(count(*adopted), 1u);
  ASSERT_OK(adopted->unlock({&flow, 1}));
  EXPECT_FALSE(FlowLock::adopt(UniqueFd(::dup(STDERR_FILENO)), table_).ok());
}

TEST_F(FlowLockTest, WithoutCapNetAdminTheErrorSaysSo) {
  int out[2];
  ASSERT_EQ(::pipe(out), 0);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::close(out[0]);
    if (::setns(hosts_.host.fd(), CLONE_NEWNET) != 0) ::_exit(2);
    __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
    __user_cap_data_struct caps[2] = {};
    if (::syscall(SYS_capget, &header, caps) != 0) ::_exit(3);
    caps[0].effective &= ~(1u << CAP_NET_ADMIN);
    caps[0].permitted &= ~(1u << CAP_NET_ADMIN);
    if (::syscall(SYS_capset, &header, caps) != 0) ::_exit(4);
    Result<FlowLock> lock = FlowLock::open(table_);
    const std::string text = lock ? "opened" : lock.error().message;
    (void)!::write(out[1], text.data(), text.size());
    ::_exit(0);
  }
  ::close(out[1]);
  std::string text;
  char buffer[512];
  for (ssize_t n; (n = ::read(out[0], buffer, sizeof(buffer))) > 0;) text.append(buffer, n);
  ::close(out[0]);
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  EXPECT_NE(text.find("needs CAP_NET_ADMIN"), std::string::npos) << text;
  EXPECT_NE(text.find("open inet " + table_), std::string::npos) << text;
  EXPECT_NE(testing::sh(hosts_.host.exec("nft list table inet " + table_ + " 2>/dev/null")), 0);
}

uint32_t retransmissions(int fd) {
  tcp_info info{};
  socklen_t len = sizeof(info);
  EXPECT_EQ(::getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len), 0);
  return info.tcpi_total_retrans;
}

// The hold: a locked flow's packets wait in the kernel and reach the socket as soon
// as their flow is unlocked, with no retransmission by the peer. Each client sends
// one small segment: its tail-loss probe would wait 2 RTT + 200 ms, so a segment
// that was dropped instead could not arrive, unretransmitted, in the 50 ms here.
TEST_F(FlowLockTest, AHoldingLockQueuesPacketsAndReleasesThemOnUnlock) {
  FlowLock lock = open_holding_lock();
  EXPECT_NE(nft("list table inet " + table_).find("hook prerouting"), std::string::npos);
  Connection four = connect_pair(hosts_.host, "198.18.0.2", hosts_.peer, "198.18.0.2");
  Connection six = connect_pair(hosts_.host, "[2001:db8::2]", hosts_.peer, "[2001:db8::2]");
  for (Connection* c : {&four, &six}) {
    send_all(c->client.get(), "warm");
    ASSERT_EQ(receive(c->server.get(), 4, seconds(5)), "warm");
  }
  const Flow flows[] = {inbound_flow(four.server.get()), inbound_flow(six.server.get())};
  ASSERT_OK(lock.lock(flows, seconds(30)));
  send_all(four.client.get(), "four");
  send_all(six.client.get(), "six");
  EXPECT_FALSE(readable_within(four.server.get(), milliseconds(50))) << "the lock let data in";
  EXPECT_FALSE(readable_within(six.server.get(), milliseconds(1)));

  ASSERT_OK(lock.unlock({&flows[0], 1}));
  EXPECT_EQ(receive(four.server.get(), 4, seconds(5)), "four");
  EXPECT_EQ(retransmissions(four.client.get()), 0u) << "released from the hold, not resent";
  // Releasing everything while a flow is still locked only queues its packet again.
  Result<ReleaseCounts> all = hold_->release_all();
  ASSERT_TRUE(all.ok()) << all.error().message;
  EXPECT_GE(all->released, 1u) << "the IPv6 client's segment was held";
  EXPECT_FALSE(readable_within(six.server.get(), milliseconds(100))) << "released while locked";
  ASSERT_OK(lock.unlock({&flows[1], 1}));
  EXPECT_EQ(receive(six.server.get(), 3, seconds(5)), "six");
  EXPECT_EQ(count(lock), 0u);
}

// unlock_all names no flow: every locked flow of both families opens, and what the
// hold queued is delivered (no retransmission needed). The lock works as before after.
TEST_F(FlowLockTest, UnlockAllOpensEveryFlowAndReleasesWhatWasHeld) {
  FlowLock lock = open_holding_lock();
  Connection four = connect_pair(hosts_.host, "198.18.0.2", hosts_.peer, "198.18.0.2");
  Connection six = connect_pair(hosts_.host, "[2001:db8::2]", hosts_.peer, "[2001:db8::2]");
  for (Connection* c : {&four, &six}) {
    send_all(c->client.get(), "warm");
    ASSERT_EQ(receive(c->server.get(), 4, seconds(5)), "warm");
  }
  std::vector<Flow> flows = many_flows(100, true, true);
  flows.push_back(inbound_flow(four.server.get()));
  flows.push_back(inbound_flow(six.server.get()));
  ASSERT_OK(lock.lock(flows, seconds(30)));
  send_all(four.client.get(), "four");
  send_all(six.client.get(), "six");
  EXPECT_FALSE(readable_within(four.server.get(), milliseconds(50))) << "the lock let data in";
  EXPECT_FALSE(readable_within(six.server.get(), milliseconds(1)));
  ASSERT_OK(lock.unlock_all());
  EXPECT_EQ(count(lock), 0u);
  EXPECT_EQ(receive(four.server.get(), 4, seconds(5)), "four");
  EXPECT_EQ(receive(six.server.get(), 3, seconds(5)), "six");
  EXPECT_EQ(retransmissions(four.client.get()), 0u) << "released from the hold, not resent";
  EXPECT_EQ(retransmissions(six.client.get()), 0u) << "released from the hold, not resent";
  ASSERT_OK(lock.unlock_all());  // nothing locked is fine
  expect_lock_holds_back(lock, four);
}

// A lock longer than the client's retransmission timer: its copies of the held
// segment are dropped, the segment itself is released, and the data arrives once.
TEST_F(FlowLockTest, AHoldKeepsOneCopyOfARetransmittedSegment) {
  FlowLock lock = open_holding_lock();
  Connection c = connect_pair(hosts_.host, "198.18.0.2", hosts_.peer, "198.18.0.2");
  const Flow flow = inbound_flow(c.server.get());
  ASSERT_OK(lock.lock({&flow, 1}, seconds(30)));
  send_all(c.client.get(), "once");
  // Tail-loss probe at ~200 ms, then the RTO: at least one copy within a second.
  ASSERT_TRUE(wait_until([&] { return retransmissions(c.client.get()) >= 1; }, seconds(3)));
  ASSERT_OK(lock.unlock({&flow, 1}));
  EXPECT_EQ(receive(c.server.get(), 4, seconds(5)), "once");
  EXPECT_GE(hold_->released_total(), 1u);
  EXPECT_GE(hold_->dropped_total(), 1u);
  send_all(c.client.get(), "more");
  EXPECT_EQ(receive(c.server.get(), 4, seconds(5)), "more") << "the stream goes on";
}

// Above hold_up_to_flows a lock drops (the peer resends); the next small lock holds
// again: the switch travels with each lock.
TEST_F(FlowLockTest, ALockOfManyFlowsDropsInsteadOfHolding) {
  FlowLock lock = open_holding_lock(/*hold_up_to_flows=*/1);
  Connection c = connect_pair(hosts_.host, "198.18.0.2", hosts_.peer, "198.18.0.2");
  const Flow flows[] = {inbound_flow(c.server.get()),
                        {parse("198.18.0.1:4000"), parse("198.18.0.2:80")}};
  ASSERT_OK(lock.lock(flows, seconds(30)));
  send_all(c.client.get(), "dropped");
  EXPECT_FALSE(readable_within(c.server.get(), milliseconds(100)));
  ASSERT_OK(lock.unlock(flows));
  EXPECT_EQ(receive(c.server.get(), 7, seconds(5)), "dropped");
  EXPECT_GE(retransmissions(c.client.get()), 1u) << "it came again from the client";
  EXPECT_EQ(hold_->released_total() + hold_->dropped_total(), 0u) << "nothing was queued";

  ASSERT_OK(lock.lock({&flows[0], 1}, seconds(30)));
  send_all(c.client.get(), "held");
  EXPECT_FALSE(readable_within(c.server.get(), milliseconds(50)));
  ASSERT_OK(lock.unlock({&flows[0], 1}));
  EXPECT_EQ(receive(c.server.get(), 4, seconds(5)), "held");
  EXPECT_GE(hold_->released_total(), 1u);
}

// A flow joining a lock with lock_more() keeps the lock dropping, though it alone is
// few enough to be held: a switch to holding would hold every locked flow's packets.
TEST_F(FlowLockTest, FlowsLockedMoreKeepTheLocksDropping) {
  FlowLock lock = open_holding_lock(/*hold_up_to_flows=*/1);
  Connection c = connect_pair(hosts_.host, "198.18.0.2", hosts_.peer, "198.18.0.2");
  const Flow flows[] = {{parse("198.18.0.1:4000"), parse("198.18.0.2:80")},
                        {parse("198.18.0.1:4001"), parse("198.18.0.2:80")}};
  ASSERT_OK(lock.lock(flows, seconds(30)));
  const Flow joining = inbound_flow(c.server.get());
  ASSERT_OK(lock.lock_more({&joining, 1}, seconds(30)));
  send_all(c.client.get(), "dropped");
  EXPECT_FALSE(readable_within(c.server.get(), milliseconds(100)));
  EXPECT_EQ(lock.count_locked().value(), 3u);
  ASSERT_OK(lock.unlock_all());
  EXPECT_EQ(receive(c.server.get(), 7, seconds(5)), "dropped");
  EXPECT_GE(retransmissions(c.client.get()), 1u) << "it came again from the client";
  EXPECT_EQ(hold_->released_total() + hold_->dropped_total(), 0u) << "nothing was queued";
}

TEST_F(FlowLockTest, EachPacketHoldBindsAQueueOfItsOwn) {
  InNetns in(hosts_.host);
  Result<PacketHold> first = PacketHold::open();
  ASSERT_TRUE(first.ok()) << first.error().message;
  Result<PacketHold> second = PacketHold::open();
  ASSERT_TRUE(second.ok()) << second.error().message;
  EXPECT_NE(first->queue(), second->queue());
  PacketHoldOptions only_the_first;
  only_the_first.first_queue = first->queue();
  only_the_first.queues_to_try = 1;
  Result<PacketHold> third = PacketHold::open(only_the_first);
  ASSERT_FALSE(third.ok());
  EXPECT_EQ(third.error().code, EBUSY) << third.error().message;
}

}  // namespace
}  // namespace seamless::repair
