// Samples of docs/api/policy.md and docs/testing.md (built and run by
// meson; the pages quote the regions marked [name] ... [/name], checked by
// docs/check_examples.py). The two example queues are in
// priority_run_queue.hpp and lifo_run_queue.hpp, next to this file.
#include <gort/gort.hpp>
#include <gort/testing/run_queue.hpp>

#include <chrono>
#include <cstdio>
#include <mutex>
#include <vector>

#include "lifo_run_queue.hpp"
#include "priority_run_queue.hpp"

int failures = 0;
void expect(bool ok, const char* what) {
  std::printf("%s: %s\n", ok ? "ok" : "FAIL", what);
  if (!ok) ++failures;
}

// [concept]
// The concept checks the members' names and types; basic_runtime checks the
// same, one static_assert per member, when it is built with the traits.
struct my_g {
  int priority = 0;
};
struct my_priority {
  static int of(const my_g* gp) noexcept { return gp->priority; }
};
using my_queue = example::priority_run_queue<my_g, 256, my_priority>;
static_assert(gort::run_queue_policy<my_queue, my_g>);
static_assert(gort::run_queue_policy<example::lifo_run_queue<my_g, 256>, my_g>);
// [/concept]

bool check_in_plain_main() {
  // [check]
  gort::testing::run_queue_check_options opts;
  opts.stress_time = std::chrono::milliseconds(200);  // default 1 s
  opts.stealers = 3;
  gort::testing::run_queue_check_result r = gort::testing::check_run_queue<my_queue, my_g>(
      opts, [](my_g& g, std::size_t i) { g.priority = static_cast<int>(i % 7); });
  if (!r.ok) std::fprintf(stderr, "my_queue:\n%s", r.report().c_str());
  // [/check]
  return r.ok;
}

bool check_throwing() {
  // [require]
  try {
    gort::testing::require_run_queue<example::lifo_run_queue<my_g, 64>>(
        {.stress_time = std::chrono::milliseconds(100)});
  } catch (const gort::testing::run_queue_check_error& e) {
    std::fprintf(stderr, "%s", e.what());  // the same report
    return false;
  }
  // [/require]
  return true;
}

int main() {
  expect(check_in_plain_main(), "check_run_queue on the priority queue");
  expect(check_throwing(), "require_run_queue on the LIFO-slot queue");

  std::vector<int> order;
  // [priority]
  // One P, so the order is the queue's: highest priority first.
  gort::basic_runtime<example::priority_traits> rt(gort::config{.procs = 1});
  rt.run([&] {
    gort::wait_group wg;
    for (int prio : {1, 5, 3, 5, 0}) {
      wg.add(1);
      example::go_with_priority(prio, [&order, &wg, prio] {
        order.push_back(prio);  // one P: the Gs never run at once
        wg.done();
      });
    }
    wg.add(1);
    gort::go([&wg] { wg.done(); });  // the last spawn takes runnext (see below)
    wg.wait();
  });
  // order == {5, 5, 3, 1, 0}
  // [/priority]
  expect(order == std::vector<int>{5, 5, 3, 1, 0}, "priority order on 1 P");

  std::vector<int> lifo;
  // [lifo]
  gort::basic_runtime<example::lifo_traits> lrt(gort::config{.procs = 1});
  lrt.run([&] {
    gort::wait_group wg;
    for (int i = 0; i < 4; ++i) {
      wg.add(1);
      gort::go([&lifo, &wg, i] {
        lifo.push_back(i);
        wg.done();
      });
    }
    wg.add(1);
    gort::go([&wg] { wg.done(); });
    wg.wait();
  });
  // lifo == {3, 0, 1, 2}: the newest queued G first, then FIFO
  // (default_traits gives {0, 1, 2, 3})
  // [/lifo]
  expect(lifo == std::vector<int>{3, 0, 1, 2}, "LIFO slot order on 1 P");
  return failures == 0 ? 0 : 1;
}
