// Samples for docs/testing.md, "Testing code that runs on gort" (regions
// marked [name] ... [/name], checked by docs/check_examples.py).
#include <atomic>
#include <memory>
#include <span>
#include <chrono>
#include <cstdio>
#include <stdexcept>
#include <string>

#include <gort/gort.hpp>
#include <gort/testing/shuffle.hpp>
#include <gort/testing/sim.hpp>

#include "echo_server.hpp"
#include "lifo_run_queue.hpp"

using namespace std::chrono_literals;

// [policy_sim_traits]
// A policy under the deterministic runtime: the same queue, plus
// deterministic = true; sim_schedule::run_queue makes the queue pick.
struct lifo_sim_traits : example::lifo_traits {
  static constexpr bool deterministic = true;
};
// [/policy_sim_traits]

int main() {
  // [replay]
  // The same seed gives the same interleaving, so the same output.
  auto trace = [](std::uint64_t seed) {
    gort::testing::sim_runtime rt(seed);
    std::string out;
    auto r = rt.run([&] {
      gort::wait_group wg;
      for (char name : {'a', 'b', 'c'}) {
        wg.add(1);
        gort::go([&, name] {
          for (int i = 0; i < 3; ++i) {
            out += name;
            gort::yield();
          }
          wg.done();
        });
      }
      wg.wait();
    });
    if (!r.ok()) throw std::runtime_error(r.what());
    return out;
  };
  if (trace(7) != trace(7)) return 1;
  // [/replay]

  // [virtual_time]
  // An hour of timeouts takes no real time: the clock jumps to the next
  // timer whenever every G is blocked.
  gort::testing::sim_runtime clock_rt(1);
  auto timed = clock_rt.run([] {
    const auto t0 = gort::now();
    auto timeout = gort::after(1h);
    gort::chan<int> never(0);
    const int which = gort::select(gort::on_recv(never, [](std::optional<int>) {}),
                                   gort::on_recv(*timeout, [](auto) {}));
    if (which != 1 || gort::now() - t0 < 1h) throw std::runtime_error("no timeout");
  });
  if (!timed.ok()) return 1;
  // [/virtual_time]

  // [deadlock]
  // A deadlock is a report, not an abort.
  static gort::chan<int> requests(0);  // off the stacks of Gs that stay blocked
  gort::testing::sim_runtime dl_rt(3);
  auto dl = dl_rt.run([] {
    gort::go([] { requests.send(1); });
    requests.recv();
    requests.recv();  // nobody sends a second request
  });
  std::printf("deadlock reported: %s\n", dl.what().c_str());
  if (!dl.deadlock) return 1;
  // [/deadlock]

  // [explore]
  // Try 300 schedules; the first that fails is printed with its replay line.
  auto res = gort::testing::explore(
      [] {
        static int balance;
        balance = 100;
        gort::wait_group wg;
        for (int i = 0; i < 2; ++i) {
          wg.add(1);
          gort::go([&] {
            if (balance >= 60) {  // check...
              gort::yield();      // (any park or yield lets another G in)
              balance -= 60;      // ...then act: a race
            }
            wg.done();
          });
        }
        wg.wait();
        if (balance < 0) throw std::runtime_error("overdrawn: " + std::to_string(balance));
      },
      {.first_seed = 1, .runs = 300});
  std::printf("explore: %s after %llu schedule(s)\n", res.ok ? "passed" : "found the race",
              static_cast<unsigned long long>(res.runs));
  if (res.ok) return 1;  // this scenario has a race; explore must find it
  // [/explore]

  // [pct]
  // A bug of depth 1: `checker` must run its second step only after
  // `setter`'s 100 yields. Random schedules practically never do that
  // (about 2^-100 per run); PCT runs the higher-priority G until it
  // blocks, so about every other PCT run does.
  auto pct = gort::testing::explore(
      [] {
        auto done = std::make_shared<bool>(false);
        gort::wait_group wg;
        wg.add(2);
        gort::go([&wg, done] {
          for (int i = 0; i < 100; ++i) gort::yield();
          *done = true;
          wg.done();
        });
        gort::go([&wg, done] {
          gort::yield();
          const bool late = *done;
          wg.done();
          if (late) throw std::runtime_error("checker ran after setter");
        });
        wg.wait();
      },
      {.runs = 20, .random = false, .pct = true, .pct_depth = 1});
  if (pct.ok || pct.failure.options.schedule != gort::testing::sim_schedule::pct) return 1;
  // [/pct]

  // [network]
  // The echo example's handler on the in-memory network: 10 ms each way,
  // reads of 1-4 bytes at a time, all on the virtual clock and the seed.
  gort::testing::sim_runtime net_rt({.seed = 42, .net = {.latency = 10ms, .max_read = 4}});
  auto net = net_rt.run([] {
    auto ln = gort::net::listen_tcp("127.0.0.1:7000");  // nothing touches the kernel
    gort::wait_group server;
    server.add(1);
    gort::go([&] {
      gort::net::conn c = ln.accept();
      echo::handle(c);  // docs/examples/echo_server.hpp, unchanged
      server.done();
    });
    const auto t0 = gort::now();
    gort::net::conn c = gort::net::dial_tcp("localhost:7000");  // 10 ms: the handshake
    c.write(gort::net::as_bytes("hello, sim"));
    std::string back(10, '\0');
    c.read_full(std::as_writable_bytes(std::span(back)));  // several partial reads
    if (back != "hello, sim" || gort::now() - t0 != 30ms) throw std::runtime_error("echo");
    c.close();  // the handler reads EOF and returns
    server.wait();
  });
  if (!net.ok()) return 1;
  // [/network]

  // [policy_sim]
  // The LIFO-slot policy, deterministically: the queue picks, the seed
  // does not matter, the clock is virtual.
  auto order = [](std::uint64_t seed) {
    std::string ran;
    gort::testing::basic_sim_runtime<lifo_sim_traits> rt(
        {.seed = seed, .schedule = gort::testing::sim_schedule::run_queue});
    auto r = rt.run([&] {
      gort::wait_group wg;
      for (char name : {'a', 'b', 'c', 'd'}) {
        wg.add(1);
        gort::go([&, name] {
          ran += name;
          wg.done();
        });
      }
      wg.wait();
    });
    if (!r.ok()) throw std::runtime_error(r.what());
    return ran;
  };
  // d was in runnext; c, displaced last, sat in the LIFO slot; then FIFO.
  if (order(1) != "dcab" || order(2) != order(1)) return 1;
  // [/policy_sim]

  // [stress]
  // The real runtime, shuffled, 20 runs on each of 1, 2 and 4 Ps: with TSan
  // this finds the data races a one-thread deterministic run cannot.
  auto st = gort::testing::stress(
      [] {
        std::atomic<int> hits{0};
        gort::wait_group wg;
        for (int i = 0; i < 100; ++i) {
          wg.add(1);
          gort::go([&] {
            hits.fetch_add(1, std::memory_order_relaxed);
            wg.done();
          });
        }
        wg.wait();
        if (hits.load() != 100) throw std::runtime_error("a G did not run");
      },
      {.runs = 20, .procs = {1, 2, 4}});
  if (!st.ok) return 1;
  // [/stress]
  return 0;
}
