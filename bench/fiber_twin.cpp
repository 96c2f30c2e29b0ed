// Boost.Fiber twins of gort's benchmarks: the same workloads, the same
// algorithms, the same RESULT line (bench/harness.hpp), so that bench/run
// can put Boost.Fiber next to gort and Go.
//
//   spawn        (twin of sched_bench spawn) the main fiber launches n
//                detached fibers (launch::post: queued, the launcher goes
//                on) that each bump a counter; ns per fiber
//   skynet_chan  (twin of chan_bench skynet_chan) classic skynet, each
//                fiber receives its 10 children's sums through an
//                unbuffered_channel; ns per leaf
//   pingpong     (twin of chan_bench pingpong) two unbuffered_channels;
//                ns per round trip
//   buffered     (twin of chan_bench buffered) buffered_channel of
//                capacity 128 (Boost's ring keeps one slot free: 127 items
//                fit), closed by the producer; ns per item
//
// Ps: with --procs 1 everything runs on the main thread with Boost's
// default round_robin scheduler; with P > 1, P threads (main included) run
// algo::work_stealing(P), Boost's closest match to Go's Ps (idle threads
// spin: suspend=false). Stacks: Boost's default fixedsize_stack (128 KiB,
// malloc'd, allocated when the fiber is created), what a Boost user gets.
//
//   fiber_twin --workload NAME --procs P --n N     (one run, one RESULT line)
#include <atomic>
#include <barrier>
#include <boost/fiber/all.hpp>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#include "harness.hpp"

namespace {

using bench::clk;
using bench::outcome;
namespace fibers = boost::fibers;

// Runs body() on the main fiber of the main thread, with `procs` threads
// sharing the fibers (work stealing) when procs > 1.
template <class Body>
outcome with_procs(unsigned procs, Body body) {
  if (procs == 1) return body();
  std::barrier ready(static_cast<std::ptrdiff_t>(procs));
  std::mutex mu;
  fibers::condition_variable_any cv;
  bool finished = false;
  std::vector<std::thread> workers;
  for (unsigned i = 1; i < procs; ++i)
    workers.emplace_back([&] {
      fibers::use_scheduling_algorithm<fibers::algo::work_stealing>(procs, true);
      ready.arrive_and_wait();  // every scheduler registered before any steal
      std::unique_lock<std::mutex> lk(mu);
      cv.wait(lk, [&] { return finished; });  // parks this thread's main fiber
    });
  fibers::use_scheduling_algorithm<fibers::algo::work_stealing>(procs, true);
  ready.arrive_and_wait();
  outcome o = body();
  {
    std::lock_guard<std::mutex> lk(mu);
    finished = true;
  }
  cv.notify_all();
  for (auto& t : workers) t.join();
  return o;
}

outcome spawn(unsigned procs, long n) {
  return with_procs(procs, [n] {
    std::atomic<long> count{0};
    fibers::mutex mu;
    fibers::condition_variable cv;
    bool done = false;
    const auto t0 = clk::now();
    for (long i = 0; i < n; ++i)
      fibers::fiber([&] {
        if (count.fetch_add(1, std::memory_order_relaxed) + 1 == n) {
          std::lock_guard<fibers::mutex> lk(mu);
          done = true;
          cv.notify_one();
        }
      }).detach();
    {
      std::unique_lock<fibers::mutex> lk(mu);
      cv.wait(lk, [&] { return done; });
    }
    const auto t1 = clk::now();
    return outcome{bench::ns_between(t0, t1) / n, count.load(), n, {}};
  });
}

using ll_chan = fibers::unbuffered_channel<long long>;

void skynet(ll_chan* out, long long num, long long size) {
  if (size == 1) {
    out->push(num);
    return;
  }
  ll_chan rc;
  size /= 10;
  for (long long i = 0; i < 10; ++i) fibers::fiber(skynet, &rc, num + i * size, size).detach();
  long long sum = 0;
  for (int i = 0; i < 10; ++i) sum += rc.value_pop();
  out->push(sum);
}

outcome skynet_chan(unsigned procs, long n) {
  return with_procs(procs, [n] {
    ll_chan root;
    const auto t0 = clk::now();
    fibers::fiber(skynet, &root, 0LL, static_cast<long long>(n)).detach();
    const long long sum = root.value_pop();
    const auto t1 = clk::now();
    return outcome{bench::ns_between(t0, t1) / n, sum, static_cast<long long>(n) * (n - 1) / 2, {}};
  });
}

outcome pingpong(unsigned procs, long n) {
  return with_procs(procs, [n] {
    fibers::unbuffered_channel<long> ping, pong;
    fibers::fiber f([&] {
      for (long i = 0; i < n; ++i) pong.push(ping.value_pop() + 1);
    });
    long long sum = 0;
    const auto t0 = clk::now();
    for (long i = 0; i < n; ++i) {
      ping.push(i);
      sum += pong.value_pop();
    }
    const auto t1 = clk::now();
    f.join();
    return outcome{bench::ns_between(t0, t1) / n, sum, static_cast<long long>(n) * (n + 1) / 2, {}};
  });
}

outcome buffered(unsigned procs, long n) {
  return with_procs(procs, [n] {
    fibers::buffered_channel<long> ch(128);
    const auto t0 = clk::now();
    fibers::fiber f([&] {
      for (long i = 0; i < n; ++i) ch.push(i);
      ch.close();
    });
    long long sum = 0;
    for (long v : ch) sum += v;
    const auto t1 = clk::now();
    f.join();
    return outcome{bench::ns_between(t0, t1) / n, sum, static_cast<long long>(n) * (n - 1) / 2, {}};
  });
}

}  // namespace

int main(int argc, char** argv) {
  const std::vector<bench::workload> table = {
      {"spawn", spawn, 1'000'000, 100'000, {1, 2}, "ns_per_op", "spawn n detached fibers; ns per fiber"},
      {"skynet_chan", skynet_chan, 1'000'000, 100'000, {1, 2}, "ns_per_op",
       "classic skynet over unbuffered_channel; ns per leaf"},
      {"pingpong", pingpong, 1'000'000, 100'000, {1, 2}, "ns_per_op",
       "unbuffered_channel ping-pong; ns per round trip"},
      {"buffered", buffered, 5'000'000, 500'000, {1, 2}, "ns_per_op",
       "buffered_channel(128), 1 producer, 1 consumer; ns per item"},
  };
  if (const int rc = bench::child_main(table, argc, argv); rc >= 0) return rc;
  return bench::table_main(table, "fiber_twin", "none", "", argc, argv);
}
