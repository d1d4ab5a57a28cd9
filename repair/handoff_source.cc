#include "repair/handoff_source.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

namespace seamless::repair {
namespace {

class MemorySource : public ByteSource {
 public:
  explicit MemorySource(std::string_view bytes) : bytes_(bytes) {}

  Result<size_t> read_some(void* dst, size_t size) override {
    const size_t n = std::min(size, bytes_.size());
    if (n > 0) std::memcpy(dst, bytes_.data(), n);
    bytes_.remove_prefix(n);
    return n;
  }
  uint64_t remaining() const override { return bytes_.size(); }

 private:
  std::string_view bytes_;
};

// Frames are read as a 5-byte head, a payload and a 4-byte CRC; the buffer turns
// those small reads into few syscalls, while large payloads bypass it.
class FdSource : public ByteSource {
 public:
  static constexpr size_t kBufferSize = 64 * 1024;

  FdSource(UniqueFd fd, uint64_t size) : fd_(std::move(fd)), size_(size), buffer_(kBufferSize) {}

  Result<size_t> read_some(void* dst, size_t size) override {
    if (start_ == end_) {
      if (size >= buffer_.size()) {
        Result<size_t> got = read_fd(dst, size);
        if (got.ok()) consumed_ += *got;
        return got;
      }
      Result<size_t> got = read_fd(buffer_.data(), buffer_.size());
      if (!got.ok()) return got;
      start_ = 0;
      end_ = *got;
    }
    const size_t n = std::min(size, end_ - start_);
    if (n > 0) std::memcpy(dst, buffer_.data() + start_, n);
    start_ += n;
    consumed_ += n;
    return n;
  }

  uint64_t remaining() const override { return consumed_ >= size_ ? 0 : size_ - consumed_; }

 private:
  Result<size_t> read_fd(void* dst, size_t size) {
    for (;;) {
      const ssize_t n = ::read(fd_.get(), dst, size);
      if (n >= 0) return static_cast<size_t>(n);
      if (errno != EINTR) return Error::from_errno("read");
    }
  }

  UniqueFd fd_;
  uint64_t size_;
  uint64_t consumed_ = 0;  // bytes handed to the caller
  std::vector<char> buffer_;
  size_t start_ = 0;
  size_t end_ = 0;
};

}  // namespace

std::unique_ptr<ByteSource> make_memory_source(std::string_view bytes) {
  return std::make_unique<MemorySource>(bytes);
}

Result<std::unique_ptr<ByteSource>> make_fd_source(UniqueFd fd) {
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return Error::from_errno("fstat");
  if (!S_ISREG(st.st_mode)) return Error::logic("not a regular file");
  std::unique_ptr<ByteSource> source =
      std::make_unique<FdSource>(std::move(fd), static_cast<uint64_t>(st.st_size));
  return source;
}

}  // namespace seamless::repair
