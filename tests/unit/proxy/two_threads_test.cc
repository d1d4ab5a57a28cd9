// split_over_two_threads: every step runs exactly once, on the caller's thread alone
// below the threshold and on two threads above it.
#include "base/two_threads.h"

#include <gtest/gtest.h>

#include <mutex>
#include <set>
#include <thread>
#include <vector>

namespace seamless {
namespace {

struct Split {
  std::vector<int> steps;
  std::set<std::thread::id> threads;
};

Split split(size_t n, size_t min_to_split) {
  Split r;
  r.steps.assign(n, 0);
  std::mutex mutex;
  split_over_two_threads(n, min_to_split, [&](size_t begin, size_t end) {
    {
      const std::lock_guard<std::mutex> lock(mutex);
      r.threads.insert(std::this_thread::get_id());
    }
    for (size_t i = begin; i < end; ++i) ++r.steps[i];  // each half owns its indices
  });
  return r;
}

TEST(SplitOverTwoThreads, BelowTheThresholdEveryStepRunsOnTheCaller) {
  const Split r = split(100, 512);
  EXPECT_EQ(r.steps, std::vector<int>(100, 1));
  EXPECT_EQ(r.threads, std::set<std::thread::id>{std::this_thread::get_id()});
}

TEST(SplitOverTwoThreads, AboveItTwoThreadsShareTheStepsOnceEach) {
  for (size_t n : {512u, 513u, 10001u}) {
    const Split r = split(n, 512);
    EXPECT_EQ(r.steps, std::vector<int>(n, 1)) << n;
    EXPECT_EQ(r.threads.size(), 2u) << n;
    EXPECT_EQ(r.threads.count(std::this_thread::get_id()), 1u) << n;
  }
}

TEST(SplitOverTwoThreads, NothingToDoIsFine) {
  EXPECT_TRUE(split(0, 0).steps.empty());
  EXPECT_TRUE(split(0, 512).steps.empty());
}

}  // namespace
}  // namespace seamless
