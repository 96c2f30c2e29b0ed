// gort/testing/sim.hpp: a deterministic runtime for tests, and a driver
// that explores many schedules.
//
//   gort::testing::sim_runtime rt(/*seed=*/42);
//   auto r = rt.run([] { ... spawn Gs, use channels, sleep ... });
//   REQUIRE(r.ok());                 // or: r.deadlock, r.blocked, r.error
//
//   auto res = gort::testing::explore([] { ... }, {.runs = 500});
//   REQUIRE(res.ok);                 // else res.failure.options replays it
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
// Schedules (sim_options::schedule): random (uniform draw), pct (seeded
// priorities with change points: PCT), run_queue (the traits' own queue
// picks, as a 1-P real runtime would). explore() alternates random and PCT.
// gort::net in a sim runtime uses its in-memory network (sim_net.hpp).
// Tutorial: docs/testing.md.
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
#include "sim_net.hpp"

GORT_BEGIN_NAMESPACE
namespace testing {

struct sim_traits : default_traits {
  static constexpr bool deterministic = true;
};

// How the next G is picked: random (default), pct, run_queue (see
// detail::sim_schedule in detail/proc.hpp and docs/testing.md).
using sim_schedule = detail::sim_schedule;

struct sim_options {
  std::uint64_t seed = 0;
  sim_schedule schedule = sim_schedule::random;
  // PCT: a bug that needs d ordering constraints between Gs is found with
  // probability >= 1 / (n * k^(d-1)) per run (n Gs, k steps) when
  // pct_depth >= d and pct_steps >= k.
  unsigned pct_depth = 3;
  std::uint64_t pct_steps = 1000;
  // The in-memory network behind gort::net (gort/testing/sim_net.hpp).
  sim_net_options net{};
};

inline const char* to_string(sim_schedule s) noexcept {
  switch (s) {
    case sim_schedule::random: return "random";
    case sim_schedule::pct: return "pct";
    case sim_schedule::run_queue: return "run_queue";
  }
  return "?";
}

// What a deterministic run came to.
struct sim_report {
  std::uint64_t seed = 0;
  sim_options options;        // how it was scheduled (seed included)
  std::uint64_t steps = 0;    // scheduling decisions made until the main G returned (or the deadlock)
  bool deadlock = false;      // every G left was blocked forever
  std::string blocked;        // then: "\n  G <id> [<wait reason> on <object>]" per G
  std::exception_ptr error;   // the first exception that escaped a G

  bool ok() const noexcept { return !deadlock && !error; }
  explicit operator bool() const noexcept { return ok(); }

  // One paragraph for a test log.
  std::string what() const {
    std::string s = "seed " + std::to_string(seed) + " (" + to_string(options.schedule) + "): ";
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

namespace detail_sim {
// A base of basic_sim_runtime listed before basic_runtime, so that the
// network outlives the runtime's Gs (the base's destructor waits for them).
struct net_holder {
  explicit net_holder(const sim_options& o) : network(o.seed, o.net) {}
  sim_network network;
};
}  // namespace detail_sim

template <class Traits = sim_traits>
class basic_sim_runtime : private detail_sim::net_holder, public basic_runtime<Traits> {
  static_assert(Traits::deterministic,
                "gort::testing::basic_sim_runtime: Traits::deterministic must be true");

 public:
  explicit basic_sim_runtime(std::uint64_t seed, config cfg = {})
      : basic_sim_runtime(sim_options{.seed = seed}, cfg) {}
  explicit basic_sim_runtime(const sim_options& opt, config cfg = {})
      : detail_sim::net_holder(opt),
        basic_runtime<Traits>(with_seed(cfg, opt.seed)),
        seed_(opt.seed),
        opt_(opt) {
    this->sched().set_sim_schedule({opt.schedule, opt.pct_depth, opt.pct_steps});
    this->sched().set_vnet(&this->net_holder::network);
    this->sched().set_sim_hooks(
        [this](std::string report) {
          std::lock_guard<std::mutex> lk(mu_);
          rep_.deadlock = true;
          rep_.blocked = std::move(report);
          rep_.steps = this->sched().sim_steps();
          done_ = true;
          cv_.notify_all();
        },
        [this](std::exception_ptr e) {
          std::lock_guard<std::mutex> lk(mu_);
          if (!rep_.error) rep_.error = e;
        });
  }

  std::uint64_t seed() const noexcept { return seed_; }
  const sim_options& options() const noexcept { return opt_; }
  // The in-memory network behind gort::net in this runtime's Gs.
  sim_network& net() noexcept { return this->net_holder::network; }

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
      rep_.steps = this->sched().sim_steps();  // here, on the runtime's M: deterministic
      done_ = true;
      cv_.notify_all();
    });
    std::unique_lock<std::mutex> lk(mu_);
    cv_.wait(lk, [&] { return done_; });
    sim_report r = rep_;
    r.seed = seed_;
    r.options = opt_;
    return r;
  }

 private:
  static config with_seed(config c, std::uint64_t seed) {
    c.seed = seed;  // procs: 0 or 1 (more is refused)
    return c;
  }

  std::uint64_t seed_;
  sim_options opt_;
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
  // Which schedules to draw; with both, runs alternate (random first).
  // PCT runs place their change points within the longest run seen so far.
  bool random = true;
  bool pct = true;
  unsigned pct_depth = 3;
  sim_net_options net{};  // every run's in-memory network
  bool print = true;      // say on stderr which seed failed and how to replay it
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

// GORT_SIM_SCHEDULE: "random", "run_queue" or "pct:<depth>:<steps>" (what
// explore() prints with a failing seed).
inline std::string schedule_env(const sim_options& o) {
  if (o.schedule != sim_schedule::pct) return to_string(o.schedule);
  return "pct:" + std::to_string(o.pct_depth) + ":" + std::to_string(o.pct_steps);
}
inline sim_options parse_schedule_env(const char* s, std::uint64_t seed) {
  sim_options o{.seed = seed};
  const std::string v = s != nullptr ? s : "random";
  if (v == "random") return o;
  if (v == "run_queue") {
    o.schedule = sim_schedule::run_queue;
    return o;
  }
  unsigned long long d = 0, k = 0;
  char tail = 0;
  if (std::sscanf(v.c_str(), "pct:%llu:%llu%c", &d, &k, &tail) != 2 || d == 0 || k == 0)
    throw std::invalid_argument("GORT_SIM_SCHEDULE=" + v +
                                ": expected random, run_queue or pct:<depth>:<steps>");
  o.schedule = sim_schedule::pct;
  o.pct_depth = static_cast<unsigned>(d);
  o.pct_steps = k;
  return o;
}
}  // namespace detail_sim

// Runs scenario (on the main G of a fresh sim_runtime) under opt.runs
// schedules, stopping at the first that fails (an exception escapes a G,
// or a deadlock). GORT_SIM_SEED=<n> (with GORT_SIM_SCHEDULE, as printed)
// in the environment runs that schedule only: the replay instruction
// printed with a failure.
template <class Traits = sim_traits, class F>
explore_result explore(F scenario, explore_options opt = {}) {
  if (!opt.random && !opt.pct)
    throw std::invalid_argument("gort::testing::explore: no schedule enabled (random, pct)");
  explore_result res;
  const char* env_seed = std::getenv("GORT_SIM_SEED");
  const std::uint64_t runs = env_seed != nullptr ? 1 : opt.runs;
  std::uint64_t longest = 0;  // steps of the longest run so far
  for (std::uint64_t i = 0; i < runs; ++i) {
    sim_options so{.seed = opt.first_seed + i};
    if (env_seed != nullptr) {
      so = detail_sim::parse_schedule_env(std::getenv("GORT_SIM_SCHEDULE"),
                                          std::strtoull(env_seed, nullptr, 10));
    } else if (opt.pct && (!opt.random || i % 2 == 1)) {
      so.schedule = sim_schedule::pct;
      so.pct_depth = opt.pct_depth;
      so.pct_steps = longest > 16 ? longest : 16;
    }
    so.net = opt.net;
    sim_report r;
    {
      basic_sim_runtime<Traits> rt(so);
      r = rt.run(scenario);
    }
    if (r.steps > longest) longest = r.steps;
    ++res.runs;
    if (!r.ok()) {
      res.ok = false;
      res.failure = r;
      if (opt.print)
        std::fprintf(stderr,
                     "gort::testing::explore: %s\n  after %llu passing schedule(s); replay: "
                     "GORT_SIM_SEED=%llu GORT_SIM_SCHEDULE=%s %s\n",
                     r.what().c_str(), static_cast<unsigned long long>(i),
                     static_cast<unsigned long long>(so.seed), detail_sim::schedule_env(so).c_str(),
                     detail_sim::program_name().c_str());
      return res;
    }
  }
  return res;
}

}  // namespace testing
GORT_END_NAMESPACE
