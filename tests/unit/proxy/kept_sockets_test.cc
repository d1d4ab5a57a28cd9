// Kept sockets (proxy/kept_sockets.h): what an upgrading keeper writes before its exec
// and the new image reads back. An fd is taken only while it is still the socket the
// entry names; an entry that does not parse takes nothing.
#include "proxy/kept_sockets.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

namespace seamless::proxy {
namespace {

uint64_t inode_of(int fd) {
  struct stat st {};
  return ::fstat(fd, &st) == 0 ? uint64_t(st.st_ino) : 0;
}

bool is_open(int fd) { return ::fcntl(fd, F_GETFD) != -1; }

UniqueFd new_socket() { return UniqueFd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)); }

HeldPair pair_with(uint64_t id, bool backend) {
  HeldPair p;
  p.client = new_socket();
  if (backend) p.backend = new_socket();
  p.record.id = id;
  p.record.service = "pg";
  p.record.backend = "198.18.0.1:7001";
  p.record.bytes_client_to_backend = 1000 + id;
  p.record.client_off_w = -int64_t(id);
  return p;
}

// Stands for the exec: the new image owns the fds the file names; the old image's
// UniqueFds let go of them.
std::map<uint64_t, int> release_all(std::map<uint64_t, HeldPair>& pairs,
                                    std::map<uint64_t, int>* backends) {
  std::map<uint64_t, int> clients;
  for (auto& [id, p] : pairs) {
    clients[id] = p.client.release();
    if (p.backend) (*backends)[id] = p.backend.release();
  }
  return clients;
}

TEST(KeptSockets, EveryPairComesBackWithItsRecordAndItsOwnSockets) {
  std::map<uint64_t, HeldPair> pairs;
  pairs.emplace(3, pair_with(3, true));
  pairs.emplace(7, pair_with(7, false));  // its backend was still connecting
  std::map<uint64_t, uint64_t> client_inodes;
  for (auto& [id, p] : pairs) client_inodes[id] = inode_of(p.client.get());
  const uint64_t backend_inode = inode_of(pairs.at(3).backend.get());
  Result<UniqueFd> memfd = write_kept_sockets(pairs);
  ASSERT_TRUE(memfd.ok()) << memfd.error().message;
  EXPECT_EQ(::fcntl(memfd->get(), F_GETFD) & FD_CLOEXEC, 0) << "it must survive the exec";
  std::map<uint64_t, int> backends;
  release_all(pairs, &backends);

  Result<KeptPairs> kept = read_kept_sockets(memfd->get());
  ASSERT_TRUE(kept.ok()) << kept.error().message;
  EXPECT_TRUE(kept->unmatched.empty());
  ASSERT_EQ(kept->pairs.size(), 2u);
  for (const Message& m : kept->pairs) {
    EXPECT_EQ(m.type, MessageType::kAdopt);
    ASSERT_TRUE(m.record.has_value());
    EXPECT_EQ(m.record->id, m.pair_id);
    EXPECT_EQ(m.record->service, "pg");
    EXPECT_EQ(m.record->bytes_client_to_backend, 1000 + m.pair_id);
    EXPECT_EQ(m.record->client_off_w, -int64_t(m.pair_id));
    ASSERT_EQ(m.fds.size(), m.pair_id == 3 ? 2u : 1u);
    EXPECT_EQ(inode_of(m.fds[0].get()), client_inodes[m.pair_id]);
    EXPECT_NE(::fcntl(m.fds[0].get(), F_GETFD) & FD_CLOEXEC, 0);
  }
  EXPECT_EQ(inode_of(kept->pairs[0].fds[1].get()), backend_inode);
}

// From 32 pairs on, entries are decoded and their fds identified on two threads.
TEST(KeptSockets, ManyPairsComeBackTheSameWayAndCloseOnExec) {
  constexpr uint64_t kPairs = 600;  // 900 sockets: within the usual soft limit of 1,024
  std::map<uint64_t, HeldPair> pairs;
  for (uint64_t id = 1; id <= kPairs; ++id) pairs.emplace(id, pair_with(id, id % 2 == 0));
  Result<UniqueFd> memfd = write_kept_sockets(pairs);
  ASSERT_TRUE(memfd.ok()) << memfd.error().message;
  std::map<uint64_t, int> backends;
  std::map<uint64_t, int> clients = release_all(pairs, &backends);
  for (const auto& [id, fd] : clients) ::fcntl(fd, F_SETFD, 0);  // as after the exec
  for (const auto& [id, fd] : backends) ::fcntl(fd, F_SETFD, 0);
  // A pair in the helper thread's half whose backend number holds another socket now.
  UniqueFd other = new_socket();
  ASSERT_EQ(::dup2(other.get(), backends[500]), backends[500]);

  Result<KeptPairs> kept = read_kept_sockets(memfd->get());
  ASSERT_TRUE(kept.ok()) << kept.error().message;
  EXPECT_EQ(kept->unmatched, std::vector<uint64_t>{500});
  ASSERT_EQ(kept->pairs.size(), kPairs - 1);
  uint64_t expected_id = 1;
  for (const Message& m : kept->pairs) {
    if (expected_id == 500) ++expected_id;
    ASSERT_EQ(m.pair_id, expected_id++);
    ASSERT_TRUE(m.record.has_value());
    EXPECT_EQ(m.record->bytes_client_to_backend, 1000 + m.pair_id);
    ASSERT_EQ(m.fds.size(), m.pair_id % 2 == 0 ? 2u : 1u) << m.pair_id;
    EXPECT_EQ(m.fds[0].get(), clients[m.pair_id]);
    for (const UniqueFd& fd : m.fds) EXPECT_NE(::fcntl(fd.get(), F_GETFD) & FD_CLOEXEC, 0);
  }
  ::close(backends[500]);
}

TEST(KeptSockets, AnFdThatIsAnotherSocketNowIsNeitherTakenNorClosed) {
  std::map<uint64_t, HeldPair> pairs;
  pairs.emplace(1, pair_with(1, true));
  pairs.emplace(2, pair_with(2, true));
  Result<UniqueFd> memfd = write_kept_sockets(pairs);
  ASSERT_TRUE(memfd.ok()) << memfd.error().message;
  std::map<uint64_t, int> backends;
  std::map<uint64_t, int> clients = release_all(pairs, &backends);
  // Pair 2's backend number now holds another socket.
  UniqueFd other = new_socket();
  const uint64_t other_inode = inode_of(other.get());
  ASSERT_EQ(::dup2(other.get(), backends[2]), backends[2]);

  Result<KeptPairs> kept = read_kept_sockets(memfd->get());
  ASSERT_TRUE(kept.ok()) << kept.error().message;
  ASSERT_EQ(kept->pairs.size(), 1u);
  EXPECT_EQ(kept->pairs[0].pair_id, 1u);
  EXPECT_EQ(kept->unmatched, std::vector<uint64_t>{2});
  // Pair 2's client was its own socket: closed, so the file's restore finds its 4-tuple
  // free. The stranger is left as it was.
  EXPECT_FALSE(is_open(clients[2]));
  EXPECT_TRUE(is_open(backends[2]));
  EXPECT_EQ(inode_of(backends[2]), other_inode);
  ::close(backends[2]);
}

TEST(KeptSockets, AMemfdThatDoesNotParseTakesNoFd) {
  std::map<uint64_t, HeldPair> pairs;
  pairs.emplace(1, pair_with(1, true));
  Result<UniqueFd> memfd = write_kept_sockets(pairs);
  ASSERT_TRUE(memfd.ok()) << memfd.error().message;
  std::map<uint64_t, int> backends;
  std::map<uint64_t, int> clients = release_all(pairs, &backends);
  struct stat st {};
  ASSERT_EQ(::fstat(memfd->get(), &st), 0);
  // Cut short in its last entry.
  ASSERT_EQ(::ftruncate(memfd->get(), st.st_size - 3), 0);
  Result<KeptPairs> kept = read_kept_sockets(memfd->get());
  EXPECT_FALSE(kept.ok());
  EXPECT_TRUE(is_open(clients[1]));
  EXPECT_TRUE(is_open(backends[1]));
  // Another layout is refused the same way.
  ASSERT_EQ(::pwrite(memfd->get(), "x", 1, 0), 1);
  EXPECT_FALSE(read_kept_sockets(memfd->get()).ok());
  ::close(clients[1]);
  ::close(backends[1]);
}

}  // namespace
}  // namespace seamless::proxy
