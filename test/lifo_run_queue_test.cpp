// The LIFO-slot run queue of docs/examples/lifo_run_queue.hpp: the
// conformance suite (gort/testing/run_queue.hpp), alone and as the runtime
// instantiates it, and a real runtime where the newest queued G runs first.
#include "../docs/examples/lifo_run_queue.hpp"

#include <gort/gort.hpp>
#include <gort/testing/run_queue.hpp>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <memory>
#include <mutex>
#include <vector>

using namespace std::chrono_literals;

namespace {
struct test_g {
  int id = 0;
};

// The order tests need every G queued before the first runs: by default
// every 64th spawn is a yield point (default_traits::spawn_yield_every).
template <class Traits>
struct spawn_all_first : Traits {
  static constexpr std::uint32_t spawn_yield_every = 0;
};

// Spawns n recording Gs from one G on one P, then a silent one that takes
// runnext; returns the order the n ran in.
template <class Traits>
std::vector<int> spawn_order(int n) {
  std::mutex mu;
  std::vector<int> ran;
  gort::basic_runtime<Traits> rt(gort::config{.procs = 1});
  rt.run([&] {
    gort::wait_group wg;
    for (int i = 0; i < n; ++i) {
      wg.add(1);
      gort::go([&, i] {
        {
          std::lock_guard<std::mutex> lk(mu);
          ran.push_back(i);
        }
        wg.done();  // after the unlock (see sync_test's condition_variable test)
      });
    }
    wg.add(1);
    gort::go([&] { wg.done(); });
    wg.wait();
  });
  return ran;
}
}  // namespace

static_assert(gort::run_queue_policy<example::lifo_run_queue<test_g, 256>, test_g>);

TEST_CASE("lifo_run_queue: conformance", "[lifo_run_queue]") {
  gort::testing::run_queue_check_options o;
  o.stress_time = 500ms;
  const auto r = gort::testing::check_run_queue<example::lifo_run_queue<test_g, 256>>(o);
  INFO(r.report());
  REQUIRE(r.ok);
  CHECK(r.stress_steals > 0);
  o.stress_time = 200ms;
  const auto r2 = gort::testing::check_run_queue<example::lifo_run_queue<test_g, 2>>(o);
  INFO(r2.report());
  CHECK(r2.ok);
}

TEST_CASE("lifo_run_queue: conformance as the runtime instantiates it", "[lifo_run_queue]") {
  gort::testing::run_queue_check_options o;
  o.stress_time = 300ms;
  const auto r = gort::testing::check_run_queue<
      example::lifo_traits::run_queue<gort::detail::g_base, 256>>(o);
  INFO(r.report());
  CHECK(r.ok);
}

TEST_CASE("lifo_run_queue: the newest first, then FIFO", "[lifo_run_queue]") {
  example::lifo_run_queue<test_g, 4> q;
  std::vector<test_g> gs(6);
  for (int i = 0; i < 6; ++i) gs[i].id = i;
  for (int i = 0; i < 5; ++i) REQUIRE(q.put(&gs[i]));  // capacity 4 + 1
  CHECK_FALSE(q.put(&gs[5]));
  CHECK(q.size() == 5);
  CHECK(q.get()->id == 4);  // the slot
  CHECK(q.get()->id == 0);  // then the ring, oldest first
  REQUIRE(q.put(&gs[5]));
  CHECK(q.get()->id == 5);
  CHECK(q.get()->id == 1);
  // A thief takes from the ring, the slot only when the ring is empty.
  example::lifo_run_queue<test_g, 4> thief;
  CHECK(q.steal_into(thief)->id == 2);  // ring {2, 3}: takes 1
  REQUIRE(q.put(&gs[0]));               // slot 0, ring {3}
  CHECK(q.steal_into(thief)->id == 3);
  CHECK(q.steal_into(thief)->id == 0);
  CHECK(q.empty());
  CHECK(thief.empty());
}

TEST_CASE("lifo_run_queue: on 1 P the newest queued G runs first", "[lifo_run_queue]") {
  // Spawning from a G puts the child in runnext and pushes the previous
  // runnext onto the queue: the queue sees 0, 1, ..., n-1 in order.
  constexpr int n = 100;
  const std::vector<int> fifo = spawn_order<spawn_all_first<gort::default_traits>>(n);
  const std::vector<int> lifo = spawn_order<spawn_all_first<example::lifo_traits>>(n);
  std::vector<int> want_fifo, want_lifo{n - 1};
  for (int i = 0; i < n; ++i) want_fifo.push_back(i);
  for (int i = 0; i < n - 1; ++i) want_lifo.push_back(i);
  CHECK(fifo == want_fifo);
  CHECK(lifo == want_lifo);
}

TEST_CASE("lifo_run_queue: a runtime workload on 1, 2 and 4 Ps", "[lifo_run_queue]") {
  const unsigned procs = GENERATE(1u, 2u, 4u);
  constexpr int n = 2000;
  std::vector<std::atomic<int>> runs(n);
  std::atomic<long> sum{0};
  gort::basic_runtime<example::lifo_traits> rt(gort::config{.procs = procs});
  rt.run([&] {
    // Pairs of Gs that ping-pong over unbuffered channels (each wake goes
    // through runnext or the slot), plus a fan-out beyond the capacity.
    gort::wait_group wg;
    for (int i = 0; i < n; i += 2) {
      auto c = std::make_shared<gort::chan<int>>(0);
      wg.add(2);
      gort::go([&, c, i] {
        for (int k = 0; k < 10; ++k) c->send(k);
        runs[i].fetch_add(1);
        wg.done();
      });
      gort::go([&, c, i] {
        for (int k = 0; k < 10; ++k) sum += c->recv().value_or(0);
        runs[i + 1].fetch_add(1);
        wg.done();
      });
    }
    wg.wait();
  });
  int bad = 0;
  for (auto& r : runs) bad += r.load() != 1;
  CHECK(bad == 0);
  CHECK(sum == long{n / 2} * 45);
}

#include <gort/testing/sim.hpp>

namespace {
struct lifo_sim_traits : example::lifo_traits {
  static constexpr bool deterministic = true;
};

// A scenario where the queue decides the order: Gs that yield and wake one
// another, with sleeps on the virtual clock. Returns what ran, in order.
std::string lifo_sim_trace(std::uint64_t seed) {
  std::string out;
  gort::testing::basic_sim_runtime<lifo_sim_traits> rt(
      {.seed = seed, .schedule = gort::testing::sim_schedule::run_queue});
  auto r = rt.run([&] {
    gort::wait_group wg;
    gort::chan<int> c(0);
    for (int i = 0; i < 6; ++i) {
      wg.add(1);
      gort::go([&, i] {
        for (int k = 0; k < 3; ++k) {
          out += static_cast<char>('a' + i);
          if (i % 2 == 0) gort::yield();
          else gort::sleep_for(std::chrono::milliseconds(i));
        }
        wg.done();
      });
    }
    wg.add(1);
    gort::go([&] {
      for (int k = 0; k < 3; ++k) out += static_cast<char>('0' + *c.recv());
      wg.done();
    });
    for (int k = 0; k < 3; ++k) c.send(k);
    wg.wait();
  });
  REQUIRE(r.ok());
  return out;
}
}  // namespace

TEST_CASE("lifo_run_queue: through the deterministic runtime", "[lifo_run_queue][sim]") {
  // sim_schedule::run_queue: the policy picks the next G, as on a real
  // 1-P runtime, with virtual time and deadlock reports; the run is the
  // same whatever the seed.
  const std::string a = lifo_sim_trace(1);
  CHECK(a.size() == 6 * 3 + 3);
  CHECK(lifo_sim_trace(1) == a);
  CHECK(lifo_sim_trace(77) == a);
  // The LIFO slot shows: the last G spawned before main blocks ran first
  // of the six (it displaced runnext into the slot).
  const auto first_letter = a.find_first_of("abcdef");
  REQUIRE(first_letter != std::string::npos);
  CHECK(a[first_letter] == 'f');
}
