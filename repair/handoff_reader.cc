// HandoffReader: reads the handoff file frame by frame (layout in handoff_format.h).
// The input is untrusted: every length is checked against its cap before anything is
// allocated, buffers grow only as bytes actually arrive, and every frame's checksum
// is verified before its content is used.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "repair/crc32c.h"
#include "repair/handoff_codec.h"
#include "repair/handoff_file.h"
#include "repair/handoff_format.h"
#include "repair/handoff_source.h"

namespace seamless::repair {

using namespace handoff;  // NOLINT: the format's constants, private to this module

namespace {

struct Frame {
  uint8_t type = 0;
  uint32_t length = 0;
  uint64_t offset = 0;  // of the frame's first byte
  uint32_t crc = 0;     // the checksum chain, extended over the frame so far
};

std::string at(uint64_t offset) { return "offset " + std::to_string(offset); }

}  // namespace

struct HandoffReader::Impl {
  std::string name;
  std::unique_ptr<ByteSource> source;
  uint64_t offset = 0;
  uint32_t chain = 0;  // the last verified frame's crc
  FormatVersion format;
  HandoffHeader header;
  uint64_t records = 0;
  uint64_t data_bytes = 0;
  bool done = false;
  std::optional<Error> error;  // sticky
  std::string message;         // the current message frame's payload
  std::string scratch;         // bytes that are checked and skipped

  // Reads up to `size` bytes, fewer only at the end of input.
  Result<size_t> read(void* dst, size_t size) {
    auto* out = static_cast<char*>(dst);
    size_t got = 0;
    while (got < size) {
      Result<size_t> n = source->read_some(out + got, size - got);
      if (!n.ok()) return n.error().context("at " + at(offset + got));
      if (*n == 0) break;
      got += *n;
    }
    offset += got;
    return got;
  }

  Status read_exact(void* dst, size_t size, const Frame& frame, const std::string& what) {
    Result<size_t> got = read(dst, size);
    if (!got.ok()) return got.error();
    if (*got < size) {
      return Error::logic("truncated at " + at(offset) + " (in the " + what + " frame at " +
                          at(frame.offset) + ")");
    }
    return {};
  }

  // The next frame's head; nullopt at a clean end of input.
  Result<std::optional<Frame>> begin_frame(const std::string& what) {
    Frame frame;
    frame.offset = offset;
    uint8_t head[kFrameHeadSize];
    Result<size_t> got = read(head, sizeof(head));
    if (!got.ok()) return got.error();
    if (*got == 0) return std::optional<Frame>();
    if (*got < sizeof(head)) {
      return Error::logic("truncated at " + at(offset) + " (in a frame head, " + what + ")");
    }
    frame.type = head[0];
    frame.length = get_le32(head + 1);
    frame.crc = crc32c_extend(chain, head, sizeof(head));
    const uint32_t limit = frame.type == kDataFrame ? kMaxDataFrame : kMaxMessageFrame;
    if (frame.length > limit) {
      return Error::logic(frame_type_name(frame.type) + " frame at " + at(frame.offset) +
                          ": length " + std::to_string(frame.length) + " exceeds the limit of " +
                          std::to_string(limit) + " (" + what + ")");
    }
    return std::optional<Frame>(frame);
  }

  Status read_payload(Frame& frame, char* dst, size_t size, const std::string& what) {
    if (Status s = read_exact(dst, size, frame, what); !s.ok()) return s;
    frame.crc = crc32c_extend(frame.crc, dst, size);
    return {};
  }

  Status end_frame(const Frame& frame, const std::string& what) {
    uint8_t stored[kFrameCrcSize];
    if (Status s = read_exact(stored, sizeof(stored), frame, what); !s.ok()) return s;
    if (get_le32(stored) != frame.crc) {
      return Error::logic("checksum mismatch in the " + what + " frame at " + at(frame.offset) +
                          " (damaged, or frames lost or reordered)");
    }
    chain = frame.crc;
    return {};
  }

  // A whole message frame (its length is already capped), checksum verified.
  Result<std::string_view> read_message(Frame& frame, const std::string& what) {
    message.resize(frame.length);
    if (Status s = read_payload(frame, message.data(), message.size(), what); !s.ok()) {
      return s.error();
    }
    if (Status s = end_frame(frame, what); !s.ok()) return s.error();
    return std::string_view(message);
  }

  Status skip_payload(Frame& frame, uint64_t size, const std::string& what) {
    scratch.resize(std::min<uint64_t>(size, 64 * 1024));
    while (size > 0) {
      const size_t n = std::min<uint64_t>(size, scratch.size());
      if (Status s = read_payload(frame, scratch.data(), n, what); !s.ok()) return s;
      size -= n;
    }
    return {};
  }

  Status read_start();
  Result<std::optional<PairRecord>> read_next();
  Result<PairRecord> read_record(Frame& frame);
  Status read_data(PairRecord* record, const QueueLengths& lengths, uint64_t data_len,
                   const std::string& what);
  Status read_trailer(Frame& frame);
};

// ---- preamble and header --------------------------------------------------------

Status HandoffReader::Impl::read_start() {
  uint8_t preamble[kPreambleSize];
  Result<size_t> got = read(preamble, sizeof(preamble));
  if (!got.ok()) return got.error();
  const size_t magic_seen = std::min(*got, kMagic.size());
  if (*got == 0) return Error::logic("empty file (not a handoff file)");
  if (std::string_view(reinterpret_cast<char*>(preamble), magic_seen) !=
      kMagic.substr(0, magic_seen)) {
    return Error::logic("not a handoff file (bad magic)");
  }
  if (*got < sizeof(preamble)) return Error::logic("truncated in the preamble");
  if (crc32c_extend(0, preamble, 12) != get_le32(preamble + 12)) {
    return Error::logic("corrupt preamble (checksum mismatch)");
  }
  chain = get_le32(preamble + 12);
  format = {get_le16(preamble + 8), get_le16(preamble + 10)};
  if (format.major != kFormatMajor) {
    const char* relation = format.major > kFormatMajor ? "newer" : "older";
    return Error::logic("format " + format_version_string(format.major, format.minor) + " is " +
                        relation + " than this binary reads (" + std::to_string(kFormatMajor) +
                        ".x)");
  }

  Result<std::optional<Frame>> frame = begin_frame("header");
  if (!frame.ok()) return frame.error();
  if (!*frame) return Error::logic("truncated after the preamble: no header");
  if ((*frame)->type != kHeaderFrame) {
    return Error::logic("the first frame is a " + frame_type_name((*frame)->type) +
                        " frame, not the header");
  }
  Result<std::string_view> bytes = read_message(**frame, "header");
  if (!bytes.ok()) return bytes.error();
  Result<HandoffHeader> decoded = decode_header(*bytes);
  if (!decoded.ok()) return decoded.error();
  header = std::move(*decoded);
  return {};
}

// ---- records --------------------------------------------------------------------

Result<std::optional<PairRecord>> HandoffReader::Impl::read_next() {
  for (;;) {
    const std::string what = "record " + std::to_string(records);
    Result<std::optional<Frame>> frame = begin_frame(what);
    if (!frame.ok()) return frame.error();
    if (!*frame) {
      return Error::logic("truncated after " + std::to_string(records) + " records at " +
                          at(offset) + ": no trailer");
    }
    Frame& f = **frame;
    if (f.type == kRecordFrame) {
      Result<PairRecord> record = read_record(f);
      if (!record.ok()) return record.error();
      return std::optional<PairRecord>(std::move(*record));
    }
    if (f.type == kTrailerFrame) {
      if (Status s = read_trailer(f); !s.ok()) return s.error();
      done = true;
      return std::optional<PairRecord>();
    }
    if ((f.type & kExtensionFrameBit) == 0) {
      return Error::logic("unexpected " + frame_type_name(f.type) + " frame at " + at(f.offset) +
                          " (before " + what + ")");
    }
    // An extension of a newer minor: checked, then skipped.
    const std::string ext = frame_type_name(f.type);
    if (Status s = skip_payload(f, f.length, ext); !s.ok()) return s.error();
    if (Status s = end_frame(f, ext); !s.ok()) return s.error();
  }
}

Result<PairRecord> HandoffReader::Impl::read_record(Frame& frame) {
  const std::string what = "record " + std::to_string(records);
  Result<std::string_view> bytes = read_message(frame, what);
  if (!bytes.ok()) return bytes.error();
  Result<DecodedRecord> decoded = decode_record(*bytes);
  if (!decoded.ok()) return decoded.error().context(what + " (frame at " + at(frame.offset) + ")");
  PairRecord record = std::move(decoded->record);
  if (Status s = read_data(&record, decoded->queue_lengths, decoded->data_len, what); !s.ok()) {
    return s.error();
  }
  ++records;
  return record;
}

Status HandoffReader::Impl::read_data(PairRecord* record, const QueueLengths& lengths,
                                      uint64_t data_len, const std::string& what) {
  const auto queues = record_queues(record);
  for (size_t i = 0; i < kQueueCount; ++i) {
    // Reserve what the input can still supply at most: a length the file merely
    // claims never makes us allocate.
    if (queues[i] && lengths[i] > 0) {
      queues[i]->reserve(std::min<uint64_t>(lengths[i], source->remaining()));
    }
  }
  size_t queue = 0;
  uint64_t left = data_len;
  while (left > 0) {
    const std::string data_what = "data of " + what;
    Result<std::optional<Frame>> next = begin_frame(data_what);
    if (!next.ok()) return next.error();
    if (!*next) {
      return Error::logic("truncated at " + at(offset) + " in the data of " + what + " (" +
                          std::to_string(left) + " bytes missing)");
    }
    Frame& frame = **next;
    if (frame.type != kDataFrame && (frame.type & kExtensionFrameBit) == 0) {
      return Error::logic(what + ": expected a data frame at " + at(frame.offset) + ", found a " +
                          frame_type_name(frame.type) + " frame (" + std::to_string(left) +
                          " bytes missing)");
    }
    if (frame.type == kDataFrame && frame.length > left) {
      return Error::logic(what + ": data frame at " + at(frame.offset) + " carries " +
                          std::to_string(frame.length) + " bytes, only " + std::to_string(left) +
                          " are due");
    }
    uint64_t frame_left = frame.length;
    if (frame.type != kDataFrame) {
      if (Status s = skip_payload(frame, frame_left, data_what); !s.ok()) return s;
      frame_left = 0;
    }
    while (frame_left > 0) {
      while (queue < kQueueCount && (!queues[queue] || queues[queue]->size() == lengths[queue])) {
        ++queue;
      }
      if (queue == kQueueCount) {  // queues of a newer minor, after the ones we know
        if (Status s = skip_payload(frame, frame_left, data_what); !s.ok()) return s;
        left -= frame_left;
        break;
      }
      std::string& target = *queues[queue];
      const size_t n = std::min<uint64_t>(frame_left, lengths[queue] - target.size());
      const size_t old_size = target.size();
      target.resize(old_size + n);
      if (Status s = read_payload(frame, target.data() + old_size, n, data_what); !s.ok()) {
        return s;
      }
      frame_left -= n;
      left -= n;
    }
    if (Status s = end_frame(frame, data_what); !s.ok()) return s;
    if (frame.type == kDataFrame) data_bytes += frame.length;
  }
  return {};
}

Status HandoffReader::Impl::read_trailer(Frame& frame) {
  Result<std::string_view> bytes = read_message(frame, "trailer");
  if (!bytes.ok()) return bytes.error();
  Result<TrailerInfo> trailer = decode_trailer(*bytes);
  if (!trailer.ok()) return trailer.error();
  if (trailer->record_count != records || trailer->data_bytes != data_bytes) {
    return Error::logic("trailer at " + at(frame.offset) + " counts " +
                        std::to_string(trailer->record_count) + " records and " +
                        std::to_string(trailer->data_bytes) + " data bytes, the file has " +
                        std::to_string(records) + " and " + std::to_string(data_bytes));
  }
  char extra;
  Result<size_t> got = read(&extra, 1);
  if (!got.ok()) return got.error();
  if (*got != 0) return Error::logic("unexpected bytes after the trailer at " + at(offset - 1));
  return {};
}

// ---- public ---------------------------------------------------------------------

HandoffReader::HandoffReader(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
HandoffReader::HandoffReader(HandoffReader&&) noexcept = default;
HandoffReader& HandoffReader::operator=(HandoffReader&&) noexcept = default;
HandoffReader::~HandoffReader() = default;

Result<HandoffReader> HandoffReader::start(std::unique_ptr<ByteSource> source, std::string name) {
  auto impl = std::make_unique<Impl>();
  impl->name = std::move(name);
  impl->source = std::move(source);
  if (Status s = impl->read_start(); !s.ok()) {
    return s.error().context("handoff file " + impl->name);
  }
  return HandoffReader(std::move(impl));
}

Result<HandoffReader> HandoffReader::open(const std::string& path) {
  // O_NONBLOCK: a FIFO planted at the path must not hang us in open(); anything
  // but a regular file is refused right after (where the flag changes nothing).
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK));
  if (!fd) return Error::from_errno("handoff file " + path + ": open");
  return from_fd(std::move(fd), path);
}

Result<HandoffReader> HandoffReader::from_fd(UniqueFd fd, std::string name) {
  Result<std::unique_ptr<ByteSource>> source = make_fd_source(std::move(fd));
  if (!source.ok()) return source.error().context("handoff file " + name);
  return start(std::move(*source), std::move(name));
}

Result<HandoffReader> HandoffReader::from_bytes(std::string_view bytes, std::string name) {
  return start(make_memory_source(bytes), std::move(name));
}

FormatVersion HandoffReader::format() const { return impl_->format; }
const HandoffHeader& HandoffReader::header() const { return impl_->header; }
uint64_t HandoffReader::records_read() const { return impl_->records; }
uint64_t HandoffReader::data_bytes_read() const { return impl_->data_bytes; }
uint64_t HandoffReader::offset() const { return impl_->offset; }

Result<std::optional<PairRecord>> HandoffReader::next() {
  if (impl_->error) return *impl_->error;
  if (impl_->done) return std::optional<PairRecord>();
  Result<std::optional<PairRecord>> record = impl_->read_next();
  if (!record.ok()) {
    impl_->error = record.error().context("handoff file " + impl_->name);
    return *impl_->error;
  }
  return record;
}

Result<HandoffSummary> verify_handoff_file(const std::string& path) {
  Result<HandoffReader> reader = HandoffReader::open(path);
  if (!reader.ok()) return reader.error();
  for (;;) {
    Result<std::optional<PairRecord>> record = reader->next();
    if (!record.ok()) return record.error();
    if (!*record) break;
  }
  return HandoffSummary{reader->format(), reader->header(), reader->records_read(),
                        reader->data_bytes_read(), reader->offset()};
}

Status remove_handoff_file(const std::string& path) {
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
    return Error::from_errno("handoff file " + path + ": unlink");
  }
  return {};
}

}  // namespace seamless::repair
