// gort/detail/timers.hpp: the runtime's timer heap.
//
// A timer is a node with a deadline (monotonic ns) and a function run by
// whichever M finds it expired: an M with a P at the top of findrunnable, or
// the one M that sleeps until the earliest deadline while the runtime idles
// (proc.hpp). The function runs without the heap's lock, must not block, and
// typically readies a G or sends on a buffered channel.
//
// One heap per runtime, under one lock. Go 1.14+ keeps a heap per P and
// steals timers with work; gort starts with the simpler shared heap
// (docs/life-of-an-m.md, "Where gort differs", says why and what would
// change it).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "config.hpp"

GORT_BEGIN_NAMESPACE
namespace detail {

struct timer_node {
  static constexpr std::size_t npos = static_cast<std::size_t>(-1);
  std::int64_t when = 0;        // deadline, nanotime()
  std::uint64_t seq = 0;        // FIFO among equal deadlines
  void (*fn)(timer_node*) = nullptr;
  // Called instead of fn, on the destroying thread, when the runtime ends
  // with the timer still pending (fn will never run): the owner lets go
  // of what a pending timer holds. Null: nothing to do (a G's sleep or an
  // I/O deadline cannot be pending then: every G has finished).
  void (*drop)(timer_node*) = nullptr;
  std::size_t index = npos;     // position in the heap; npos: not pending
};

// A binary min-heap by (when, seq). Not thread-safe: the owner locks.
class timer_heap {
 public:
  bool empty() const noexcept { return h_.empty(); }
  std::size_t size() const noexcept { return h_.size(); }
  timer_node* top() const noexcept { return h_.empty() ? nullptr : h_.front(); }

  void push(timer_node* t) {
    h_.push_back(t);  // first: if it throws, t is left untouched
    t->seq = seq_++;
    t->index = h_.size() - 1;
    up(t->index);
  }
  // Removes t if pending; returns whether it was.
  bool remove(timer_node* t) noexcept {
    const std::size_t i = t->index;
    if (i == timer_node::npos) return false;
    const std::size_t last = h_.size() - 1;
    if (i != last) {
      h_[i] = h_[last];
      h_[i]->index = i;
    }
    h_.pop_back();
    t->index = timer_node::npos;
    if (i != last) {
      up(i);
      down(i);
    }
    return true;
  }
  timer_node* pop() noexcept {
    timer_node* t = h_.front();
    remove(t);
    return t;
  }

 private:
  static bool less(const timer_node* a, const timer_node* b) noexcept {
    return a->when != b->when ? a->when < b->when : a->seq < b->seq;
  }
  void swap_at(std::size_t i, std::size_t j) noexcept {
    std::swap(h_[i], h_[j]);
    h_[i]->index = i;
    h_[j]->index = j;
  }
  void up(std::size_t i) noexcept {
    while (i > 0) {
      const std::size_t parent = (i - 1) / 2;
      if (!less(h_[i], h_[parent])) break;
      swap_at(i, parent);
      i = parent;
    }
  }
  void down(std::size_t i) noexcept {
    for (;;) {
      std::size_t m = i;
      const std::size_t l = 2 * i + 1, r = l + 1;
      if (l < h_.size() && less(h_[l], h_[m])) m = l;
      if (r < h_.size() && less(h_[r], h_[m])) m = r;
      if (m == i) return;
      swap_at(i, m);
      i = m;
    }
  }

  std::vector<timer_node*> h_;
  std::uint64_t seq_ = 0;
};

}  // namespace detail
GORT_END_NAMESPACE
