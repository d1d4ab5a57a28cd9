// Round trips through the handoff file, and how the writer treats the filesystem.
#include "repair/handoff_file.h"

#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>

#include "tests/unit/repair/handoff_test_util.h"

namespace seamless::repair {
namespace {

using namespace testing;  // NOLINT
using ::testing::HasSubstr;

mode_t file_mode(const std::string& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) return 0;
  return st.st_mode;
}

std::vector<std::string> dir_entries(const std::string& dir) {
  std::vector<std::string> names;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    names.push_back(entry.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

TEST(HandoffFile, RoundTripsEveryField) {
  TempDir tmp;
  const PairRecord record = full_record(7, 1000);
  const std::string path = write_handoff(tmp / "h", sample_header(), {record});
  ASSERT_EQ(path, tmp / "h/handoff.bin");
  const ReadAll got = read_all_file(path);
  ASSERT_TRUE(got.ok) << got.error;
  EXPECT_EQ(got.format, current_handoff_format());
  EXPECT_EQ(got.header, sample_header());
  ASSERT_EQ(got.records.size(), 1u);
  EXPECT_EQ(got.records[0], record);
}

TEST(HandoffFile, ACommittedWriterRefusesMore) {
  TempDir tmp;
  Result<HandoffWriter> writer = HandoffWriter::create(tmp.path(), sample_header());
  ASSERT_TRUE(writer.ok()) << writer.error().message;
  ASSERT_TRUE(writer->append(full_record(1, 10)).ok());
  Result<std::string> path = writer->commit();
  ASSERT_TRUE(path.ok()) << path.error().message;
  EXPECT_EQ(writer->records_written(), 1u);
  EXPECT_EQ(writer->bytes_written(), std::filesystem::file_size(*path));
  EXPECT_THAT(writer->append(full_record(2, 1)).error().message, HasSubstr("already committed"));
  EXPECT_THAT(writer->commit().error().message, HasSubstr("already committed"));
  writer = Error::logic("dropped");  // destroying a committed writer keeps the file
  EXPECT_TRUE(verify_handoff_file(*path).ok());
}

TEST(HandoffFile, RoundTripsIpv6MappedAndAbsentLegs) {
  TempDir tmp;
  PairRecord mapped = full_record(1, 10);
  mapped.client->local = v4_mapped(198, 18, 0, 1, 5433);
  mapped.client->peer = v4_mapped(198, 18, 0, 77, 50000);
  PairRecord connecting = full_record(2, 10);
  connecting.client->peer = v6(0xffff, 65535, 0xffffffffu);
  connecting.backend_socket.reset();  // SYN_SENT: the next worker connects afresh
  PairRecord closed = full_record(3, 0);
  closed.client.reset();
  closed.client_unread = pattern(5000, 9);
  closed.flags = kClientFinished | kBackendReset;
  PairRecord empty;  // all defaults, no legs
  const std::vector<PairRecord> records = {mapped, connecting, closed, empty};
  const ReadAll got = read_all_file(write_handoff(tmp.path(), HandoffHeader{}, records));
  ASSERT_TRUE(got.ok) << got.error;
  EXPECT_EQ(got.header, HandoffHeader{});
  EXPECT_EQ(got.records, records);
}

TEST(HandoffFile, StreamsLargeQueues) {
  TempDir tmp;
  PairRecord big = full_record(9, 0);
  big.client->send_queue = pattern(4 << 20, 1);
  big.client->recv_queue = pattern(4 << 20, 2);
  big.backend_socket->send_queue = pattern((4 << 20) + 3, 3);
  big.backend_socket->recv_queue = pattern((4 << 20) - 1, 4);
  const std::string path = write_handoff(tmp.path(), sample_header(), {big, full_record(10, 5)});
  Result<HandoffSummary> summary = verify_handoff_file(path);
  ASSERT_TRUE(summary.ok()) << summary.error().message;
  EXPECT_EQ(summary->records, 2u);
  EXPECT_GE(summary->data_bytes, uint64_t{16} << 20);
  EXPECT_EQ(summary->file_bytes, std::filesystem::file_size(path));
  const ReadAll got = read_all_file(path);
  ASSERT_TRUE(got.ok) << got.error;
  ASSERT_EQ(got.records.size(), 2u);
  EXPECT_TRUE(got.records[0] == big);
}

TEST(HandoffFile, ManyRecords) {
  TempDir tmp;
  std::vector<PairRecord> records;
  for (uint64_t id = 0; id < 3000; ++id) records.push_back(full_record(id, id % 50));
  const std::string path = write_handoff(tmp.path(), sample_header(), records);
  Result<HandoffSummary> summary = verify_handoff_file(path);
  ASSERT_TRUE(summary.ok()) << summary.error().message;
  EXPECT_EQ(summary->records, records.size());
  EXPECT_EQ(summary->header, sample_header());
  const ReadAll got = read_all_file(path);
  ASSERT_TRUE(got.ok) << got.error;
  EXPECT_EQ(got.records, records);
  // The same bytes read from memory and from an fd give the same result.
  const ReadAll from_memory = read_all(read_file(path));
  ASSERT_TRUE(from_memory.ok) << from_memory.error;
  EXPECT_EQ(from_memory.records, records);
}

TEST(HandoffFile, ReaderEndIsStable) {
  TempDir tmp;
  Result<HandoffReader> reader =
      HandoffReader::open(write_handoff(tmp.path(), sample_header(), {full_record(1, 3)}));
  ASSERT_TRUE(reader.ok()) << reader.error().message;
  ASSERT_TRUE(reader->next().ok());
  for (int i = 0; i < 3; ++i) {
    Result<std::optional<PairRecord>> end = reader->next();
    ASSERT_TRUE(end.ok());
    EXPECT_FALSE(end->has_value());
  }
  EXPECT_EQ(reader->records_read(), 1u);
}

TEST(HandoffFile, RefusesInconsistentRecordsWithoutSpoilingTheFile) {
  TempDir tmp;
  Result<HandoffWriter> writer = HandoffWriter::create(tmp.path(), sample_header());
  ASSERT_TRUE(writer.ok()) << writer.error().message;
  PairRecord unsent = full_record(1, 10);
  unsent.client->send_unsent = 11;
  PairRecord header = full_record(2, 10);
  header.header_pending = header.header_len + 1;
  PairRecord proxy = full_record(3, 10);
  proxy.proxy_header += "!";
  PairRecord family = full_record(4, 10);
  family.backend_socket->peer.family = AF_UNIX;
  for (const PairRecord& bad : {unsent, header, proxy, family}) {
    const Status s = writer->append(bad);
    ASSERT_FALSE(s.ok());
    EXPECT_THAT(s.error().message, HasSubstr("writing record 0 (id " + std::to_string(bad.id)));
  }
  ASSERT_TRUE(writer->append(full_record(5, 10)).ok());
  Result<std::string> path = writer->commit();
  ASSERT_TRUE(path.ok()) << path.error().message;
  Result<HandoffSummary> summary = verify_handoff_file(*path);
  ASSERT_TRUE(summary.ok()) << summary.error().message;
  EXPECT_EQ(summary->records, 1u);
}

TEST(HandoffFile, ModesAreExactWhateverTheUmask) {
  TempDir tmp;
  const mode_t old_umask = ::umask(0277);  // would strip our own write bit
  const std::string path = write_handoff(tmp / "new", sample_header(), {});
  ::umask(old_umask);
  ASSERT_FALSE(path.empty());
  EXPECT_EQ(file_mode(tmp / "new") & 07777, 0700u);
  EXPECT_TRUE(S_ISREG(file_mode(path)));
  EXPECT_EQ(file_mode(path) & 07777, 0600u);
  EXPECT_EQ(dir_entries(tmp / "new"), std::vector<std::string>{"handoff.bin"});
}

TEST(HandoffFile, UncommittedWriterLeavesNothing) {
  TempDir tmp;
  {
    Result<HandoffWriter> writer = HandoffWriter::create(tmp.path(), sample_header());
    ASSERT_TRUE(writer.ok());
    ASSERT_TRUE(writer->append(full_record(1, 100)).ok());
    EXPECT_EQ(dir_entries(tmp.path()).size(), 1u);
    HandoffWriter moved = std::move(*writer);  // the moved-from writer owns nothing
  }
  EXPECT_TRUE(dir_entries(tmp.path()).empty());
}

TEST(HandoffFile, RefusesUnsafeDirs) {
  TempDir tmp;
  ASSERT_EQ(::mkdir((tmp / "group").c_str(), 0770), 0);
  ASSERT_EQ(::chmod((tmp / "group").c_str(), 0770), 0);
  ASSERT_EQ(::mkdir((tmp / "world").c_str(), 0700), 0);
  ASSERT_EQ(::chmod((tmp / "world").c_str(), 0703), 0);
  ASSERT_EQ(::mkdir((tmp / "real").c_str(), 0700), 0);
  ASSERT_EQ(::symlink((tmp / "real").c_str(), (tmp / "link").c_str()), 0);

  Result<HandoffWriter> group = HandoffWriter::create(tmp / "group", {});
  ASSERT_FALSE(group.ok());
  EXPECT_EQ(group.error().message, "handoff dir " + (tmp / "group") +
                                       ": mode 0770 is group- or world-writable (want 0700)");
  EXPECT_FALSE(HandoffWriter::create(tmp / "world", {}).ok());
  Result<HandoffWriter> link = HandoffWriter::create(tmp / "link", {});
  ASSERT_FALSE(link.ok());
  EXPECT_THAT(link.error().message, HasSubstr("is a symlink"));
  Result<HandoffWriter> missing = HandoffWriter::create(tmp / "no/such", {});
  ASSERT_FALSE(missing.ok());
  EXPECT_THAT(missing.error().message, HasSubstr("mkdir: No such file or directory"));

  if (::geteuid() == 0) {
    ASSERT_EQ(::mkdir((tmp / "theirs").c_str(), 0700), 0);
    ASSERT_EQ(::chown((tmp / "theirs").c_str(), 65534, 65534), 0);
    Result<HandoffWriter> theirs = HandoffWriter::create(tmp / "theirs", {});
    ASSERT_FALSE(theirs.ok());
    EXPECT_THAT(theirs.error().message, HasSubstr("owned by uid 65534, not by us"));
  }
  // A read-only but private dir (0500 or 0755) is fine to own.
  ASSERT_EQ(::mkdir((tmp / "shared-readable").c_str(), 0755), 0);
  EXPECT_TRUE(HandoffWriter::create(tmp / "shared-readable", {}).ok());
}

pid_t dead_pid() {
  const pid_t pid = ::fork();
  if (pid == 0) ::_exit(0);
  ::waitpid(pid, nullptr, 0);
  return pid;
}

TEST(HandoffFile, StaleTempFiles) {
  TempDir tmp;
  // A live pid's temp file does not block, and is not ours to touch.
  const std::string live = ".handoff.tmp.1";
  write_file(tmp / live, "live");
  // A dead writer's is removed: it holds payload nobody will ever read.
  write_file(tmp / (".handoff.tmp." + std::to_string(dead_pid())), "dead");
  // A leftover under our own pid (this process before an exec) is replaced.
  write_file(tmp / (".handoff.tmp." + std::to_string(::getpid())), "mine");
  // Lookalikes are left alone.
  write_file(tmp / ".handoff.tmp.12abc", "other");
  const std::string path = write_handoff(tmp.path(), sample_header(), {full_record(1, 1)});
  ASSERT_FALSE(path.empty());
  EXPECT_TRUE(verify_handoff_file(path).ok());
  EXPECT_EQ(read_file(tmp / live), "live");
  EXPECT_EQ(dir_entries(tmp.path()),
            (std::vector<std::string>{".handoff.tmp.1", ".handoff.tmp.12abc", "handoff.bin"}));
}

TEST(HandoffFile, NeverFollowsSymlinks) {
  TempDir tmp;
  ASSERT_EQ(::mkdir((tmp / "h").c_str(), 0700), 0);
  write_file(tmp / "victim-temp", "victim");
  write_file(tmp / "victim-final", "victim");
  const std::string temp = tmp / ("h/.handoff.tmp." + std::to_string(::getpid()));
  ASSERT_EQ(::symlink((tmp / "victim-temp").c_str(), temp.c_str()), 0);
  ASSERT_EQ(::symlink((tmp / "victim-final").c_str(), (tmp / "h/handoff.bin").c_str()), 0);
  const std::string path = write_handoff(tmp / "h", sample_header(), {full_record(1, 1)});
  ASSERT_FALSE(path.empty());
  EXPECT_TRUE(S_ISREG(file_mode(path)));
  EXPECT_TRUE(verify_handoff_file(path).ok());
  EXPECT_EQ(read_file(tmp / "victim-temp"), "victim");
  EXPECT_EQ(read_file(tmp / "victim-final"), "victim");
}

TEST(HandoffFile, RemoveIsIdempotent) {
  TempDir tmp;
  const std::string path = write_handoff(tmp.path(), sample_header(), {});
  ASSERT_TRUE(remove_handoff_file(path).ok());
  EXPECT_FALSE(std::filesystem::exists(path));
  EXPECT_TRUE(remove_handoff_file(path).ok());
  const Status dir = remove_handoff_file(tmp.path());
  ASSERT_FALSE(dir.ok());
  EXPECT_THAT(dir.error().message, HasSubstr("handoff file " + tmp.path() + ": unlink: "));
}

TEST(HandoffFile, UnreadableFilesNameThePath) {
  TempDir tmp;
  Result<HandoffSummary> missing = verify_handoff_file(tmp / "nope");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().message,
            "handoff file " + (tmp / "nope") + ": open: No such file or directory");
  EXPECT_EQ(missing.error().code, ENOENT);
  Result<HandoffSummary> dir = verify_handoff_file(tmp.path());
  ASSERT_FALSE(dir.ok());
  EXPECT_EQ(dir.error().message, "handoff file " + tmp.path() + ": not a regular file");
  ASSERT_EQ(::mkfifo((tmp / "fifo").c_str(), 0600), 0);
  Result<HandoffSummary> fifo = verify_handoff_file(tmp / "fifo");  // must not block
  ASSERT_FALSE(fifo.ok());
  EXPECT_EQ(fifo.error().message, "handoff file " + (tmp / "fifo") + ": not a regular file");
  write_file(tmp / "text", "hello, world, this is not it\n");
  Result<HandoffSummary> text = verify_handoff_file(tmp / "text");
  ASSERT_FALSE(text.ok());
  EXPECT_EQ(text.error().message,
            "handoff file " + (tmp / "text") + ": not a handoff file (bad magic)");
}

}  // namespace
}  // namespace seamless::repair
