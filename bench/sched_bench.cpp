// Scheduler benchmarks against Go's runtime, the same workloads in both
// (bench/go/sched_bench.go is the twin, bench/fiber_twin.cpp the Boost.Fiber
// one for spawn).
//
//   yield   two Gs each call gort::yield() n times; ns per yield
//   spawn   one G spawns n Gs (spawn + run + exit; it never waits between
//           spawns); ns per G, until the last has run
//   skynet  a tree of Gs, fan-out 10, n leaves; each subtree's sum is
//           propagated upwards with atomics by the last child to finish
//           (bench/chan_bench.cpp has the classic form over channels); ns
//           per leaf; the sum is checked
//
// Every workload checks its own result and prints no figure when the check
// fails. Modes (bench/harness.hpp):
//   sched_bench [--rounds R] [--quick] [--twin PATH | --no-twin] [workload...]
//       runs each workload in fresh processes, alternating with the Go twin
//   sched_bench --workload NAME --procs P --n N
//       one run, one RESULT line (what bench/run drives)
#include <time.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include <gort/gort.hpp>

#include "harness.hpp"

#ifndef GORT_BENCH_GO_TWIN
#define GORT_BENCH_GO_TWIN ""
#endif

namespace {

using bench::clk;
using bench::outcome;

outcome yield_bench(unsigned procs, long n) {
  gort::runtime rt(gort::config{.procs = procs});
  gort::detail::note done;
  std::atomic<int> left{2};
  std::atomic<long long> yields{0};
  const auto t0 = clk::now();
  for (int g = 0; g < 2; ++g)
    rt.go([&] {
      for (long i = 0; i < n; ++i) gort::yield();
      yields.fetch_add(n);
      if (left.fetch_sub(1) == 1) done.wakeup();
    });
  done.sleep();
  const auto t1 = clk::now();
  return {bench::ns_between(t0, t1) / (2.0 * n), yields.load(), 2LL * n, {}};
}

outcome spawn_bench(unsigned procs, long n) {
  gort::runtime rt(gort::config{.procs = procs});
  gort::detail::note done;
  std::atomic<long> count{0};
  const auto t0 = clk::now();
  rt.go([&] {
    for (long i = 0; i < n; ++i)
      gort::go([&] {
        if (count.fetch_add(1, std::memory_order_relaxed) + 1 == n) done.wakeup();
      });
  });
  done.sleep();
  const auto t1 = clk::now();
  return {bench::ns_between(t0, t1) / n, count.load(), n, {}};
}

struct node {
  std::atomic<long long> sum{0};
  std::atomic<long long> pending{0};
  node* parent = nullptr;
};

struct skynet_ctx {
  gort::detail::note done;
  long long result = 0;
};

void finish(node* nd, skynet_ctx* ctx) {
  for (;;) {
    node* p = nd->parent;
    const long long s = nd->sum.load(std::memory_order_relaxed);
    delete nd;
    if (p == nullptr) {
      ctx->result = s;
      ctx->done.wakeup();
      return;
    }
    p->sum.fetch_add(s, std::memory_order_relaxed);
    if (p->pending.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
    nd = p;
  }
}

void skynet(node* parent, long long num, long long size, skynet_ctx* ctx) {
  if (size == 1) {
    auto* leaf = new node;
    leaf->sum.store(num, std::memory_order_relaxed);
    leaf->parent = parent;
    finish(leaf, ctx);
    return;
  }
  auto* nd = new node;
  nd->pending.store(10, std::memory_order_relaxed);
  nd->parent = parent;
  size /= 10;
  for (long long i = 0; i < 10; ++i) gort::go(skynet, nd, num + i * size, size, ctx);
}

// Process CPU time (every thread), ns.
double cpu_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) * 1e9 + static_cast<double>(ts.tv_nsec);
}

// Besides the time per leaf: the CPU time per leaf over every thread (how
// much of the added Ps' time is work and how much is looking for it) and
// the steals, so that a scaling run says why it scales as it does.
outcome skynet_bench(unsigned procs, long n) {
  gort::runtime rt(gort::config{.procs = procs});
  skynet_ctx ctx;
  const double c0 = cpu_ns();
  const auto t0 = clk::now();
  rt.go(skynet, nullptr, 0LL, static_cast<long long>(n), &ctx);
  ctx.done.sleep();
  const auto t1 = clk::now();
  const double c1 = cpu_ns();
  const auto st = rt.stats();
  return {bench::ns_between(t0, t1) / n,
          ctx.result,
          static_cast<long long>(n) * (n - 1) / 2,
          {{"cpu_ns_per_op", (c1 - c0) / static_cast<double>(n)},
           {"steals", static_cast<double>(st.steals)}}};
}

}  // namespace

int main(int argc, char** argv) {
  const std::vector<bench::workload> table = {
      {"yield", yield_bench, 2'000'000, 100'000, {1, 2}, "ns_per_op",
       "two Gs each yield n times; ns per yield"},
      {"spawn", spawn_bench, 1'000'000, 100'000, {1, 2}, "ns_per_op",
       "one G spawns n Gs that run and exit; ns per G"},
      {"skynet", skynet_bench, 1'000'000, 100'000, {1, 2}, "ns_per_op",
       "skynet with atomics, fan-out 10, n leaves; ns per leaf"},
  };
  if (const int rc = bench::child_main(table, argc, argv); rc >= 0) return rc;
  return bench::table_main(table, "sched_bench", "go", GORT_BENCH_GO_TWIN, argc, argv);
}
