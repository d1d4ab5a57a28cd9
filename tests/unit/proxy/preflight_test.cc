// The upgrade preflight's memory headroom (DESIGN §4 step 1): refused with the numbers
// when the restored queues (and a handoff file on tmpfs) would not fit.
#include "proxy/preflight.h"

#include <gtest/gtest.h>

#include <cerrno>

namespace seamless::proxy {
namespace {

constexpr uint64_t kMiB = 1 << 20;

TEST(PreflightMemory, MemAvailableIsReadInBytes) {
  const std::string meminfo =
      "MemTotal:       24568348 kB\n"
      "MemFree:         1000000 kB\n"
      "MemAvailable:   20000000 kB\n"
      "Buffers:          100000 kB\n";
  Result<uint64_t> available = parse_mem_available(meminfo);
  ASSERT_TRUE(available.ok()) << available.error().message;
  EXPECT_EQ(*available, 20000000ull * 1024);
}

TEST(PreflightMemory, AMissingOrGarbledLineIsAnError) {
  EXPECT_FALSE(parse_mem_available("MemTotal: 1 kB\nMemFree: 1 kB\n").ok());
  EXPECT_FALSE(parse_mem_available("MemAvailable:   lots\n").ok());
  // Not a prefix of another key.
  EXPECT_FALSE(parse_mem_available("XMemAvailable: 5 kB\n").ok());
}

TEST(PreflightMemory, QueuedBytesCountTwiceWhenTheFileIsInRam) {
  const uint64_t queued = 100 * kMiB;
  // On disk: the restored queues only (plus a few MiB spare).
  EXPECT_TRUE(check_memory_headroom(110 * kMiB, queued, /*file_in_ram=*/false).ok());
  // On tmpfs the file holds them too.
  const Status short_of_it = check_memory_headroom(110 * kMiB, queued, /*file_in_ram=*/true);
  ASSERT_FALSE(short_of_it.ok());
  EXPECT_EQ(short_of_it.error().code, ENOMEM);
  EXPECT_NE(short_of_it.error().message.find("104857600 queued bytes"), std::string::npos)
      << short_of_it.error().message;
  EXPECT_NE(short_of_it.error().message.find("115343360 are available"), std::string::npos)
      << short_of_it.error().message;
  EXPECT_TRUE(check_memory_headroom(210 * kMiB, queued, /*file_in_ram=*/true).ok());
}

TEST(PreflightMemory, NothingQueuedStillNeedsTheSpare) {
  EXPECT_TRUE(check_memory_headroom(64 * kMiB, 0, true).ok());
  EXPECT_FALSE(check_memory_headroom(1 * kMiB, 0, true).ok());
}

// The keeper passes its dumped sockets through the exec only to a binary whose `check`
// lists the feature (kept_sockets.h): an older one would leave them open and then fail
// to restore the file's pairs onto their 4-tuples.
TEST(PreflightFeatures, OnlyAListedFeatureCounts) {
  const std::string with = "ok digest 12ab\nupgrade features: x/2 kept-sockets/1\n";
  EXPECT_TRUE(check_output_lists(with, "kept-sockets/1"));
  EXPECT_TRUE(check_output_lists(with, "x/2"));
  EXPECT_FALSE(check_output_lists(with, "kept-sockets"));    // a prefix is not the token
  EXPECT_FALSE(check_output_lists(with, "kept-sockets/2"));  // another layout
  // A binary from before the feature prints only the digest.
  EXPECT_FALSE(check_output_lists("ok digest 12ab\n", "kept-sockets/1"));
  // Only on its own line, not inside other output.
  EXPECT_FALSE(check_output_lists("warning: upgrade features: kept-sockets/1\n", "kept-sockets/1"));
}

}  // namespace
}  // namespace seamless::proxy
