// Context-switch microbenchmark: gort's switch against Boost.Context's
// boost::context::fiber, in the same process, alternating A B A B.
//
// What is measured: a ping-pong between a caller and one coroutine; each
// round trip is two switches; the figure is wall time / switches, the median
// of `rounds` runs of `iters` round trips each (min and max shown). Variants:
//   gort raw        jump_fcontext (FP control words preserved, the default)
//   gort raw nofp   jump_fcontext_nofp (Go's shared FP control state)
//   gort coroutine  detail::coroutine resume/suspend: the raw switch plus
//                   the per-switch bookkeeping (overflow check, exception
//                   state, sanitizer hooks compiled out)
//   boost fiber     boost::context::fiber resume (saves FP control words)
// Usage: switch_bench [iters] [rounds]
//
// bench/run drives it one variant per process instead (bench/harness.hpp):
//   switch_bench --workload switch|switch_nofp|switch_coroutine|switch_boost --n N
// prints one RESULT line: ns per switch, and check=ok when the coroutine
// was resumed exactly N times.
#include <boost/context/fiber.hpp>
#include <gort/detail/coroutine.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <sys/resource.h>
#include <vector>

#include "harness.hpp"

namespace {

using clk = std::chrono::steady_clock;
using gort::detail::transfer;

long iters = 5'000'000;
// Bumped by the coroutine at every resume (the check of the one-variant
// mode). A plain global: the store must happen before each opaque switch
// anyway, so every variant pays the same one store per round trip.
long resumed = 0;

template <bool FP>
void raw_entry(transfer t) noexcept {
  for (;;) {
    ++resumed;
    t = FP ? gort::detail::jump_fcontext(t.fctx, nullptr)
           : gort::detail::jump_fcontext_nofp(t.fctx, nullptr);
  }
}

template <bool FP>
double gort_raw(gort::stack_allocator& alloc) {
  gort::stack s = alloc.allocate(64 * 1024);
  void* ctx = gort::detail::make_fcontext(s.hi, &raw_entry<FP>);
  const auto t0 = clk::now();
  for (long i = 0; i < iters; ++i)
    ctx = (FP ? gort::detail::jump_fcontext(ctx, nullptr)
              : gort::detail::jump_fcontext_nofp(ctx, nullptr)).fctx;
  const auto t1 = clk::now();
  alloc.deallocate(s);  // the coroutine is abandoned mid-loop; no destructors
  return std::chrono::duration<double, std::nano>(t1 - t0).count() / (2.0 * iters);
}

template <bool FP>
double gort_coroutine(gort::stack_allocator& alloc) {
  using co = gort::detail::basic_coroutine<FP>;
  co c(alloc, 64 * 1024, [](co& self) {
    for (;;) {
      ++resumed;
      self.suspend();
    }
  });
  const auto t0 = clk::now();
  for (long i = 0; i < iters; ++i) c.resume();
  const auto t1 = clk::now();
  return std::chrono::duration<double, std::nano>(t1 - t0).count() / (2.0 * iters);
}

double boost_fiber() {
  namespace ctx = boost::context;
  ctx::fiber f{[](ctx::fiber&& caller) {
    for (;;) {
      ++resumed;
      caller = std::move(caller).resume();
    }
    return std::move(caller);
  }};
  const auto t0 = clk::now();
  for (long i = 0; i < iters; ++i) f = std::move(f).resume();
  const auto t1 = clk::now();
  return std::chrono::duration<double, std::nano>(t1 - t0).count() / (2.0 * iters);
}

struct series {
  const char* name;
  std::function<double()> run;
  std::vector<double> ns;
  double median() const {
    auto v = ns;
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  }
};

}  // namespace

// One variant, one process: bench/run's way.
template <class F>
bench::outcome one(long n, F run) {
  iters = std::max(1L, n / 10);  // warm up: stack pages, caches, predictors
  run();
  iters = n;
  resumed = 0;
  const double ns = run();
  return {ns, resumed, n, {}};  // one resume per round trip
}
gort::stack_allocator& allocator() {
  static gort::stack_allocator alloc;
  return alloc;
}

int main(int argc, char** argv) {
  const std::vector<bench::workload> table = {
      {"switch", [](unsigned, long n) { return one(n, [] { return gort_raw<true>(allocator()); }); },
       5'000'000, 500'000, {1}, "ns_per_op", "gort raw switch (FP control words kept); ns per switch"},
      {"switch_nofp",
       [](unsigned, long n) { return one(n, [] { return gort_raw<false>(allocator()); }); },
       5'000'000, 500'000, {1}, "ns_per_op", "gort raw switch, nofp; ns per switch"},
      {"switch_coroutine",
       [](unsigned, long n) { return one(n, [] { return gort_coroutine<true>(allocator()); }); },
       5'000'000, 500'000, {1}, "ns_per_op", "gort detail::coroutine; ns per switch"},
      {"switch_boost", [](unsigned, long n) { return one(n, [] { return boost_fiber(); }); },
       5'000'000, 500'000, {1}, "ns_per_op", "boost::context::fiber; ns per switch"},
  };
  if (const int rc = bench::child_main(table, argc, argv); rc >= 0) return rc;
  if (argc > 1 && std::strcmp(argv[1], "--list") == 0) {
    for (const auto& w : table) std::printf("%-16s %s\n", w.name, w.what);
    return 0;
  }
  if (argc > 1) iters = std::atol(argv[1]);
  int rounds = argc > 2 ? std::atoi(argv[2]) : 7;
  if (iters <= 0 || rounds <= 0) {
    std::fprintf(stderr, "usage: switch_bench [iters > 0] [rounds > 0]\n");
    return 2;
  }
  gort::stack_allocator alloc;
  std::vector<series> all;
  all.push_back({"gort raw (FP ctl kept)", [&] { return gort_raw<true>(alloc); }, {}});
  all.push_back({"gort raw nofp", [&] { return gort_raw<false>(alloc); }, {}});
  all.push_back({"gort coroutine", [&] { return gort_coroutine<true>(alloc); }, {}});
  all.push_back({"gort coroutine nofp", [&] { return gort_coroutine<false>(alloc); }, {}});
  all.push_back({"boost::context::fiber", [] { return boost_fiber(); }, {}});
  for (auto& s : all) s.run();  // warm up
  for (int r = 0; r < rounds; ++r)
    for (auto& s : all) s.ns.push_back(s.run());

  std::printf("switch_bench: ping-pong, %ld round trips x %d rounds, "
              "interleaved; ns per switch (median, min-max)\n", iters, rounds);
  const double boost = all.back().median();
  for (auto& s : all) {
    auto [mn, mx] = std::minmax_element(s.ns.begin(), s.ns.end());
    std::printf("  %-24s %6.2f ns  (%.2f-%.2f)  %.2fx boost\n", s.name,
                s.median(), *mn, *mx, s.median() / boost);
  }
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  std::printf("  peak RSS %ld KiB\n", ru.ru_maxrss);
  return 0;
}
