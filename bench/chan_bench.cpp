// Channel and sync benchmarks against Go, the same workloads in both
// (bench/go/chan_bench.go is the twin; bench/fiber_twin.cpp has Boost.Fiber
// twins of pingpong, buffered and skynet_chan).
//
//   pingpong     two Gs, two unbuffered channels: one sends i, the other
//                answers i+1; ns per round trip (two rendezvous, two parks)
//   buffered     one producer, one consumer, a channel of capacity 128, the
//                producer closes it at the end; ns per item
//   mutex        4 Gs each take a gort::mutex n/4 times and increment a
//                shared counter; ns per lock/unlock pair
//   select       one G receives n values through a select over 4 unbuffered
//                channels, each fed by its own sender G; ns per select
//   parked       n Gs each parked on the receive of one shared unbuffered
//                channel; figure: resident memory per parked G, KiB
//                ((VmRSS when all are parked - VmRSS before) / n; page
//                tables (VmPTE) reported apart as pte_kib_per_g); then every
//                G is sent a value and exits. ns_per_op: spawn + park per G
//   parked1m     the same with 1,000,000 Gs and 16 KiB stacks (traits): it
//                must simply work
//   skynet_chan  the classic skynet: each G makes an unbuffered channel,
//                spawns 10 children and receives their 10 sums; 1M leaves;
//                ns per leaf
//   skynet_chan_again  the same tree twice in one runtime, the second timed:
//                the live Gs swing from ~0 to ~14k and back twice; the
//                second tree finds the first's stacks and G structs pooled
//
// Every workload checks its own result (sums, counts) and prints no figure
// when the check fails. Modes (bench/harness.hpp):
//   chan_bench [--rounds R] [--quick] [--twin PATH | --no-twin] [workload...]
//   chan_bench --workload NAME --procs P --n N     (one run, one RESULT line)
#include <atomic>
#include <chrono>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <gort/gort.hpp>

#include "harness.hpp"

#ifndef GORT_BENCH_GO_TWIN
#define GORT_BENCH_GO_TWIN ""
#endif

namespace {

using namespace std::chrono_literals;
using bench::clk;
using bench::outcome;

gort::config cfg(unsigned procs) { return gort::config{.procs = procs}; }

outcome pingpong(unsigned procs, long n) {
  gort::runtime rt(cfg(procs));
  return rt.run([n] {
    gort::chan<long> ping(0), pong(0);
    gort::go([&] {
      for (long i = 0; i < n; ++i) pong.send(*ping.recv() + 1);
    });
    long long sum = 0;
    const auto t0 = clk::now();
    for (long i = 0; i < n; ++i) {
      ping.send(i);
      sum += *pong.recv();
    }
    const auto t1 = clk::now();
    return outcome{bench::ns_between(t0, t1) / n, sum, static_cast<long long>(n) * (n + 1) / 2, {}};
  });
}

outcome buffered(unsigned procs, long n) {
  gort::runtime rt(cfg(procs));
  return rt.run([n] {
    gort::chan<long> ch(128);
    const auto t0 = clk::now();
    gort::go([&] {
      for (long i = 0; i < n; ++i) ch.send(i);
      ch.close();
    });
    long long sum = 0;
    for (long v : ch) sum += v;
    const auto t1 = clk::now();
    return outcome{bench::ns_between(t0, t1) / n, sum, static_cast<long long>(n) * (n - 1) / 2, {}};
  });
}

outcome mutex(unsigned procs, long n) {
  constexpr int gs = 4;
  const long per_g = n / gs;
  gort::runtime rt(cfg(procs));
  return rt.run([per_g] {
    gort::mutex mu;
    gort::wait_group wg;
    long long counter = 0;
    wg.add(gs);
    const auto t0 = clk::now();
    for (int g = 0; g < gs; ++g)
      gort::go([&] {
        for (long i = 0; i < per_g; ++i) {
          mu.lock();
          ++counter;
          mu.unlock();
        }
        wg.done();
      });
    wg.wait();
    const auto t1 = clk::now();
    return outcome{bench::ns_between(t0, t1) / (gs * per_g), counter,
                   static_cast<long long>(gs) * per_g, {}};
  });
}

outcome select4(unsigned procs, long n) {
  constexpr int chans = 4;
  const long per_chan = n / chans;
  gort::runtime rt(cfg(procs));
  return rt.run([per_chan] {
    gort::chan<long> c0(0), c1(0), c2(0), c3(0);
    gort::chan<long>* cs[chans] = {&c0, &c1, &c2, &c3};
    const auto t0 = clk::now();
    for (auto* c : cs)
      gort::go([c, per_chan] {
        for (long i = 0; i < per_chan; ++i) c->send(i);
      });
    long long sum = 0;
    auto add = [&sum](std::optional<long> v) { sum += *v; };
    for (long i = 0; i < chans * per_chan; ++i)
      gort::select(gort::on_recv(c0, add), gort::on_recv(c1, add), gort::on_recv(c2, add),
                   gort::on_recv(c3, add));
    const auto t1 = clk::now();
    return outcome{bench::ns_between(t0, t1) / (chans * per_chan), sum,
                   static_cast<long long>(chans) * per_chan * (per_chan - 1) / 2, {}};
  });
}

// Timers re-armed the way a server re-arms a deadline per read: 8 Gs,
// each with 64 timers pending an hour out, reset one per step (a stop and
// an arm: two heap operations). Every reset must find its timer pending.
outcome timers(unsigned procs, long n) {
  constexpr int gs = 8, per_g_timers = 64;
  const long per_g = n / gs;
  gort::runtime rt(cfg(procs));
  return rt.run([per_g] {
    gort::wait_group wg;
    std::atomic<long long> pending{0};
    wg.add(gs);
    const auto t0 = clk::now();
    for (int g = 0; g < gs; ++g)
      gort::go([&] {
        std::vector<std::unique_ptr<gort::timer>> ts;
        for (int k = 0; k < per_g_timers; ++k) ts.push_back(std::make_unique<gort::timer>(1h));
        long long ok = 0;
        for (long i = 0; i < per_g; ++i) ok += ts[static_cast<std::size_t>(i % per_g_timers)]->reset(1h);
        pending.fetch_add(ok, std::memory_order_relaxed);
        wg.done();
      });
    wg.wait();
    const auto t1 = clk::now();
    return outcome{bench::ns_between(t0, t1) / (gs * per_g), pending.load(),
                   static_cast<long long>(gs) * per_g, {}};
  });
}

// Gs parked on a receive: what each costs in resident memory.
template <class Traits>
outcome parked(unsigned procs, long n) {
  gort::basic_runtime<Traits> rt(cfg(procs));
  const long rss0 = bench::proc_status_kib("VmRSS");
  const long pte0 = bench::proc_status_kib("VmPTE");
  return rt.run([n, rss0, pte0] {
    gort::chan<long> ch(0);
    gort::wait_group wg;
    std::atomic<long> started{0};
    std::atomic<long long> sum{0};
    wg.add(n);
    const auto t0 = clk::now();
    for (long i = 0; i < n; ++i)
      gort::go([&] {
        started.fetch_add(1, std::memory_order_relaxed);
        sum.fetch_add(*ch.recv(), std::memory_order_relaxed);
        wg.done();
      });
    while (started.load(std::memory_order_relaxed) < n) gort::yield();
    const auto t1 = clk::now();
    gort::sleep_for(20ms);  // the last few reach their park
    const long rss1 = bench::proc_status_kib("VmRSS");
    const long pte1 = bench::proc_status_kib("VmPTE");
    for (long i = 0; i < n; ++i) ch.send(i);
    wg.wait();
    return outcome{bench::ns_between(t0, t1) / n,
                   sum.load(),
                   static_cast<long long>(n) * (n - 1) / 2,
                   {{"kib_per_g", static_cast<double>(rss1 - rss0) / n},
                    {"pte_kib_per_g", static_cast<double>(pte1 - pte0) / n},
                    {"rss_parked_mib", rss1 / 1024.0}}};
  });
}

struct small_stack_traits : gort::default_traits {
  static constexpr std::size_t stack_size = 16 * 1024;
};

// The classic skynet: results flow up through unbuffered channels.
void skynet(gort::chan<long long>* out, long long num, long long size) {
  if (size == 1) {
    out->send(num);
    return;
  }
  gort::chan<long long> rc(0);
  size /= 10;
  for (long long i = 0; i < 10; ++i) gort::go(skynet, &rc, num + i * size, size);
  long long sum = 0;
  for (int i = 0; i < 10; ++i) sum += *rc.recv();
  out->send(sum);
}

outcome skynet_tree(long n) {  // G
  gort::chan<long long> root(0);
  const auto t0 = clk::now();
  gort::go(skynet, &root, 0LL, static_cast<long long>(n));
  const long long sum = *root.recv();
  const auto t1 = clk::now();
  return outcome{bench::ns_between(t0, t1) / n, sum, static_cast<long long>(n) * (n - 1) / 2, {}};
}

outcome skynet_chan(unsigned procs, long n) {
  gort::runtime rt(cfg(procs));
  return rt.run([n] { return skynet_tree(n); });
}

outcome skynet_chan_again(unsigned procs, long n) {
  gort::runtime rt(cfg(procs));
  return rt.run([n] {
    if (outcome first = skynet_tree(n); first.got != first.want) return first;
    return skynet_tree(n);
  });
}

}  // namespace

int main(int argc, char** argv) {
  const std::vector<bench::workload> table = {
      {"pingpong", pingpong, 1'000'000, 100'000, {1, 2}, "ns_per_op",
       "unbuffered channel ping-pong; ns per round trip"},
      {"buffered", buffered, 5'000'000, 500'000, {1, 2}, "ns_per_op",
       "1 producer, 1 consumer, capacity 128; ns per item"},
      {"mutex", mutex, 4'000'000, 400'000, {2}, "ns_per_op",
       "4 Gs increment a counter under gort::mutex; ns per lock/unlock"},
      {"timers", timers, 4'000'000, 400'000, {1, 2}, "ns_per_op",
       "8 Gs each re-arm one of their 64 pending timers per step; ns per reset"},
      {"select", select4, 1'000'000, 100'000, {1, 2}, "ns_per_op",
       "select over 4 unbuffered channels, 4 senders; ns per select"},
      {"parked", parked<gort::default_traits>, 100'000, 100'000, {1}, "kib_per_g",
       "n Gs parked on a channel receive; resident KiB per G"},
      {"parked1m", parked<small_stack_traits>, 1'000'000, 1'000'000, {1}, "kib_per_g",
       "1M parked Gs, 16 KiB stacks; resident KiB per G"},
      {"skynet_chan", skynet_chan, 1'000'000, 100'000, {1, 2}, "ns_per_op",
       "classic skynet over unbuffered channels; ns per leaf"},
      {"skynet_chan_again", skynet_chan_again, 1'000'000, 100'000, {1, 2}, "ns_per_op",
       "skynet_chan twice in one runtime, the second timed; ns per leaf"},
  };
  if (const int rc = bench::child_main(table, argc, argv); rc >= 0) return rc;
  return bench::table_main(table, "chan_bench", "go", GORT_BENCH_GO_TWIN, argc, argv);
}
