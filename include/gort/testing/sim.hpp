// gort/testing/sim.hpp: a deterministic runtime for tests, and a driver
// that explores many schedules.
//
//   gort::testing::sim_runtime rt(/*seed=*/42);
//   auto r = rt.run([] { ... spawn Gs, use channels, sleep ... });
//   REQUIRE(r.ok());                 // or: r.deadlock, r.blocked, r.error
//
//   auto res = gort::testing::explore([] { ... }, {.runs = 500});
//   REQUIRE(res.ok);                 // else res.failure.seed replays it
//
// What makes it deterministic (traits::deterministic):
//   - one P; every runnable G waits in one bag and the next to run is
//     drawn by a PRNG seeded from the seed (no runnext, no time slices);
//   - a virtual clock: sleep_for, timers, tickers, after() and deadlines
//     computed from gort::now() run on it, and it jumps to the next timer
//     when every G is blocked, so a test that sleeps an hour takes
//     microseconds;
//   - no sysmon thread (nothing depends on real time).
// The same seed gives the same interleaving and the same output, as long
// as the scenario itself is deterministic (no real I/O, no outside
// threads, no real clocks).
//
// A deadlock does not abort: run() returns a report of every blocked G and
// its wait reason. The Gs left blocked are abandoned: their stacks are
// freed without unwinding, so objects on them are not destroyed (keep heap
// objects off the stacks of Gs a test expects to deadlock, or LeakSanitizer
// will say so). An exception that escapes any G is the scenario's failure
// (r.error), not a crash.
//
// Not yet: an in-memory network behind gort::net, and PCT-style priority
// schedules (explore draws uniformly random schedules).
#pragma once

#include <unistd.h>

#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <fstream>
#include <mutex>
#include <stdexcept>
#include <string>
#include <utility>

#include "../detail/config.hpp"
#include "../runtime.hpp"
#include "../traits.hpp"

GORT_BEGIN_NAMESPACE
namespace testing {

struct sim_traits : default_traits {
  static constexpr bool deterministic = true;
};

// What a deterministic run came to.
struct sim_report {
  std::uint64_t seed = 0;
  bool deadlock = false;      // every G left was blocked forever
  std::string blocked;        // then: "\n  G <id> [<wait reason>]" per G
  std::exception_ptr error;   // the first exception that escaped a G

  bool ok() const noexcept { return !deadlock && !error; }
  explicit operator bool() const noexcept { return ok(); }

  // One paragraph for a test log.
  std::string what() const {
    std::string s = "seed " + std::to_string(seed) + ": ";
    if (error) {
      try {
        std::rethrow_exception(error);
      } catch (const std::exception& e) {
        s += std::string("exception: ") + e.what();
      } catch (...) {
        s += "exception (not derived from std::exception)";
      }
      if (deadlock) s += "; then ";
    }
    if (deadlock) s += "all goroutines are asleep - deadlock!" + blocked;
    if (ok()) s += "ok";
    return s;
  }
};

template <class Traits = sim_traits>
class basic_sim_runtime : public basic_runtime<Traits> {
  static_assert(Traits::deterministic,
                "gort::testing::basic_sim_runtime: Traits::deterministic must be true");

 public:
  explicit basic_sim_runtime(std::uint64_t seed, config cfg = {})
      : basic_runtime<Traits>(with_seed(cfg, seed)), seed_(seed) {
    this->sched().set_sim_hooks(
        [this](std::string report) {
          std::lock_guard<std::mutex> lk(mu_);
          rep_.deadlock = true;
          rep_.blocked = std::move(report);
          done_ = true;
          cv_.notify_all();
        },
        [this](std::exception_ptr e) {
          std::lock_guard<std::mutex> lk(mu_);
          if (!rep_.error) rep_.error = e;
        });
  }

  std::uint64_t seed() const noexcept { return seed_; }

  // Runs f as the main G and returns when it returns, or when every G is
  // blocked forever. Once per runtime; from a thread that is not a G.
  template <class F>
  sim_report run(F&& f) {
    if (detail::current_g() != nullptr)
      throw std::logic_error("gort::testing::sim_runtime::run called from inside a G");
    {
      std::lock_guard<std::mutex> lk(mu_);
      if (started_) throw std::logic_error("gort::testing::sim_runtime::run: once per runtime");
      started_ = true;
    }
    this->go([this, fn = std::forward<F>(f)]() mutable {
      try {
        fn();
      } catch (...) {
        std::lock_guard<std::mutex> lk(mu_);
        if (!rep_.error) rep_.error = std::current_exception();
      }
      std::lock_guard<std::mutex> lk(mu_);
      done_ = true;
      cv_.notify_all();
    });
    std::unique_lock<std::mutex> lk(mu_);
    cv_.wait(lk, [&] { return done_; });
    sim_report r = rep_;
    r.seed = seed_;
    return r;
  }

 private:
  static config with_seed(config c, std::uint64_t seed) {
    c.seed = seed;  // procs: 0 or 1 (more is refused)
    return c;
  }

  std::uint64_t seed_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool started_ = false;  // mu_
  bool done_ = false;     // mu_
  sim_report rep_;        // mu_
};

using sim_runtime = basic_sim_runtime<>;

struct explore_options {
  std::uint64_t first_seed = 1;
  std::uint64_t runs = 100;
  bool print = true;  // say on stderr which seed failed and how to replay it
};

struct explore_result {
  bool ok = true;
  std::uint64_t runs = 0;  // schedules tried
  sim_report failure;      // the first failing run (seed, deadlock, error)
};

namespace detail_sim {
inline std::string program_name() {
  std::ifstream f("/proc/self/cmdline");
  std::string arg0;
  std::getline(f, arg0, '\0');
  return arg0.empty() ? "<test binary>" : arg0;
}
}  // namespace detail_sim

// Runs scenario (on the main G of a fresh sim_runtime) under opt.runs
// seeds, stopping at the first that fails (an exception escapes a G, or a
// deadlock). GORT_SIM_SEED=<n> in the environment runs that seed only: the
// replay instruction printed with a failure.
template <class F>
explore_result explore(F scenario, explore_options opt = {}) {
  explore_result res;
  std::uint64_t first = opt.first_seed, runs = opt.runs;
  if (const char* env = std::getenv("GORT_SIM_SEED")) {
    first = std::strtoull(env, nullptr, 10);
    runs = 1;
  }
  for (std::uint64_t i = 0; i < runs; ++i) {
    const std::uint64_t seed = first + i;
    sim_report r;
    {
      basic_sim_runtime<> rt(seed);
      r = rt.run(scenario);
    }
    ++res.runs;
    if (!r.ok()) {
      res.ok = false;
      res.failure = r;
      if (opt.print)
        std::fprintf(stderr,
                     "gort::testing::explore: %s\n  after %llu passing schedule(s); replay: "
                     "GORT_SIM_SEED=%llu %s (or gort::testing::sim_runtime rt(%llu))\n",
                     r.what().c_str(), static_cast<unsigned long long>(i),
                     static_cast<unsigned long long>(seed), detail_sim::program_name().c_str(),
                     static_cast<unsigned long long>(seed));
      return res;
    }
  }
  return res;
}

}  // namespace testing
GORT_END_NAMESPACE
