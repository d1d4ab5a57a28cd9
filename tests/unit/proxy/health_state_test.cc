#include "proxy/health_state.h"

#include <gtest/gtest.h>

namespace seamless::proxy {
namespace {

config::HealthCheck check(uint32_t rise, uint32_t fall) {
  config::HealthCheck c;
  c.rise = rise;
  c.fall = fall;
  return c;
}

TEST(ProxyHealthState, GoesDownAfterFallConsecutiveFailures) {
  HealthState s(true);
  const auto c = check(2, 3);
  EXPECT_FALSE(s.record(false, c));
  EXPECT_FALSE(s.record(false, c));
  EXPECT_FALSE(s.record(true, c));  // a success resets the run
  EXPECT_FALSE(s.record(false, c));
  EXPECT_FALSE(s.record(false, c));
  EXPECT_TRUE(s.up());
  EXPECT_TRUE(s.record(false, c));
  EXPECT_FALSE(s.up());
  EXPECT_FALSE(s.record(false, c));  // already down: no change
}

TEST(ProxyHealthState, ComesBackAfterRiseConsecutiveSuccesses) {
  HealthState s(false);
  const auto c = check(2, 3);
  EXPECT_FALSE(s.record(true, c));
  EXPECT_FALSE(s.record(false, c));
  EXPECT_FALSE(s.record(true, c));
  EXPECT_TRUE(s.record(true, c));
  EXPECT_TRUE(s.up());
}

TEST(ProxyHealthState, RiseAndFallOfOneFlipAtOnce) {
  HealthState s(true);
  const auto c = check(1, 1);
  EXPECT_TRUE(s.record(false, c));
  EXPECT_TRUE(s.record(true, c));
}

}  // namespace
}  // namespace seamless::proxy
