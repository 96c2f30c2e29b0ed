// gort/detail/timers.hpp: a timer heap.
//
// A timer is a node with a deadline (monotonic ns) and a function run by
// whichever M finds it expired (proc.hpp): the M holding the P whose heap
// has it, at the top of its findrunnable; any M about to give up its P,
// which first runs every P's expired timers (Go steals timers with work);
// or an M woken by the one M that sleeps until the earliest deadline while
// the runtime idles. The function runs without the heap's lock, must not
// block, and typically readies a G or sends on a buffered channel.
//
// One heap per P, as in Go 1.14+: a timer goes to the heap of the P that
// started it (a thread without a P picks one by the node's address) and
// stays there until it fires or is stopped; reset moves it within that
// heap. docs/life-of-an-m.md, "Timers", says why and what it measured.
#pragma once

#include <atomic>
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
  // A deadline pushed back while pending (timer_heap::update), not yet
  // applied to the heap's key (when, seq): applied when t reaches the top.
  bool later = false;
  std::int64_t later_when = 0;
  std::uint64_t later_seq = 0;
  // The P whose heap holds or last held it (set by add_timer under that
  // heap's lock; read by del_timer and mod_timer to find the lock, which
  // the owner never calls concurrently with add_timer).
  std::atomic<void*> home{nullptr};
};

// A binary min-heap by (when, seq). Not thread-safe: the owner locks.
// top()->when is a lower bound of the earliest deadline; settle() makes it
// exact (update).
class timer_heap {
 public:
  bool empty() const noexcept { return h_.empty(); }
  std::size_t size() const noexcept { return h_.size(); }
  timer_node* top() const noexcept { return h_.empty() ? nullptr : h_.front(); }

  void push(timer_node* t) {
    h_.push_back(t);  // first: if it throws, t is left untouched
    t->later = false;
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
    t->later = false;
    if (i != last) {
      up(i);
      down(i);
    }
    return true;
  }
  // t is pending here: its deadline becomes `when`, and its FIFO rank
  // among equal deadlines that of a timer started now. Earlier: t moves up
  // at once. Later (a reset pushing a deadline back, the common case): only
  // noted, and t sinks once it reaches the top (settle), as Go's
  // timerModifiedLater does; the key left in the heap is an early bound,
  // which at worst makes an M look under the lock too soon.
  void update(timer_node* t, std::int64_t when) noexcept {
    if (when < t->when) {
      t->later = false;
      t->when = when;
      t->seq = seq_++;
      up(t->index);
    } else {
      t->later = true;
      t->later_when = when;
      t->later_seq = seq_++;
    }
  }
  // The top once every pushed-back deadline that reached it is applied:
  // the pending timer due first, with its true deadline in `when`.
  timer_node* settle() noexcept {
    while (!h_.empty() && h_.front()->later) {
      timer_node* t = h_.front();
      t->later = false;
      t->when = t->later_when;
      t->seq = t->later_seq;
      down(0);
    }
    return top();
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
