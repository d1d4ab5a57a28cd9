#include "metrics/slot_table.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <future>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "metrics/metrics.h"
#include "metrics/snapshot.h"
#include "tests/unit/metrics/test_util.h"

namespace seamless::metrics {
namespace {

using ::testing::HasSubstr;
using testing::wait_until;

class metrics_SlotTable : public ::testing::Test {
 protected:
  metrics_SlotTable() : segment_(MetricsSegment::create().value()), metrics_(segment_) {}

  // The slot where `name`'s probe sequence starts, i.e. where it lands in an empty table.
  layout::ServiceSlot& home_slot(const std::string& name) {
    return segment_.data().services[slots::fnv1a(name) % layout::kMaxServices];
  }

  // Leaves `slot` as an inserter killed between its claim and its publish would.
  static void abandon_claim(layout::ServiceSlot& slot, pid_t holder) {
    slot.state = layout::kSlotClaimTag | static_cast<std::uint64_t>(holder);
    slots::store_text(slot.name, layout::kNameBytes, "half-writ");
  }

  MetricsSegment segment_;
  Metrics metrics_;
};

// A child that exits at once; reaped unless keep_zombie.
pid_t dead_child(bool keep_zombie) {
  const pid_t pid = ::fork();
  if (pid == 0) ::_exit(0);
  if (!keep_zombie) ::waitpid(pid, nullptr, 0);
  return pid;
}

bool is_zombie(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  std::getline(stat, line);
  const std::size_t paren = line.rfind(')');
  return paren != std::string::npos && line.size() > paren + 2 && line[paren + 2] == 'Z';
}

TEST(metrics_SlotHash, SeparatesTheTwoKeyParts) {
  EXPECT_NE(slots::fnv1a("ab", "c"), slots::fnv1a("a", "bc"));
  EXPECT_EQ(slots::fnv1a("pg"), slots::fnv1a("pg", ""));
  // Fixed across builds: a new binary after exec must probe where the old one inserted.
  EXPECT_EQ(slots::fnv1a(""), 0xaf64724c8602eb6eULL);
}

TEST_F(metrics_SlotTable, ClaimOfADeadHolderIsTakenOver) {
  layout::ServiceSlot& home = home_slot("pg");
  abandon_claim(home, dead_child(/*keep_zombie=*/false));
  Result<ServiceMetrics> pg = metrics_.service("pg");
  ASSERT_TRUE(pg) << pg.error().message;
  EXPECT_EQ(pg->name(), "pg");
  EXPECT_EQ(home.state, layout::kSlotReady);
  pg->connection_opened();
  const Snapshot s = take_snapshot(segment_.data());
  ASSERT_EQ(s.services.size(), 1u);
  EXPECT_EQ(s.services[0].name, "pg");
  EXPECT_EQ(s.services[0].total, 1u);
}

TEST_F(metrics_SlotTable, ClaimOfAnUnreapedHolderIsTakenOver) {
  const pid_t zombie = dead_child(/*keep_zombie=*/true);
  ASSERT_TRUE(wait_until([zombie] { return is_zombie(zombie); }));
  abandon_claim(home_slot("pg"), zombie);
  EXPECT_TRUE(metrics_.service("pg"));
  ::waitpid(zombie, nullptr, 0);
}

TEST_F(metrics_SlotTable, ClaimOfALiveHolderTimesOutInsteadOfWedging) {
  // A live thread that never finishes its claim (as if stopped between claim and publish).
  std::promise<pid_t> tid;
  std::promise<void> release;
  std::thread holder([&] {
    tid.set_value(::gettid());
    release.get_future().wait();
  });
  abandon_claim(home_slot("pg"), tid.get_future().get());
  Result<ServiceMetrics> pg = metrics_.service("pg");
  release.set_value();
  holder.join();
  ASSERT_FALSE(pg);
  EXPECT_THAT(pg.error().message, HasSubstr("stays claimed by a live thread"));
  // Lookups do not wait; they see no key there.
  EXPECT_FALSE(metrics_.find_service("pg"));
  EXPECT_TRUE(take_snapshot(segment_.data()).services.empty());
}

TEST_F(metrics_SlotTable, ClaimBearingTheProbersOwnTidIsAbandoned) {
  // A dead holder's tid recycled to us: we are not mid-claim, so the claim is stale.
  abandon_claim(home_slot("pg"), ::gettid());
  EXPECT_TRUE(metrics_.service("pg"));
}

TEST_F(metrics_SlotTable, CollidingNamesProbeOnAndStayDistinct) {
  // Occupy the home slot of "pg" with another name, so "pg" must probe further.
  layout::ServiceSlot& home = home_slot("pg");
  home.state = layout::kSlotReady;
  slots::store_text(home.name, layout::kNameBytes, "squatter");
  home.listed = 1;
  Result<ServiceMetrics> pg = metrics_.service("pg");
  ASSERT_TRUE(pg);
  EXPECT_NE(pg->name().data(), home.name);
  EXPECT_EQ(metrics_.find_service("pg")->name().data(), pg->name().data());
  EXPECT_EQ(take_snapshot(segment_.data()).services.size(), 2u);
}

TEST_F(metrics_SlotTable, ConcurrentInsertersOfOneNameShareASlot) {
  constexpr int kThreads = 4;
  constexpr int kNames = 64;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([this] {
      Metrics metrics(segment_);
      for (int i = 0; i < kNames; ++i) {
        ASSERT_TRUE(metrics.connection_opened("svc" + std::to_string(i)).ok());
        ASSERT_TRUE(
            metrics.backend_connect_failed("svc", "127.0.0.1:" + std::to_string(1000 + i)).ok());
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  const Snapshot s = take_snapshot(segment_.data());
  ASSERT_EQ(s.services.size(), static_cast<std::size_t>(kNames));
  ASSERT_EQ(s.backends.size(), static_cast<std::size_t>(kNames));
  for (const ServiceSample& service : s.services) EXPECT_EQ(service.total, kThreads);
  for (const BackendSample& backend : s.backends) EXPECT_EQ(backend.connect_failures, kThreads);
}

}  // namespace
}  // namespace seamless::metrics
