#include "config/duration.h"

#include <gtest/gtest.h>

namespace seamless::config {
namespace {

using std::chrono::milliseconds;

TEST(config_Duration, ParsesEveryUnit) {
  EXPECT_EQ(*parse_duration("250ms"), milliseconds(250));
  EXPECT_EQ(*parse_duration("5s"), milliseconds(5'000));
  EXPECT_EQ(*parse_duration("2m"), milliseconds(120'000));
  EXPECT_EQ(*parse_duration("1h"), milliseconds(3'600'000));
  EXPECT_EQ(*parse_duration("0s"), milliseconds(0));
  EXPECT_EQ(*parse_duration("0ms"), milliseconds(0));
  EXPECT_EQ(*parse_duration("90s"), milliseconds(90'000));
}

TEST(config_Duration, RejectsEverythingElse) {
  for (const char* text : {"", "5", "s", "ms", "1.5s", "-1s", "+1s", " 5s", "5s ", "5 s", "5S",
                           "5sec", "1h30m", "5d", "0x10s", "5mss"}) {
    const Result<milliseconds> parsed = parse_duration(text);
    ASSERT_FALSE(parsed.ok()) << text;
    EXPECT_EQ(parsed.error().message, "invalid duration \"" + std::string(text) +
                                          "\" (expected an integer and a unit: 250ms, 5s, 2m, 1h)");
  }
}

TEST(config_Duration, RejectsOverflowInsteadOfWrapping) {
  // 2^63 / 3'600'000 is about 2.56e12 hours.
  EXPECT_TRUE(parse_duration("2562047788015h").ok());
  const Result<milliseconds> too_large = parse_duration("2562047788016h");
  ASSERT_FALSE(too_large.ok());
  EXPECT_EQ(too_large.error().message, "duration \"2562047788016h\" is too large");
  EXPECT_FALSE(parse_duration("99999999999999999999999ms").ok());
}

TEST(config_Duration, FormatsInTheLargestExactUnit) {
  EXPECT_EQ(format_duration(milliseconds(0)), "0s");
  EXPECT_EQ(format_duration(milliseconds(250)), "250ms");
  EXPECT_EQ(format_duration(milliseconds(1'500)), "1500ms");
  EXPECT_EQ(format_duration(milliseconds(5'000)), "5s");
  EXPECT_EQ(format_duration(milliseconds(90'000)), "90s");
  EXPECT_EQ(format_duration(milliseconds(120'000)), "2m");
  EXPECT_EQ(format_duration(milliseconds(7'200'000)), "2h");
}

TEST(config_Duration, FormatThenParseIsIdentity) {
  for (const int64_t millis : {0L, 1L, 999L, 1'000L, 59'999L, 60'000L, 3'600'000L, 86'400'001L}) {
    EXPECT_EQ(*parse_duration(format_duration(milliseconds(millis))), milliseconds(millis));
  }
}

}  // namespace
}  // namespace seamless::config
