// An example run-queue policy: Gs spawned with a priority run highest
// first (docs/testing.md, "Writing and testing your own scheduling policy").
// Tested by test/priority_run_queue_test.cpp: gort::testing::
// check_run_queue, and the order Gs run in on a real runtime.
//
// The queue is a binary heap under a mutex. Why a lock, and when that is
// acceptable (gort/policy.hpp, rules P4 and P6):
//   - A lock-free priority queue that also lets thieves take half at once
//     is a research project; a heap under a lock is twenty lines anyone
//     can check.
//   - The owner's put and get take an uncontended mutex: two atomic
//     read-modify-writes (lock, unlock) plus the heap's O(log N), where
//     gort's default ring costs a few plain loads and one release store
//     or CAS. That matters when Gs do almost nothing per schedule, not
//     when each does microseconds of work (not measured here yet: a
//     switch_bench-style comparison is the way to put a number on it).
//   - Thieves hold the victim's lock for O(k log N) to pop k Gs, never hold
//     two queue locks at once (they copy out, unlock, then push into their
//     own queue), so two Ps stealing from each other cannot deadlock.
//   - The runtime may call put under its scheduler lock (globrunqget); the
//     queue never calls back into the runtime, so the order is always
//     scheduler lock -> queue lock and never the reverse.
//   - Nothing under the lock parks, allocates or throws; contention makes
//     an M wait (futex) for a few hundred nanoseconds at worst, never a G.
// Strict priority can starve: a low-priority G waits as long as higher
// ones keep arriving on its P (the global queue's fairness tick does not
// help it). Add aging (priority + time queued) if that matters.
#pragma once

#include <gort/go.hpp>
#include <gort/policy.hpp>
#include <gort/traits.hpp>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <mutex>
#include <utility>

namespace example {

// [queue]
// PriorityOf: a type with `static int of(const G*) noexcept`; higher runs
// first, equal priorities run in the order they were put.
template <class G, std::uint32_t N, class PriorityOf>
class priority_run_queue {
 public:
  static constexpr std::uint32_t capacity = N;

  // Owner only.
  bool put(G* gp) noexcept {
    const int prio = PriorityOf::of(gp);
    std::lock_guard<std::mutex> lk(mu_);
    if (n_ == N) return false;
    push_locked({prio, seq_++, gp});
    return true;
  }

  // Owner only: the highest priority.
  G* get() noexcept {
    std::lock_guard<std::mutex> lk(mu_);
    return n_ == 0 ? nullptr : pop_locked().gp;
  }

  // Owner only, after put failed: the lower half goes to the global queue
  // (it runs after everything here), highest of them first.
  std::uint32_t grab_half_for_overflow(G** out) noexcept {
    std::lock_guard<std::mutex> lk(mu_);
    if (n_ < N) return 0;  // a thief made room: put again
    std::sort(heap_, heap_ + n_, [](const entry& a, const entry& b) { return runs_before(a, b); });
    const std::uint32_t k = N / 2;
    for (std::uint32_t i = 0; i < k; ++i) out[i] = heap_[n_ - k + i].gp;
    n_ -= k;
    std::make_heap(heap_, heap_ + n_, runs_after);
    size_.store(n_, std::memory_order_release);
    return k;
  }

  // A thief: takes the higher half (the victim's owner is busy; the thief
  // is idle, so the most urgent Gs run soonest there).
  G* steal_into(priority_run_queue& thief) noexcept {
    entry batch[N / 2 + 1];
    std::uint32_t k = 0;
    {
      std::lock_guard<std::mutex> lk(mu_);
      k = n_ - n_ / 2;
      for (std::uint32_t i = 0; i < k; ++i) batch[i] = pop_locked();
    }
    if (k == 0) return nullptr;
    if (k > 1) {
      std::lock_guard<std::mutex> lk(thief.mu_);  // never two locks at once
      for (std::uint32_t i = 1; i < k; ++i) thief.push_locked(batch[i]);
    }
    return batch[0].gp;  // the highest: run it now
  }

  // Any thread. store-release under the lock, load-acquire here: a put is
  // visible to size() before the putter's fence (policy.hpp, P5).
  std::uint32_t size() const noexcept { return size_.load(std::memory_order_acquire); }
  bool empty() const noexcept { return size() == 0; }

 private:
  struct entry {
    int prio;
    std::uint64_t seq;  // ties: first put runs first
    G* gp;
  };
  static bool runs_before(const entry& a, const entry& b) noexcept {
    return a.prio != b.prio ? a.prio > b.prio : a.seq < b.seq;
  }
  // std::*_heap keep the largest on top: "largest" = runs first.
  static bool runs_after(const entry& a, const entry& b) noexcept { return runs_before(b, a); }

  void push_locked(const entry& e) noexcept {  // mu_ held, n_ < N
    heap_[n_++] = e;
    std::push_heap(heap_, heap_ + n_, runs_after);
    size_.store(n_, std::memory_order_release);
  }
  entry pop_locked() noexcept {  // mu_ held, n_ > 0
    std::pop_heap(heap_, heap_ + n_, runs_after);
    --n_;
    size_.store(n_, std::memory_order_release);
    return heap_[n_];
  }

  std::mutex mu_;
  std::uint32_t n_ = 0;        // mu_
  std::uint64_t seq_ = 0;      // mu_
  entry heap_[N] = {};         // mu_
  std::atomic<std::uint32_t> size_{0};  // written under mu_, read anywhere
};
// [/queue]

// [traits]
// The priority a G is spawned with: g_payload's default constructor runs
// on the spawning thread, inside gort::go, and reads it.
inline thread_local int spawn_priority = 0;

// For a runtime: a G's priority lives in its payload.
template <class Traits>
struct payload_priority {
  template <class G>
  static int of(const G* gp) noexcept {
    return gort::payload_of<Traits>(gp).priority;
  }
};

struct priority_traits : gort::default_traits {
  struct g_payload {
    int priority = spawn_priority;
  };
  template <class G, std::uint32_t N>
  using run_queue = priority_run_queue<G, N, payload_priority<priority_traits>>;
  // gort::go never switches (by default every 64th spawn yields): the
  // thread_local above is set and restored around it on one thread.
  static constexpr std::uint32_t spawn_yield_every = 0;
};

// Any G of a runtime with priority_traits: spawn f at priority prio.
// gort::go does not switch with these traits, so the thread_local is read
// and restored on this thread.
template <class F>
std::uint64_t go_with_priority(int prio, F&& f) {
  struct restore {
    int old;
    ~restore() { spawn_priority = old; }
  } r{spawn_priority};
  spawn_priority = prio;
  return gort::go(std::forward<F>(f));
}
// [/traits]

}  // namespace example
