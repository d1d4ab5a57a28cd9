#include "metrics/segment.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bit>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <string>
#include <utility>

namespace seamless::metrics {
namespace {

constexpr std::size_t kSegmentBytes = sizeof(layout::Segment);
constexpr int kSeals = F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL;

Result<Mapping> map_shared(int fd) {
  void* addr = ::mmap(nullptr, kSegmentBytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (addr == MAP_FAILED) return Error::from_errno("mmap");
  return Mapping(addr, kSegmentBytes);
}

Status set_cloexec(int fd, bool cloexec) {
  const int flags = ::fcntl(fd, F_GETFD);
  if (flags < 0) return Error::from_errno("fcntl(F_GETFD)");
  const int wanted = cloexec ? (flags | FD_CLOEXEC) : (flags & ~FD_CLOEXEC);
  if (::fcntl(fd, F_SETFD, wanted) < 0) return Error::from_errno("fcntl(F_SETFD)");
  return {};
}

std::uint64_t unix_now_ns() {
  const auto now = std::chrono::system_clock::now().time_since_epoch();
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(now).count());
}

// Fills in a zeroed segment's header. The magic goes last, with release ordering, so a
// reader that sees it also sees the rest.
void initialize(layout::Segment& segment) {
  layout::Header& header = segment.header;
  header.layout_version = layout::kLayoutVersion;
  header.header_bytes = sizeof(layout::Header);
  header.segment_bytes = kSegmentBytes;
  header.max_services = layout::kMaxServices;
  header.max_backends = layout::kMaxBackends;
  header.created_unix_ns = unix_now_ns();
  const double start_seconds = static_cast<double>(header.created_unix_ns) / 1e9;
  header.process_start_bits = std::bit_cast<std::uint64_t>(start_seconds);
  layout::atomic(header.magic).store(layout::kMagic, std::memory_order_release);
}

std::string hex(std::uint64_t value) {
  char text[19];
  std::snprintf(text, sizeof(text), "0x%016llx", static_cast<unsigned long long>(value));
  return text;
}

// Checks a header read from an fd against what this binary's layout expects.
Status validate_header(const layout::Header& header, std::uint64_t file_bytes) {
  if (header.magic != layout::kMagic) {
    return Error::logic("not a seamless metrics segment (magic " + hex(header.magic) + ")");
  }
  const std::string theirs = std::to_string(header.layout_version);
  const std::string ours = std::to_string(layout::kLayoutVersion);
  if (header.layout_version > layout::kLayoutVersion) {
    return Error::logic("segment layout version " + theirs + " is newer than this binary's " +
                        ours + "; refusing to reinterpret it");
  }
  if (header.layout_version < layout::kLayoutVersion) {
    return Error::logic("segment layout version " + theirs + " is older than this binary's " +
                        ours + "; no migration exists");
  }
  if (header.header_bytes != sizeof(layout::Header) || header.segment_bytes != kSegmentBytes ||
      file_bytes != kSegmentBytes || header.max_services != layout::kMaxServices ||
      header.max_backends != layout::kMaxBackends) {
    return Error::logic("segment size " + std::to_string(file_bytes) +
                        " does not match layout version " + ours + " (" +
                        std::to_string(kSegmentBytes) + " bytes)");
  }
  return {};
}

Status check_and_validate(int fd) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return Error::from_errno("fstat");
  if (!S_ISREG(st.st_mode)) return Error::logic("not a memfd or regular file");
  const auto file_bytes = static_cast<std::uint64_t>(st.st_size);
  if (file_bytes < sizeof(layout::Header)) {
    return Error::logic("too small for a metrics segment (" + std::to_string(file_bytes) +
                        " bytes)");
  }
  layout::Header header{};
  const ssize_t got = ::pread(fd, &header, sizeof(header), 0);
  if (got < 0) return Error::from_errno("pread");
  if (static_cast<std::size_t>(got) != sizeof(header)) return Error::logic("short header read");
  if (Status valid = validate_header(header, file_bytes); !valid) return valid;
  // Without the shrink seal, another process could truncate the file and every mapper
  // would take SIGBUS on its next update.
  const int seals = ::fcntl(fd, F_GET_SEALS);
  if (seals < 0) return Error::from_errno("fcntl(F_GET_SEALS)");
  if ((seals & F_SEAL_SHRINK) == 0) return Error::logic("segment is not sealed against shrinking");
  return {};
}

}  // namespace

Result<int> parse_fd_number(std::string_view text) {
  int fd = -1;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), fd);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || fd < 0) {
    return Error::logic("metrics segment fd \"" + std::string(text) + "\" is not an fd number");
  }
  return fd;
}

Mapping::Mapping(Mapping&& other) noexcept
    : addr_(std::exchange(other.addr_, nullptr)), length_(std::exchange(other.length_, 0)) {}

Mapping& Mapping::operator=(Mapping&& other) noexcept {
  if (this != &other) {
    reset();
    addr_ = std::exchange(other.addr_, nullptr);
    length_ = std::exchange(other.length_, 0);
  }
  return *this;
}

void Mapping::reset() {
  if (addr_ != nullptr) ::munmap(addr_, length_);
  addr_ = nullptr;
  length_ = 0;
}

Result<MetricsSegment> MetricsSegment::create() {
  UniqueFd fd(::memfd_create("seamless-metrics", MFD_CLOEXEC | MFD_ALLOW_SEALING));
  if (!fd) return Error::from_errno("create metrics segment: memfd_create");
  if (::ftruncate(fd.get(), kSegmentBytes) != 0) {
    return Error::from_errno("create metrics segment: ftruncate");
  }
  if (::fcntl(fd.get(), F_ADD_SEALS, kSeals) != 0) {
    return Error::from_errno("create metrics segment: fcntl(F_ADD_SEALS)");
  }
  Result<Mapping> mapping = map_shared(fd.get());
  if (!mapping) return mapping.error().context("create metrics segment");
  MetricsSegment segment(std::move(fd), std::move(mapping).value());
  initialize(segment.data());
  return segment;
}

Result<MetricsSegment> MetricsSegment::adopt(UniqueFd fd) {
  const std::string what = "adopt metrics segment fd " + std::to_string(fd.get());
  if (!fd) return Error::logic(what + ": no fd");
  if (Status cloexec = set_cloexec(fd.get(), true); !cloexec) return cloexec.error().context(what);
  if (Status valid = check_and_validate(fd.get()); !valid) return valid.error().context(what);
  Result<Mapping> mapping = map_shared(fd.get());
  if (!mapping) return mapping.error().context(what);
  return MetricsSegment(std::move(fd), std::move(mapping).value());
}

Status MetricsSegment::set_inherit_on_exec(bool inherit) {
  if (Status status = set_cloexec(fd_.get(), !inherit); !status) {
    return status.error().context("metrics segment fd " + std::to_string(fd_.get()));
  }
  return {};
}

}  // namespace seamless::metrics
