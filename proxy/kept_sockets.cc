#include "proxy/kept_sockets.h"

#include <fcntl.h>
#include <linux/close_range.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <climits>
#include <cstring>
#include <optional>
#include <unordered_set>

#include "base/two_threads.h"

namespace seamless::proxy {
namespace {

constexpr std::string_view kMagic = "seamless kept sockets 1\n";
constexpr size_t kMaxEntryFds = 2;

struct KeptFd {
  int32_t fd = -1;
  uint64_t inode = 0;
};

struct Entry {
  std::string_view packet;  // encode_message of the pair's kAdopt, in the memfd's bytes
  std::vector<KeptFd> fds;
};

template <typename T>
void put(std::string& out, T value) {
  out.append(reinterpret_cast<const char*>(&value), sizeof(value));
}

template <typename T>
bool take(std::string_view& in, T* value) {
  if (in.size() < sizeof(T)) return false;
  std::memcpy(value, in.data(), sizeof(T));
  in.remove_prefix(sizeof(T));
  return true;
}

Result<uint64_t> socket_inode(int fd) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return Error::from_errno("fstat fd " + std::to_string(fd));
  if (!S_ISSOCK(st.st_mode)) return Error::logic("fd " + std::to_string(fd) + " is no socket");
  return uint64_t(st.st_ino);
}

Status write_all(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t n = ::write(fd, bytes.data(), bytes.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Error::from_errno("write kept sockets memfd");
    bytes.remove_prefix(size_t(n));
  }
  return {};
}

Result<std::string> read_all(int fd) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return Error::from_errno("fstat kept sockets memfd");
  std::string bytes(size_t(st.st_size), '\0');
  size_t done = 0;
  while (done < bytes.size()) {
    // pread: the offset is where the writer left it, shared across the exec.
    const ssize_t n = ::pread(fd, bytes.data() + done, bytes.size() - done, off_t(done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Error::from_errno("read kept sockets memfd");
    if (n == 0) return Error::logic("kept sockets memfd: shorter than its size");
    done += size_t(n);
  }
  return bytes;
}

Result<std::vector<Entry>> parse(std::string_view in) {
  if (in.substr(0, kMagic.size()) != kMagic) {
    return Error::logic("kept sockets memfd: not in the layout this binary reads");
  }
  in.remove_prefix(kMagic.size());
  std::vector<Entry> entries;
  while (!in.empty()) {
    Entry e;
    uint32_t length = 0;
    uint32_t fd_count = 0;
    if (!take(in, &length) || length > kMaxMessageBytes || in.size() < length) {
      return Error::logic("kept sockets memfd: bad entry " + std::to_string(entries.size()));
    }
    e.packet = in.substr(0, length);
    in.remove_prefix(length);
    if (!take(in, &fd_count) || fd_count == 0 || fd_count > kMaxEntryFds) {
      return Error::logic("kept sockets memfd: bad entry " + std::to_string(entries.size()));
    }
    for (uint32_t i = 0; i < fd_count; ++i) {
      KeptFd kept;
      if (!take(in, &kept.fd) || !take(in, &kept.inode) || kept.fd < 0) {
        return Error::logic("kept sockets memfd: bad entry " + std::to_string(entries.size()));
      }
      e.fds.push_back(kept);
    }
    entries.push_back(std::move(e));
  }
  return entries;
}

}  // namespace

Result<UniqueFd> write_kept_sockets(const std::map<uint64_t, HeldPair>& pairs) {
  // Encoded on both cores, each half into its own string (~12 ms for 5,000 pairs on
  // one, inside the lock).
  std::vector<const std::pair<const uint64_t, HeldPair>*> order;
  order.reserve(pairs.size());
  for (const auto& entry : pairs) order.push_back(&entry);
  std::string halves[2];
  std::optional<Error> errors[2];
  split_over_two_threads(order.size(), 32, [&](size_t begin, size_t end) {
    const int half = begin == 0 ? 0 : 1;
    std::string& bytes = halves[half];
    bytes.reserve((end - begin) * 512);  // a pair's entry is ~200-400 bytes
    for (size_t i = begin; i < end && !errors[half]; ++i) {
      const auto& [id, pair] = *order[i];
      const size_t fd_count = pair.backend ? 2 : 1;
      Result<std::string> packet =
          encode_message(make_message(MessageType::kAdopt, id, pair.record), fd_count);
      if (!packet) {
        errors[half] = packet.error().context("pair " + std::to_string(id));
        break;
      }
      put(bytes, uint32_t(packet->size()));
      bytes += *packet;
      put(bytes, uint32_t(fd_count));
      for (const UniqueFd* fd : {&pair.client, &pair.backend}) {
        if (!*fd) continue;
        Result<uint64_t> inode = socket_inode(fd->get());
        if (!inode) {
          errors[half] = inode.error().context("pair " + std::to_string(id));
          break;
        }
        put(bytes, int32_t(fd->get()));
        put(bytes, *inode);
      }
    }
  });
  for (const std::optional<Error>& e : errors) {
    if (e) return *e;
  }
  std::string bytes(kMagic);
  bytes.reserve(kMagic.size() + halves[0].size() + halves[1].size());
  bytes += halves[0];
  bytes += halves[1];
  UniqueFd memfd(::memfd_create("seamless-kept-sockets", 0));
  if (!memfd) return Error::from_errno("memfd_create");
  if (Status s = write_all(memfd.get(), bytes); !s) return s.error();
  return memfd;
}

Result<KeptPairs> read_kept_sockets(int memfd) {
  Result<std::string> bytes = read_all(memfd);
  if (!bytes) return bytes.error();
  Result<std::vector<Entry>> entries = parse(*bytes);
  if (!entries) return entries.error();
  // Decoded and their fds identified on both cores: ~17 ms for 5,000 pairs on one,
  // while every client waits. Sized up front (5,000 Messages moved around by a growing
  // vector took ~15 ms), each thread writing only its own entries.
  const size_t count = entries->size();
  std::vector<Message> messages(count);
  std::vector<std::optional<Error>> errors(count);
  std::vector<std::array<uint64_t, kMaxEntryFds>> inodes(count);
  split_over_two_threads(count, 32, [&](size_t begin, size_t end) {
    for (size_t i = begin; i < end; ++i) {
      Result<Message> m = decode_message((*entries)[i].packet);
      if (!m) {
        errors[i] = m.error().context("kept sockets memfd");
        continue;
      }
      if (m->type != MessageType::kAdopt || !m->record) {
        errors[i] = Error::logic("kept sockets memfd: pair " + std::to_string(m->pair_id) +
                                 " is no kAdopt with a record");
        continue;
      }
      messages[i] = std::move(*m);
      const std::vector<KeptFd>& fds = (*entries)[i].fds;
      for (size_t k = 0; k < fds.size(); ++k) {
        Result<uint64_t> inode = socket_inode(fds[k].fd);
        inodes[i][k] = inode ? *inode : 0;  // 0: no socket, never a kept one's inode
      }
    }
  });
  for (const std::optional<Error>& e : errors) {
    if (e) return *e;
  }
  // Every entry parsed: from here on fds are taken, close-on-exec again (they must
  // not reach a worker this image spawns). The dumped sockets were opened after
  // anything the first keeper inherited, so their range holds only this process's own
  // fds: one call instead of an fcntl each (~4 ms at 5,000 pairs, inside the stall).
  int lowest = INT_MAX, highest = -1;
  for (const Entry& e : *entries) {
    for (const KeptFd& f : e.fds) {
      lowest = std::min(lowest, f.fd);
      highest = std::max(highest, f.fd);
    }
  }
  if (highest >= 0 &&
      ::close_range(unsigned(lowest), unsigned(highest), CLOSE_RANGE_CLOEXEC) != 0) {
    for (const Entry& e : *entries) {
      for (const KeptFd& f : e.fds) ::fcntl(f.fd, F_SETFD, FD_CLOEXEC);  // a kernel before 5.11
    }
  }
  KeptPairs kept;
  kept.pairs.reserve(messages.size());
  std::unordered_set<int> taken;
  taken.reserve(2 * messages.size());
  for (size_t i = 0; i < entries->size(); ++i) {
    Message& m = messages[i];
    std::vector<UniqueFd> fds;
    bool all_match = true;
    const std::vector<KeptFd>& kept_fds = (*entries)[i].fds;
    for (size_t k = 0; k < kept_fds.size(); ++k) {
      const KeptFd& f = kept_fds[k];
      if (inodes[i][k] == 0 || inodes[i][k] != f.inode || !taken.insert(f.fd).second) {
        all_match = false;
        continue;
      }
      fds.emplace_back(f.fd);
    }
    if (!all_match) {
      kept.unmatched.push_back(m.pair_id);
      continue;  // the matching fds close here
    }
    m.fds = std::move(fds);
    kept.pairs.push_back(std::move(m));
  }
  return kept;
}

}  // namespace seamless::proxy
