// A sample of docs/testing.md: the conformance suite from Catch2 (built and
// run by meson when the tests are, linked with test/test_main.cpp, Catch2's
// main; the page quotes the [catch2] region).
#include <catch2/catch.hpp>
#include <gort/testing/run_queue.hpp>

#include "lifo_run_queue.hpp"

struct my_g {};

// [catch2]
TEST_CASE("my run queue conforms") {
  const auto r = gort::testing::check_run_queue<example::lifo_run_queue<my_g, 256>>();
  INFO(r.report());
  REQUIRE(r.ok);
}
// [/catch2]
