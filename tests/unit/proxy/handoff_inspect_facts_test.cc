// The facts both renderings of `seamless handoff inspect` derive from a record
// (proxy/handoff_render.h): base64, times, escaping, why a leg is absent.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>

#include "proxy/handoff_render.h"
#include "repair/pair_record.h"

namespace seamless::proxy {
namespace {

using repair::PairRecord;

TEST(ProxyHandoffInspectFacts, Base64MatchesRfc4648) {
  EXPECT_EQ(inspect::base64(""), "");
  EXPECT_EQ(inspect::base64("f"), "Zg==");
  EXPECT_EQ(inspect::base64("fo"), "Zm8=");
  EXPECT_EQ(inspect::base64("foo"), "Zm9v");
  EXPECT_EQ(inspect::base64("foob"), "Zm9vYg==");
  EXPECT_EQ(inspect::base64("fooba"), "Zm9vYmE=");
  EXPECT_EQ(inspect::base64("foobar"), "Zm9vYmFy");
  EXPECT_EQ(inspect::base64(std::string("\xff\xfe\x00", 3)), "//4A");
}

TEST(ProxyHandoffInspectFacts, UtcTimeAtTheEdges) {
  EXPECT_EQ(inspect::utc_time(0), "1970-01-01T00:00:00.000Z");
  EXPECT_EQ(inspect::utc_time(-1), "1969-12-31T23:59:59.999Z");
  EXPECT_EQ(inspect::utc_time(1714000000123), "2024-04-24T23:06:40.123Z");
  EXPECT_EQ(inspect::utc_time(253402300799999), "9999-12-31T23:59:59.999Z");
  EXPECT_EQ(inspect::utc_time(253402300800000), std::nullopt);
  EXPECT_EQ(inspect::utc_time(-62167219200000), "0000-01-01T00:00:00.000Z");
  EXPECT_EQ(inspect::utc_time(-62167219200001), std::nullopt);
  EXPECT_EQ(inspect::utc_time(INT64_MIN), std::nullopt);
  EXPECT_EQ(inspect::utc_time(INT64_MAX), std::nullopt);
}

TEST(ProxyHandoffInspectFacts, EscapedKeepsOneLineAndNoControlBytes) {
  const std::string hostile("a\"b\\c\r\n\t\x00\x1b[31m\x7f\xff", 16);
  EXPECT_EQ(inspect::escaped(hostile), "a\"b\\\\c\\r\\n\\t\\x00\\x1b[31m\\x7f\\xff");
  EXPECT_EQ(inspect::quoted(hostile), "\"a\\\"b\\\\c\\r\\n\\t\\x00\\x1b[31m\\x7f\\xff\"");
}

TEST(ProxyHandoffInspectFacts, AbsentReasons) {
  PairRecord r;
  EXPECT_EQ(inspect::absent_reason(r, inspect::Leg::kBackend), inspect::AbsentReason::kConnecting);
  r.bytes_backend_to_client = 1;  // it delivered bytes, so it had connected
  EXPECT_EQ(inspect::absent_reason(r, inspect::Leg::kBackend), inspect::AbsentReason::kClosed);
  r.flags = repair::kBackendReset;
  EXPECT_EQ(inspect::absent_reason(r, inspect::Leg::kBackend), inspect::AbsentReason::kReset);
  EXPECT_EQ(inspect::absent_reason(r, inspect::Leg::kClient), inspect::AbsentReason::kClosed);
  r.flags = repair::kClientReset;
  EXPECT_EQ(inspect::absent_reason(r, inspect::Leg::kClient), inspect::AbsentReason::kReset);
}

}  // namespace
}  // namespace seamless::proxy
