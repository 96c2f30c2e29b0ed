// The priority run queue of docs/examples/priority_run_queue.hpp: the
// conformance suite (gort/testing/run_queue.hpp), alone and as the runtime
// instantiates it, and a real runtime whose Gs run highest priority first.
#include "../docs/examples/priority_run_queue.hpp"

#include <gort/gort.hpp>
#include <gort/testing/run_queue.hpp>

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <mutex>
#include <vector>

using namespace std::chrono_literals;

namespace {

struct test_g {
  int prio = 0;
};
struct test_prio {
  static int of(const test_g* gp) noexcept { return gp->prio; }
};
// Few distinct priorities: ties, and their FIFO rule, are common.
auto some_priority = [](auto& g, std::size_t i) { g.prio = static_cast<int>((i * 7919) % 13); };

using rt_g = gort::detail::basic_g<example::priority_traits>;

// Priorities in a scrambled but reproducible order.
int prio_of(int i) { return (i * 37) % 11; }

}  // namespace

static_assert(gort::run_queue_policy<example::priority_run_queue<test_g, 256, test_prio>, test_g>);

TEST_CASE("priority_run_queue: conformance", "[priority_run_queue]") {
  gort::testing::run_queue_check_options o;
  o.stress_time = 500ms;
  const auto r = gort::testing::check_run_queue<example::priority_run_queue<test_g, 256, test_prio>,
                                                test_g>(o, some_priority);
  INFO(r.report());
  REQUIRE(r.ok);
  CHECK(r.stress_steals > 0);
  const auto r4 = gort::testing::check_run_queue<example::priority_run_queue<test_g, 4, test_prio>,
                                                 test_g>(o, some_priority);
  INFO(r4.report());
  CHECK(r4.ok);
}

TEST_CASE("priority_run_queue: conformance as the runtime instantiates it",
          "[priority_run_queue]") {
  using q = example::priority_traits::run_queue<gort::detail::g_base, 256>;
  gort::testing::run_queue_check_options o;
  o.stress_time = 300ms;
  const auto r = gort::testing::check_run_queue<q, rt_g>(
      o, [](rt_g& g, std::size_t i) { g.payload.priority = static_cast<int>(i % 5); });
  INFO(r.report());
  CHECK(r.ok);
}

TEST_CASE("priority_run_queue: higher first, ties in put order", "[priority_run_queue]") {
  example::priority_run_queue<test_g, 16, test_prio> q;
  std::vector<test_g> gs(10);
  for (int i = 0; i < 10; ++i) {
    gs[i].prio = prio_of(i) % 3;
    REQUIRE(q.put(&gs[i]));
  }
  std::vector<test_g*> got;
  while (test_g* g = q.get()) got.push_back(g);
  REQUIRE(got.size() == 10);
  for (std::size_t i = 1; i < got.size(); ++i) {
    CHECK(got[i - 1]->prio >= got[i]->prio);
    if (got[i - 1]->prio == got[i]->prio) CHECK(got[i - 1] < got[i]);  // put order
  }
  // Overflow sends the lowest half away; a thief takes the highest half.
  for (auto& g : gs) g.prio = static_cast<int>(&g - gs.data());
  example::priority_run_queue<test_g, 8, test_prio> full, thief;
  for (int i = 0; i < 8; ++i) REQUIRE(full.put(&gs[i]));
  test_g* out[5];
  REQUIRE(full.grab_half_for_overflow(out) == 4);
  for (int i = 0; i < 4; ++i) CHECK(out[i]->prio == 3 - i);  // 0..3, highest first
  test_g* stolen = full.steal_into(thief);  // 4 left: steals 7 and 6
  REQUIRE(stolen != nullptr);
  CHECK(stolen->prio == 7);
  CHECK(thief.get()->prio == 6);
  CHECK(full.get()->prio == 5);
}

TEST_CASE("priority_run_queue: on 1 P, Gs run highest priority first", "[priority_run_queue]") {
  std::mutex mu;
  std::vector<int> ran;  // (priority << 16) | spawn index
  gort::basic_runtime<example::priority_traits> rt(gort::config{.procs = 1});
  rt.run([&] {
    gort::wait_group wg;
    for (int i = 0; i < 200; ++i) {
      wg.add(1);
      example::go_with_priority(prio_of(i), [&, i] {
        {
          std::lock_guard<std::mutex> lk(mu);
          ran.push_back(prio_of(i) << 16 | i);
        }
        wg.done();  // after the unlock (see sync_test's condition_variable test)
      });
    }
    // The last spawn sits in runnext, which runs before the queue: make it
    // one that records nothing.
    wg.add(1);
    gort::go([&] { wg.done(); });
    wg.wait();
  });
  REQUIRE(ran.size() == 200);
  std::vector<int> want = ran;
  std::sort(want.begin(), want.end(), [](int a, int b) {
    return (a >> 16) != (b >> 16) ? (a >> 16) > (b >> 16) : (a & 0xffff) < (b & 0xffff);
  });
  CHECK(ran == want);
}

TEST_CASE("priority_run_queue: payload priority is per spawn", "[priority_run_queue]") {
  gort::basic_runtime<example::priority_traits> rt(gort::config{.procs = 1});
  rt.run([&] {
    CHECK(example::spawn_priority == 0);
    gort::wait_group wg;
    wg.add(1);
    example::go_with_priority(9, [&] { wg.done(); });
    CHECK(example::spawn_priority == 0);  // restored
    wg.wait();
  });
}

TEST_CASE("priority_run_queue: a runtime workload on 1, 2 and 4 Ps", "[priority_run_queue]") {
  const unsigned procs = GENERATE(1u, 2u, 4u);
  constexpr int n = 3000;  // > capacity: the queue overflows to the global queue
  std::vector<std::atomic<int>> runs(n);
  gort::basic_runtime<example::priority_traits> rt(gort::config{.procs = procs});
  rt.run([&] {
    gort::wait_group wg;
    gort::chan<int> c(16);
    for (int i = 0; i < n; ++i) {
      wg.add(1);
      example::go_with_priority(prio_of(i), [&, i] {
        runs[i].fetch_add(1);
        if (i % 3 == 0) gort::yield();
        if (i % 100 == 0) c.send(i);
        wg.done();
      });
    }
    for (int k = 0; k < n / 100; ++k) (void)c.recv();
    wg.wait();
  });
  int bad = 0;
  for (auto& r : runs) bad += r.load() != 1;
  CHECK(bad == 0);
}

#include <gort/testing/sim.hpp>

namespace {
// The priority policy under the deterministic runtime. payload_priority
// names the traits its Gs are made with, so the sim traits restate the
// queue rather than inherit priority_traits' alias.
struct priority_sim_traits : example::priority_traits {
  static constexpr bool deterministic = true;
  template <class G, std::uint32_t N>
  using run_queue =
      example::priority_run_queue<G, N, example::payload_priority<priority_sim_traits>>;
};
}  // namespace

TEST_CASE("priority_run_queue: through the deterministic runtime", "[priority_run_queue][sim]") {
  auto trace = [](std::uint64_t seed) {
    std::vector<int> ran;
    gort::testing::basic_sim_runtime<priority_sim_traits> rt(
        {.seed = seed, .schedule = gort::testing::sim_schedule::run_queue});
    auto r = rt.run([&] {
      gort::wait_group wg;
      for (int i = 0; i < 40; ++i) {
        wg.add(1);
        example::go_with_priority(prio_of(i), [&, i] {
          gort::sleep_for(std::chrono::seconds(prio_of(i) % 3));  // virtual time
          ran.push_back(prio_of(i) << 16 | i);
          wg.done();
        });
      }
      wg.add(1);
      gort::go([&] { wg.done(); });  // sits in runnext
      wg.wait();
    });
    REQUIRE(r.ok());
    return ran;
  };
  const std::vector<int> a = trace(3);
  REQUIRE(a.size() == 40);
  CHECK(trace(3) == a);
  CHECK(trace(12345) == a);  // the policy decides, not the seed
  // Gs woken by the same timer tick run highest priority first.
  for (std::size_t i = 1; i < a.size(); ++i) {
    const int pa = a[i - 1] >> 16, pb = a[i] >> 16;
    if (pa % 3 == pb % 3) CHECK(pa >= pb);
  }
}
