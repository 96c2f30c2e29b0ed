// Stress test of the runtime's own lock (detail/futex_mutex.hpp): mutual
// exclusion, nothing lost across the spin and futex paths, no waiter left
// asleep. Runs under TSan in .ci/run, which checks that unlock publishes
// the critical section to the next owner.
#include <gort/detail/futex_mutex.hpp>

#include <sched.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <mutex>
#include <thread>
#include <vector>

namespace {
using gort::detail::futex_mutex;

// A plain (non-atomic) counter guarded by the lock: a torn or lost update
// is a wrong total, and TSan reports the race if the lock fails to order.
struct guarded {
  futex_mutex mu;
  long value = 0;
  int inside = 0;
};

unsigned threads_for_test() {
  const unsigned hw = std::thread::hardware_concurrency();
  return hw < 4 ? 4 : (hw > 16 ? 16 : hw);  // more threads than CPUs: sleepers
}
}  // namespace

TEST_CASE("futex_mutex: uncontended lock, try_lock, unlock", "[futex_mutex]") {
  futex_mutex mu;
  CHECK(mu.try_lock());
  CHECK_FALSE(mu.try_lock());
  mu.unlock();
  {
    std::lock_guard<futex_mutex> lk(mu);
    CHECK_FALSE(mu.try_lock());
  }
  CHECK(mu.try_lock());
  mu.unlock();
}

TEST_CASE("futex_mutex: many threads, short sections, exact count", "[futex_mutex]") {
  guarded g;
  const unsigned n = threads_for_test();
  const long per_thread = 20'000;
  std::atomic<bool> overlap{false};
  std::vector<std::thread> ts;
  for (unsigned t = 0; t < n; ++t)
    ts.emplace_back([&] {
      for (long i = 0; i < per_thread; ++i) {
        std::lock_guard<futex_mutex> lk(g.mu);
        if (++g.inside != 1) overlap.store(true);
        ++g.value;
        --g.inside;
      }
    });
  for (auto& t : ts) t.join();
  CHECK_FALSE(overlap.load());
  CHECK(g.value == static_cast<long>(n) * per_thread);
}

TEST_CASE("futex_mutex: holders that sleep push waiters onto the futex", "[futex_mutex]") {
  // A holder that yields its CPU inside the section outlasts every spin,
  // so waiters take the sleeping path; each must be woken (the test would
  // hang, and ctest time out, if an unlock missed a sleeper).
  guarded g;
  const unsigned n = threads_for_test();
  const long per_thread = 300;
  std::vector<std::thread> ts;
  for (unsigned t = 0; t < n; ++t)
    ts.emplace_back([&] {
      for (long i = 0; i < per_thread; ++i) {
        std::lock_guard<futex_mutex> lk(g.mu);
        ++g.value;
        if (i % 8 == 0) std::this_thread::sleep_for(std::chrono::microseconds(50));
        else ::sched_yield();
      }
    });
  for (auto& t : ts) t.join();
  CHECK(g.value == static_cast<long>(n) * per_thread);
}

TEST_CASE("futex_mutex: try_lock never enters a held section", "[futex_mutex]") {
  guarded g;
  std::atomic<bool> stop{false};
  std::atomic<bool> overlap{false};
  std::atomic<long> tried{0};
  std::thread holder([&] {
    for (long i = 0; i < 20'000; ++i) {
      std::lock_guard<futex_mutex> lk(g.mu);
      if (++g.inside != 1) overlap.store(true);
      ++g.value;
      --g.inside;
    }
    stop.store(true);
  });
  std::thread prober([&] {
    while (!stop.load()) {
      if (g.mu.try_lock()) {
        if (++g.inside != 1) overlap.store(true);
        ++g.value;
        --g.inside;
        g.mu.unlock();
        tried.fetch_add(1);
      }
    }
  });
  holder.join();
  prober.join();
  CHECK_FALSE(overlap.load());
  CHECK(g.value == 20'000 + tried.load());
}
