#include "metrics/segment.h"

#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>

#include "metrics/metrics.h"

namespace seamless::metrics {
namespace {

using ::testing::HasSubstr;

UniqueFd dup_fd(int fd) { return UniqueFd(::fcntl(fd, F_DUPFD_CLOEXEC, 0)); }

// A memfd holding `header` and sized `bytes`, optionally sealed like a real segment.
UniqueFd forged_segment(const layout::Header& header, std::size_t bytes, bool sealed = true) {
  UniqueFd fd(::memfd_create("forged", MFD_CLOEXEC | MFD_ALLOW_SEALING));
  EXPECT_TRUE(fd.valid());
  EXPECT_EQ(::ftruncate(fd.get(), static_cast<off_t>(bytes)), 0);
  EXPECT_EQ(::pwrite(fd.get(), &header, sizeof(header), 0), static_cast<ssize_t>(sizeof(header)));
  if (sealed) {
    EXPECT_EQ(::fcntl(fd.get(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW), 0);
  }
  return fd;
}

layout::Header header_of(const MetricsSegment& segment) { return segment.data().header; }

TEST(metrics_Segment, CreateWritesAValidSealedHeader) {
  Result<MetricsSegment> segment = MetricsSegment::create();
  ASSERT_TRUE(segment) << segment.error().message;
  const layout::Header header = header_of(*segment);
  EXPECT_EQ(header.magic, layout::kMagic);
  EXPECT_EQ(header.layout_version, layout::kLayoutVersion);
  EXPECT_EQ(header.segment_bytes, sizeof(layout::Segment));
  EXPECT_GT(header.created_unix_ns, 0u);
  EXPECT_NE(::fcntl(segment->fd(), F_GETFD) & FD_CLOEXEC, 0);
  // Sealed: nobody can shrink it under another process's mapping.
  EXPECT_NE(::ftruncate(segment->fd(), 4096), 0);
}

TEST(metrics_Segment, AdoptSeesTheSameMemory) {
  Result<MetricsSegment> first = MetricsSegment::create();
  ASSERT_TRUE(first);
  Result<MetricsSegment> second = MetricsSegment::adopt(dup_fd(first->fd()));
  ASSERT_TRUE(second) << second.error().message;
  Metrics a(*first);
  Metrics b(*second);
  ASSERT_TRUE(a.add_bytes("pg", Direction::kIn, 42).ok());
  EXPECT_EQ(b.find_service("pg")->bytes(Direction::kIn), 42u);
  EXPECT_EQ(b.bump_generation(), 1u);
  EXPECT_EQ(a.generation(), 1u);
}

TEST(metrics_Segment, AdoptRefusesAForeignFile) {
  layout::Header header{};
  header.magic = 0x1122334455667788;
  Result<MetricsSegment> adopted =
      MetricsSegment::adopt(forged_segment(header, sizeof(layout::Segment)));
  ASSERT_FALSE(adopted);
  EXPECT_THAT(adopted.error().message, HasSubstr("not a seamless metrics segment"));
  EXPECT_THAT(adopted.error().message, HasSubstr("adopt metrics segment fd "));
}

TEST(metrics_Segment, AdoptRefusesANewerLayout) {
  Result<MetricsSegment> real = MetricsSegment::create();
  ASSERT_TRUE(real);
  layout::Header header = header_of(*real);
  header.layout_version = layout::kLayoutVersion + 1;
  Result<MetricsSegment> adopted =
      MetricsSegment::adopt(forged_segment(header, sizeof(layout::Segment)));
  ASSERT_FALSE(adopted);
  EXPECT_THAT(adopted.error().message,
              HasSubstr("layout version " + std::to_string(layout::kLayoutVersion + 1) +
                        " is newer than this binary's"));
}

TEST(metrics_Segment, AdoptRefusesAnOlderLayout) {
  Result<MetricsSegment> real = MetricsSegment::create();
  ASSERT_TRUE(real);
  layout::Header header = header_of(*real);
  header.layout_version = layout::kLayoutVersion - 1;
  Result<MetricsSegment> adopted =
      MetricsSegment::adopt(forged_segment(header, sizeof(layout::Segment)));
  ASSERT_FALSE(adopted);
  EXPECT_THAT(adopted.error().message, HasSubstr("is older than this binary's"));
}

TEST(metrics_Segment, AdoptRefusesAWrongSize) {
  Result<MetricsSegment> real = MetricsSegment::create();
  ASSERT_TRUE(real);
  Result<MetricsSegment> adopted =
      MetricsSegment::adopt(forged_segment(header_of(*real), sizeof(layout::Segment) / 2));
  ASSERT_FALSE(adopted);
  EXPECT_THAT(adopted.error().message, HasSubstr("does not match layout version"));
  UniqueFd tiny_fd(::memfd_create("tiny", MFD_CLOEXEC));
  ASSERT_EQ(::ftruncate(tiny_fd.get(), 8), 0);
  Result<MetricsSegment> tiny = MetricsSegment::adopt(std::move(tiny_fd));
  ASSERT_FALSE(tiny);
  EXPECT_THAT(tiny.error().message, HasSubstr("too small"));
}

TEST(metrics_Segment, AdoptRefusesAnUnsealedFile) {
  Result<MetricsSegment> real = MetricsSegment::create();
  ASSERT_TRUE(real);
  Result<MetricsSegment> adopted = MetricsSegment::adopt(
      forged_segment(header_of(*real), sizeof(layout::Segment), /*sealed=*/false));
  ASSERT_FALSE(adopted);
  EXPECT_THAT(adopted.error().message, HasSubstr("not sealed"));
}

TEST(metrics_Segment, AdoptRefusesAPipeAndABadFd) {
  int pipe_fds[2];
  ASSERT_EQ(::pipe2(pipe_fds, O_CLOEXEC), 0);
  UniqueFd write_end(pipe_fds[1]);
  Result<MetricsSegment> pipe = MetricsSegment::adopt(UniqueFd(pipe_fds[0]));
  ASSERT_FALSE(pipe);
  EXPECT_THAT(pipe.error().message, HasSubstr("not a memfd"));
  Result<MetricsSegment> none = MetricsSegment::adopt(UniqueFd());
  EXPECT_FALSE(none);
}

TEST(metrics_Segment, InheritOnExecTogglesCloexec) {
  Result<MetricsSegment> segment = MetricsSegment::create();
  ASSERT_TRUE(segment);
  ASSERT_TRUE(segment->set_inherit_on_exec(true).ok());
  EXPECT_EQ(::fcntl(segment->fd(), F_GETFD) & FD_CLOEXEC, 0);
  ASSERT_TRUE(segment->set_inherit_on_exec(false).ok());
  EXPECT_NE(::fcntl(segment->fd(), F_GETFD) & FD_CLOEXEC, 0);
}

TEST(metrics_Segment, ParsesFdNumbers) {
  ASSERT_TRUE(parse_fd_number("7"));
  EXPECT_EQ(*parse_fd_number("7"), 7);
  EXPECT_FALSE(parse_fd_number(""));
  EXPECT_FALSE(parse_fd_number("-1"));
  EXPECT_FALSE(parse_fd_number("7x"));
  EXPECT_FALSE(parse_fd_number("99999999999"));
}

}  // namespace
}  // namespace seamless::metrics
