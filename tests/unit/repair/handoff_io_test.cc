// The writer surfaces every write and fsync failure, names the record, and leaves
// no file behind: a real full filesystem (tmpfs, as root) and injected failures.
#include "repair/handoff_io.h"

#include <errno.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/mount.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>

#include "repair/handoff_file.h"
#include "tests/unit/repair/handoff_test_util.h"

namespace seamless::repair {
namespace {

using namespace testing;  // NOLINT
using ::testing::HasSubstr;

bool dir_is_empty(const std::string& dir) { return std::filesystem::is_empty(dir); }

// Fails the Nth writev or fsync call (1-based; 0 = never) with `error`, and can cap
// each writev at a few bytes to exercise short writes.
class FailingIo : public HandoffIo {
 public:
  int fail_writev_at = 0;
  int fail_fsync_at = 0;
  int error = EIO;
  size_t max_write = 0;  // 0 = no cap
  int writes = 0;
  int fsyncs = 0;

  ssize_t writev(int fd, const iovec* iov, int count) override {
    if (++writes == fail_writev_at) {
      errno = error;
      return -1;
    }
    if (max_write == 0) return HandoffIo::writev(fd, iov, count);
    iovec first = iov[0];
    first.iov_len = std::min(first.iov_len, max_write);
    return HandoffIo::writev(fd, &first, 1);
  }
  int fsync(int fd) override {
    if (++fsyncs == fail_fsync_at) {
      errno = error;
      return -1;
    }
    return HandoffIo::fsync(fd);
  }
};

TEST(HandoffIo, ShortWritesStillProduceAGoodFile) {
  TempDir tmp;
  FailingIo io;
  io.max_write = 7;
  Result<HandoffWriter> writer = HandoffWriter::create(tmp.path(), sample_header(), io);
  ASSERT_TRUE(writer.ok()) << writer.error().message;
  const PairRecord record = full_record(1, 3000);
  ASSERT_TRUE(writer->append(record).ok());
  Result<std::string> path = writer->commit();
  ASSERT_TRUE(path.ok()) << path.error().message;
  const ReadAll got = read_all_file(*path);
  ASSERT_TRUE(got.ok) << got.error;
  ASSERT_EQ(got.records.size(), 1u);
  EXPECT_EQ(got.records[0], record);
}

TEST(HandoffIo, WriteErrorNamesTheRecordAndPoisonsTheWriter) {
  TempDir tmp;
  FailingIo io;
  io.error = ENOSPC;
  {
    Result<HandoffWriter> writer = HandoffWriter::create(tmp.path(), sample_header(), io);
    ASSERT_TRUE(writer.ok()) << writer.error().message;
    // Header took 2 writes (preamble, header frame); each record of 3 bytes per queue
    // is a record frame plus data frames.
    for (uint64_t id = 0; id < 12; ++id) ASSERT_TRUE(writer->append(full_record(id, 3)).ok());
    io.fail_writev_at = io.writes + 2;
    const Status s = writer->append(full_record(4711, 3));
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(s.error().code, ENOSPC);
    EXPECT_EQ(s.error().message,
              "handoff dir " + tmp.path() +
                  ": writing record 12 (id 4711): write: No space left on device");
    EXPECT_THAT(writer->append(full_record(1, 1)).error().message, HasSubstr("failed earlier"));
    EXPECT_THAT(writer->commit().error().message, HasSubstr("failed earlier"));
  }
  EXPECT_TRUE(dir_is_empty(tmp.path()));
}

TEST(HandoffIo, WriteErrorInTheHeader) {
  TempDir tmp;
  FailingIo io;
  io.fail_writev_at = 2;
  Result<HandoffWriter> writer = HandoffWriter::create(tmp.path(), sample_header(), io);
  ASSERT_FALSE(writer.ok());
  EXPECT_EQ(writer.error().message,
            "handoff dir " + tmp.path() + ": writing header: write: Input/output error");
  EXPECT_TRUE(dir_is_empty(tmp.path()));
}

TEST(HandoffIo, FileFsyncErrorFailsTheCommit) {
  TempDir tmp;
  FailingIo io;
  io.fail_fsync_at = 1;
  Result<HandoffWriter> writer = HandoffWriter::create(tmp.path(), sample_header(), io);
  ASSERT_TRUE(writer.ok());
  ASSERT_TRUE(writer->append(full_record(1, 10)).ok());
  Result<std::string> path = writer->commit();
  ASSERT_FALSE(path.ok());
  EXPECT_EQ(path.error().code, EIO);
  EXPECT_EQ(path.error().message, "handoff dir " + tmp.path() + ": fsync .handoff.tmp." +
                                      std::to_string(::getpid()) + ": Input/output error");
  writer = Error::logic("dropped");  // destroying the writer removes its temp file
  EXPECT_TRUE(dir_is_empty(tmp.path()));
}

TEST(HandoffIo, DirFsyncErrorRemovesTheRenamedFile) {
  TempDir tmp;
  FailingIo io;
  io.fail_fsync_at = 2;
  Result<HandoffWriter> writer = HandoffWriter::create(tmp.path(), sample_header(), io);
  ASSERT_TRUE(writer.ok());
  Result<std::string> path = writer->commit();
  ASSERT_FALSE(path.ok());
  EXPECT_THAT(path.error().message, HasSubstr("fsync dir after rename: Input/output error"));
  EXPECT_TRUE(dir_is_empty(tmp.path()));
}

// A real full filesystem: a 64 KiB tmpfs. Mounting needs root (CAP_SYS_ADMIN).
class HandoffTinyFs : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root to mount a tmpfs";
    if (::mount("tmpfs", tmp_.path().c_str(), "tmpfs", MS_NOSUID | MS_NODEV, "size=64k") != 0) {
      GTEST_SKIP() << "cannot mount a tmpfs here: " << std::strerror(errno);
    }
    mounted_ = true;
  }
  void TearDown() override {
    if (mounted_) ::umount2(tmp_.path().c_str(), MNT_DETACH);
  }

  TempDir tmp_;
  bool mounted_ = false;
};

TEST_F(HandoffTinyFs, NoSpaceIsAClearErrorAndLeavesNothing) {
  const std::string dir = tmp_ / "handoff";
  {
    Result<HandoffWriter> writer = HandoffWriter::create(dir, sample_header());
    ASSERT_TRUE(writer.ok()) << writer.error().message;
    ASSERT_TRUE(writer->append(full_record(1, 100)).ok());
    PairRecord big = full_record(2, 0);
    big.client->send_queue = pattern(1 << 20, 5);
    const Status s = writer->append(big);
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(s.error().code, ENOSPC);
    EXPECT_EQ(s.error().message,
              "handoff dir " + dir + ": writing record 1 (id 2): write: No space left on device");
  }
  EXPECT_TRUE(dir_is_empty(dir));
}

}  // namespace
}  // namespace seamless::repair
