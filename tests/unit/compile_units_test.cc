#include <gtest/gtest.h>

#include "elf/compile_units.h"

namespace graft {
namespace {

TEST(CompileUnits, ProducerOptions) {
  EXPECT_TRUE(producer_enables_ipa_ra("GNU C17 12.2.0 -mtune=generic -march=x86-64 -g -O2"));
  EXPECT_FALSE(producer_enables_ipa_ra("GNU C17 12.2.0 -mtune=generic -g -O2 -fno-ipa-ra"));
  EXPECT_FALSE(producer_enables_ipa_ra("GNU C17 12.2.0 -mtune=generic -g -O0"));
  EXPECT_FALSE(producer_enables_ipa_ra("GNU C17 12.2.0 -mtune=generic -g"));  // -O0 by default
  EXPECT_TRUE(producer_enables_ipa_ra("GNU C17 12.2.0 -g -O0 -O3"));          // the last -O wins
  EXPECT_TRUE(producer_enables_ipa_ra("GNU C17 12.2.0"));  // switches not recorded: unknown
  EXPECT_TRUE(producer_enables_ipa_ra("clang version 14.0.6"));
}

}  // namespace
}  // namespace graft
