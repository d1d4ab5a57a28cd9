// Every file in config/examples/ must stay valid: operators copy them.
#include <gtest/gtest.h>

#include <filesystem>

#include "config/digest.h"
#include "config/load.h"

namespace seamless::config {
namespace {

// Tests run from the source root (tests/CMakeLists.txt sets WORKING_DIRECTORY).
const std::filesystem::path kExamples = "config/examples";

TEST(config_Examples, EveryExampleIsValid) {
  int count = 0;
  for (const auto& entry : std::filesystem::directory_iterator(kExamples)) {
    if (entry.path().extension() != ".yaml") continue;
    ++count;
    const Result<Config> config = load_config_file(entry.path().string());
    ASSERT_TRUE(config.ok()) << config.error().message;
    // And its effective form reads back the same.
    const ConfigParse again = parse_config(canonical_yaml(*config), "canonical.yaml");
    ASSERT_TRUE(again.ok()) << entry.path();
    EXPECT_EQ(*again.config, *config) << entry.path();
  }
  EXPECT_GE(count, 2) << "no examples found in " << std::filesystem::absolute(kExamples);
}

// The demo and quick start rely on these exact addresses.
TEST(config_Examples, DefaultIsTheDemo) {
  const Result<Config> config = load_config_file("config/examples/default.yaml");
  ASSERT_TRUE(config.ok()) << config.error().message;
  ASSERT_EQ(config->services.size(), 1u);
  EXPECT_EQ(config->services[0].listen.to_string(), "127.0.0.1:7000");
  ASSERT_EQ(config->services[0].backends.size(), 1u);
  EXPECT_EQ(config->services[0].backends[0].address.to_string(), "127.0.0.1:7001");
  ASSERT_TRUE(config->metrics.listen.has_value());
  EXPECT_EQ(config->metrics.listen->to_string(), "127.0.0.1:9100");
  EXPECT_EQ(config->handoff.dir, "/run/seamless");
}

}  // namespace
}  // namespace seamless::config
