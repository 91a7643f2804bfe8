// Argument checks (core/error.h): require() with a message, and with a callable that builds the
// message only when the check fails (the form the per-token and per-query checks of a decode step
// use, so that a passing check builds no strings).
#include <gtest/gtest.h>

#include <string>

#include "core/error.h"

namespace starkv {
namespace {

TEST(Require, PassingCheckNeverBuildsItsMessage) {
  int built = 0;
  EXPECT_NO_THROW(require(true, STARKV_ERR_POSITION, [&] {
    ++built;
    return std::string("never");
  }));
  EXPECT_EQ(built, 0);
}

TEST(Require, FailingCheckThrowsTheBuiltMessageAndStatus) {
  int built = 0;
  try {
    require(false, STARKV_ERR_POSITION, [&] {
      ++built;
      return "token " + std::to_string(3) + " has position 7";
    });
    FAIL() << "require(false, ...) returned";
  } catch (const Error& e) {
    EXPECT_EQ(e.status(), STARKV_ERR_POSITION);
    EXPECT_EQ(std::string(e.what()), "token 3 has position 7");
  }
  EXPECT_EQ(built, 1);
}

TEST(Require, StringMessagesStillWork) {
  EXPECT_NO_THROW(require(true, STARKV_ERR_DTYPE, "unused"));
  try {
    require(false, STARKV_ERR_DTYPE, std::string("unknown dtype 9"));
    FAIL() << "require(false, ...) returned";
  } catch (const Error& e) {
    EXPECT_EQ(e.status(), STARKV_ERR_DTYPE);
    EXPECT_EQ(std::string(e.what()), "unknown dtype 9");
  }
}

}  // namespace
}  // namespace starkv
