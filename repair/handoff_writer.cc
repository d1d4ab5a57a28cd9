// HandoffWriter: streams the handoff file into a private temp file, then commits it
// with fsync + rename + fsync(dir). Frame layout in handoff_format.h.
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <memory>
#include <optional>
#include <string_view>

#include "repair/crc32c.h"
#include "repair/handoff_codec.h"
#include "repair/handoff_file.h"
#include "repair/handoff_format.h"
#include "repair/handoff_io.h"

namespace seamless::repair {

using namespace handoff;  // NOLINT: the format's constants, private to this module

namespace {

std::string mode_string(mode_t mode) {
  char text[8];
  std::snprintf(text, sizeof(text), "%04o", static_cast<unsigned>(mode & 07777));
  return text;
}

// Opens (creating it 0700 if missing) the handoff dir. It will hold user payload, so
// it must be ours alone: not a symlink, owned by our euid, writable by nobody else.
Result<UniqueFd> open_handoff_dir(const std::string& dir) {
  const std::string what = "handoff dir " + dir;
  const bool created = ::mkdir(dir.c_str(), 0700) == 0;
  if (!created && errno != EEXIST) return Error::from_errno(what + ": mkdir");
  UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd) {
    const int err = errno;
    struct stat st {};
    if ((err == ELOOP || err == ENOTDIR) && ::lstat(dir.c_str(), &st) == 0 && S_ISLNK(st.st_mode)) {
      return Error{err, what + ": is a symlink (refused)"};
    }
    return Error::from_errno(what + ": open", err);
  }
  // mkdir's mode passes through the umask; make it exactly 0700.
  if (created && ::fchmod(fd.get(), 0700) != 0) return Error::from_errno(what + ": fchmod");
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return Error::from_errno(what + ": fstat");
  if (st.st_uid != ::geteuid()) {
    return Error{EPERM, what + ": owned by uid " + std::to_string(st.st_uid) + ", not by us (uid " +
                            std::to_string(::geteuid()) + ")"};
  }
  if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
    return Error{EPERM, what + ": mode " + mode_string(st.st_mode) +
                            " is group- or world-writable (want 0700)"};
  }
  return fd;
}

// A writer that died mid-write (a keeper killed, then restarted under a new pid) left
// a temp file that still holds user payload: remove those whose pid is gone. Files of
// live pids are left alone (another instance sharing the dir by mistake, or a reused
// pid); the final file is never touched here. Best effort: errors are ignored.
void remove_dead_writers_temp_files(int dir_fd) {
  constexpr std::string_view kPrefix = ".handoff.tmp.";
  UniqueFd copy(::fcntl(dir_fd, F_DUPFD_CLOEXEC, 0));
  DIR* dir = copy ? ::fdopendir(copy.get()) : nullptr;
  if (dir == nullptr) return;
  copy.release();  // the DIR stream owns it now
  const std::unique_ptr<DIR, int (*)(DIR*)> close_dir(dir, &::closedir);
  while (const dirent* entry = ::readdir(dir)) {
    const std::string_view name = entry->d_name;
    if (!name.starts_with(kPrefix)) continue;
    const std::string_view digits = name.substr(kPrefix.size());
    pid_t pid = 0;
    const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), pid);
    if (ec != std::errc() || end != digits.data() + digits.size() || pid <= 0) continue;
    if (pid == ::getpid()) continue;  // ours: open_temp_file replaces it
    if (::kill(pid, 0) == 0 || errno != ESRCH) continue;
    ::unlinkat(dir_fd, entry->d_name, 0);
  }
}

// O_EXCL|O_NOFOLLOW: never write through a planted file or symlink. Our pid is in the
// name, so an existing file of that name is a leftover of this very process (an
// earlier attempt, or the binary before an exec) and can go.
Result<UniqueFd> open_temp_file(int dir_fd, const std::string& name, const std::string& what) {
  constexpr int kFlags = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC;
  UniqueFd fd(::openat(dir_fd, name.c_str(), kFlags, 0600));
  if (!fd && errno == EEXIST) {
    if (::unlinkat(dir_fd, name.c_str(), 0) != 0) {
      return Error::from_errno(what + ": removing stale " + name);
    }
    fd.reset(::openat(dir_fd, name.c_str(), kFlags, 0600));
  }
  if (!fd) return Error::from_errno(what + ": create " + name);
  if (::fchmod(fd.get(), 0600) != 0) return Error::from_errno(what + ": fchmod " + name);
  return fd;
}

}  // namespace

struct HandoffWriter::Impl {
  HandoffIo default_io;
  HandoffIo* io = &default_io;
  std::string dir;
  UniqueFd dir_fd;
  std::string temp_name;
  UniqueFd fd;
  bool temp_exists = false;  // unlink it unless committed
  // After a failed write the file is inconsistent; after commit it is gone from
  // under us. Either way the writer only refuses from then on.
  enum class State { kOpen, kFailed, kCommitted } state = State::kOpen;
  uint64_t offset = 0;
  uint32_t chain = 0;  // the last frame's crc (format: frames are chained)
  uint64_t records = 0;
  uint64_t data_bytes = 0;

  ~Impl() {
    if (temp_exists) ::unlinkat(dir_fd.get(), temp_name.c_str(), 0);
  }

  std::string what() const { return "handoff dir " + dir; }

  Status fail(Error error) {
    state = State::kFailed;
    return error;
  }

  // Error for a call that comes after the writer is done.
  std::optional<Error> closed(const std::string& where) const {
    if (state == State::kFailed) return Error::logic(where + ": the writer failed earlier");
    if (state == State::kCommitted) return Error::logic(where + ": the file is already committed");
    return std::nullopt;
  }

  // Writes every byte of iov[0..count), retrying short writes and EINTR.
  Status write_all(iovec* iov, int count) {
    while (count > 0) {
      const ssize_t n = io->writev(fd.get(), iov, count);
      if (n < 0) {
        if (errno == EINTR) continue;
        return Error::from_errno("write");
      }
      if (n == 0) return Error{EIO, "write: wrote nothing"};
      auto left = static_cast<size_t>(n);
      offset += left;
      while (count > 0 && left >= iov->iov_len) {
        left -= iov->iov_len;
        ++iov;
        --count;
      }
      if (count > 0) {
        iov->iov_base = static_cast<char*>(iov->iov_base) + left;
        iov->iov_len -= left;
      }
    }
    return {};
  }

  Status write_frame(uint8_t type, std::string_view payload) {
    FrameHead head = encode_frame_head(type, static_cast<uint32_t>(payload.size()));
    chain = crc32c_extend(chain, head.data(), head.size());
    chain = crc32c_extend(chain, payload.data(), payload.size());
    uint8_t crc_bytes[kFrameCrcSize];
    put_le32(crc_bytes, chain);
    iovec iov[3] = {{head.data(), head.size()},
                    {const_cast<char*>(payload.data()), payload.size()},
                    {crc_bytes, sizeof(crc_bytes)}};
    return write_all(iov, 3);
  }

  // `message` is encode_record(record).
  Status write_record(const PairRecord& record, std::string_view message) {
    if (Status s = write_frame(kRecordFrame, message); !s.ok()) return s;
    // The queues go out straight from the record in bounded chunks: no copy of
    // them is ever made, however large they are.
    for (const std::string* queue : record_queues(record)) {
      std::string_view rest = *queue;
      while (!rest.empty()) {
        const std::string_view chunk = rest.substr(0, kMaxDataFrame);
        if (Status s = write_frame(kDataFrame, chunk); !s.ok()) return s;
        rest.remove_prefix(chunk.size());
        data_bytes += chunk.size();
      }
    }
    return {};
  }

  // fsync, close and rename; the caller removes what is left on failure.
  Result<std::string> finish() {
    const std::string trailer = encode_trailer(TrailerInfo{records, data_bytes});
    if (Status s = write_frame(kTrailerFrame, trailer); !s.ok()) {
      return s.error().context("writing trailer");
    }
    // No retry after a failed fsync: the kernel may have dropped the dirty pages, so
    // a second fsync could succeed on data that is gone.
    if (io->fsync(fd.get()) != 0) return Error::from_errno("fsync " + temp_name);
    if (::close(fd.release()) != 0) return Error::from_errno("close " + temp_name);
    const std::string final_name(HandoffWriter::kFileName);
    if (::renameat(dir_fd.get(), temp_name.c_str(), dir_fd.get(), final_name.c_str()) != 0) {
      return Error::from_errno("rename " + temp_name + " to " + final_name);
    }
    temp_exists = false;
    if (io->fsync(dir_fd.get()) != 0) {
      const Error error = Error::from_errno("fsync dir after rename");
      // The keeper must never find a file that its writer reported as failed.
      ::unlinkat(dir_fd.get(), final_name.c_str(), 0);
      return error;
    }
    return dir + "/" + final_name;
  }
};

HandoffWriter::HandoffWriter(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
HandoffWriter::HandoffWriter(HandoffWriter&&) noexcept = default;
HandoffWriter& HandoffWriter::operator=(HandoffWriter&&) noexcept = default;
HandoffWriter::~HandoffWriter() = default;

Result<HandoffWriter> HandoffWriter::create(const std::string& dir, const HandoffHeader& header) {
  auto impl = std::make_unique<Impl>();
  impl->dir = dir;
  return start(std::move(impl), header);
}

Result<HandoffWriter> HandoffWriter::create(const std::string& dir, const HandoffHeader& header,
                                            HandoffIo& io) {
  auto impl = std::make_unique<Impl>();
  impl->dir = dir;
  impl->io = &io;
  return start(std::move(impl), header);
}

Result<HandoffWriter> HandoffWriter::start(std::unique_ptr<Impl> impl,
                                           const HandoffHeader& header) {
  Result<UniqueFd> dir_fd = open_handoff_dir(impl->dir);
  if (!dir_fd.ok()) return dir_fd.error();
  impl->dir_fd = std::move(*dir_fd);
  remove_dead_writers_temp_files(impl->dir_fd.get());
  impl->temp_name = ".handoff.tmp." + std::to_string(::getpid());
  Result<UniqueFd> fd = open_temp_file(impl->dir_fd.get(), impl->temp_name, impl->what());
  if (!fd.ok()) return fd.error();
  impl->fd = std::move(*fd);
  impl->temp_exists = true;

  const std::string message = encode_header(header);
  if (message.size() > kMaxMessageFrame) {
    return Error::logic(impl->what() + ": header of " + std::to_string(message.size()) +
                        " bytes exceeds the limit of " + std::to_string(kMaxMessageFrame));
  }
  Preamble preamble = encode_preamble(kFormatMajor, kFormatMinor);
  impl->chain = preamble_crc(preamble);
  iovec iov[1] = {{preamble.data(), preamble.size()}};
  Status s = impl->write_all(iov, 1);
  if (s.ok()) s = impl->write_frame(kHeaderFrame, message);
  if (!s.ok()) return s.error().context(impl->what() + ": writing header");
  return HandoffWriter(std::move(impl));
}

Status HandoffWriter::append(const PairRecord& record) {
  const std::string where = impl_->what() + ": writing record " + std::to_string(impl_->records) +
                            " (id " + std::to_string(record.id) + ")";
  if (std::optional<Error> done = impl_->closed(where)) return *done;
  // A record we would refuse to read is rejected before anything is written, so the
  // file stays consistent and the caller may go on without it.
  Result<std::string> message = encode_record(record);
  if (!message.ok()) return message.error().context(where);
  if (message->size() > kMaxMessageFrame) {
    return Error::logic(where + ": record message of " + std::to_string(message->size()) +
                        " bytes exceeds the limit of " + std::to_string(kMaxMessageFrame));
  }
  if (Status s = impl_->write_record(record, *message); !s.ok()) {
    return impl_->fail(s.error().context(where));
  }
  ++impl_->records;
  return {};
}

Result<std::string> HandoffWriter::commit() {
  if (std::optional<Error> done = impl_->closed(impl_->what() + ": commit")) return *done;
  Result<std::string> path = impl_->finish();
  if (!path.ok()) return impl_->fail(path.error().context(impl_->what())).error();
  impl_->state = Impl::State::kCommitted;
  return path;
}

uint64_t HandoffWriter::records_written() const { return impl_->records; }
uint64_t HandoffWriter::bytes_written() const { return impl_->offset; }

FormatVersion current_handoff_format() { return {kFormatMajor, kFormatMinor}; }

}  // namespace seamless::repair
