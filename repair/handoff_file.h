// The handoff file: every migrated pair's repair state, written by the keeper after
// the dump and read by the next worker to restore (DESIGN.md §4, §5). It holds user
// payload (the queues), so it is private to us (dir 0700, file 0600) and removed as
// soon as it is no longer needed.
//
// Writing (keeper; the flows are locked and dumped, nothing closed yet):
//   auto w = HandoffWriter::create(dir, header);  // dir/.handoff.tmp.<pid>
//   for each pair: w->append(record);             // streamed: one record in memory
//   auto path = w->commit();                      // fsync, rename to dir/handoff.bin
//   verify_handoff_file(*path);                   // read it all back before closing
//   On any error: drop the writer (it unlinks its temp file), leave repair, unlock,
//   and keep serving on the live sockets.
// Reading (worker, or `seamless handoff inspect`):
//   auto r = HandoffReader::open(path);           // checks magic, version, header
//   while (auto rec = r->next(); rec.ok() && *rec) ...;
//   next() returns nullopt only after the trailer verified that nothing is missing,
//   so act on records only once the whole file has read cleanly (verify first).
//   remove_handoff_file(path) after the restore.
//
// The file is untrusted input: every length is capped before allocation, every
// frame checksummed, and every error names the file and where it went wrong.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "base/result.h"
#include "base/unique_fd.h"
#include "repair/pair_record.h"

namespace seamless::repair {

struct FormatVersion {
  uint16_t major = 0;
  uint16_t minor = 0;
  bool operator==(const FormatVersion&) const = default;
};
// The version this binary writes; it reads every minor of this major.
FormatVersion current_handoff_format();

struct HandoffHeader {
  std::string writer_version;  // the writing binary's version, e.g. "0.1.0"
  std::string config_digest;   // digest of the config the pairs were served under
  int64_t created_at_unix_ms = 0;
  // Process counters carried across the exec so metrics never fall back to zero.
  std::map<std::string, uint64_t> counters;
  bool operator==(const HandoffHeader&) const = default;
};

struct HandoffSummary {
  FormatVersion format;
  HandoffHeader header;
  uint64_t records = 0;
  uint64_t data_bytes = 0;  // queue bytes over all records
  uint64_t file_bytes = 0;
};

class HandoffIo;

class HandoffWriter {
 public:
  // The file name the committed file gets inside the handoff dir.
  static constexpr std::string_view kFileName = "handoff.bin";

  // Creates `dir` (0700) if missing; refuses a dir that is a symlink, is not owned
  // by our euid, or is group/world-writable. Starts dir/.handoff.tmp.<pid> (0600,
  // O_EXCL|O_NOFOLLOW) and writes the header. A temp file of our own pid is a
  // leftover of an earlier attempt by this process (before an exec) and is replaced;
  // temp files of pids that no longer exist are removed (they hold user payload).
  static Result<HandoffWriter> create(const std::string& dir, const HandoffHeader& header);
  // Same, with the syscalls whose failures matter (writev, fsync) injected by tests.
  static Result<HandoffWriter> create(const std::string& dir, const HandoffHeader& header,
                                      HandoffIo& io);

  HandoffWriter(HandoffWriter&&) noexcept;
  HandoffWriter& operator=(HandoffWriter&&) noexcept;
  ~HandoffWriter();  // unlinks the temp file unless committed

  // Streams one record. After a failure the writer refuses everything but
  // destruction.
  Status append(const PairRecord& record);
  // Writes the trailer, fsyncs the file, renames it to dir/handoff.bin (replacing
  // any older one) and fsyncs the dir. Returns the final path. On failure nothing
  // is left behind, not even a renamed file.
  Result<std::string> commit();

  uint64_t records_written() const;
  uint64_t bytes_written() const;  // the file's size so far

 private:
  struct Impl;
  explicit HandoffWriter(std::unique_ptr<Impl> impl);
  static Result<HandoffWriter> start(std::unique_ptr<Impl> impl, const HandoffHeader& header);
  std::unique_ptr<Impl> impl_;
};

class ByteSource;

class HandoffReader {
 public:
  static Result<HandoffReader> open(const std::string& path);
  // Reads from an fd it owns, positioned at the file's start; `name` is for errors.
  static Result<HandoffReader> from_fd(UniqueFd fd, std::string name);
  // Reads from memory (borrowed: `bytes` must outlive the reader); for the fuzzer.
  static Result<HandoffReader> from_bytes(std::string_view bytes, std::string name);

  HandoffReader(HandoffReader&&) noexcept;
  HandoffReader& operator=(HandoffReader&&) noexcept;
  ~HandoffReader();

  FormatVersion format() const;
  const HandoffHeader& header() const;

  // The next record; nullopt once the trailer has been read and checked. An error
  // is final: every later call returns it again.
  Result<std::optional<PairRecord>> next();

  uint64_t records_read() const;
  uint64_t data_bytes_read() const;
  uint64_t offset() const;  // bytes consumed so far

 private:
  struct Impl;
  explicit HandoffReader(std::unique_ptr<Impl> impl);
  static Result<HandoffReader> start(std::unique_ptr<ByteSource> source, std::string name);
  std::unique_ptr<Impl> impl_;
};

// Reads every record back and checks every checksum and the counts; holds one
// record in memory at a time.
Result<HandoffSummary> verify_handoff_file(const std::string& path);

// Unlinks the file; a file already gone is not an error.
Status remove_handoff_file(const std::string& path);

}  // namespace seamless::repair
