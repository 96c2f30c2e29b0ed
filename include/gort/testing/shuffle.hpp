// gort/testing/shuffle.hpp: run a scenario on the real, multi-threaded
// runtime with a shuffled scheduling order (Go's race-detector mode), many
// times, over several P counts. Pair it with TSan: the real runtime finds
// the data races a deterministic run cannot (real threads), the shuffle
// finds code that relies on an order gort does not promise.
//
//   auto r = gort::testing::stress([] { ... }, {.runs = 50, .procs = {1, 2, 4}});
//   REQUIRE(r.ok);   // else r.error, r.procs, r.run say which run failed
#pragma once

#include <cstdint>
#include <exception>
#include <initializer_list>
#include <string>
#include <vector>

#include "../detail/config.hpp"
#include "../runtime.hpp"
#include "../traits.hpp"

GORT_BEGIN_NAMESPACE
namespace testing {

struct shuffle_traits : default_traits {
  static constexpr bool shuffle_order = true;
};

using shuffle_runtime = basic_runtime<shuffle_traits>;

struct stress_options {
  std::uint64_t runs = 20;                 // per P count
  std::vector<unsigned> procs = {1, 2, 4};
};

struct stress_result {
  bool ok = true;
  std::uint64_t runs = 0;       // scenarios run
  unsigned procs = 0;           // of the failing run
  std::uint64_t run = 0;        // its index at that P count
  std::exception_ptr error;     // what escaped the scenario's main G
};

// Runs scenario as the main G of a fresh shuffle_runtime, opt.runs times
// for each P count, and stops at the first run whose main G throws. (An
// exception escaping another G is fatal, as on any real runtime: catch it
// in the G and hand it over, e.g. through a channel.)
template <class F>
stress_result stress(F scenario, stress_options opt = {}) {
  stress_result res;
  for (unsigned procs : opt.procs) {
    for (std::uint64_t i = 0; i < opt.runs; ++i) {
      ++res.runs;
      try {
        shuffle_runtime rt(config{.procs = procs});
        rt.run(scenario);
      } catch (...) {
        res.ok = false;
        res.procs = procs;
        res.run = i;
        res.error = std::current_exception();
        return res;
      }
    }
  }
  return res;
}

}  // namespace testing
GORT_END_NAMESPACE
