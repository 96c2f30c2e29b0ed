// gort/detail/waitq.hpp: what every blocking primitive is built from.
//
//   spinlock  a short lock for a primitive's state. Not std::mutex: a G
//             takes it, then parks, and the lock is released by the park's
//             unlockf on the next G's stack or on g0 (same thread, another
//             fiber: TSan would see a mutex unlocked by another "thread").
//   waiter    Go's sudog: one blocked G (or outside thread) on one queue.
//   waitq     a FIFO of waiters, guarded by the primitive's spinlock.
//   block()   parks the current G (gopark, the spinlock released by the
//             unlockf once the G is parked), or, on a thread that is not a
//             G, sleeps on a futex note: gort primitives work from plain
//             threads too, as a blocking fallback.
//   wake()    goready, or the note.
#pragma once

#include <sched.h>

#include <atomic>
#include <cstdint>

#include "config.hpp"
#include "note.hpp"
#include "runtime2.hpp"
#include "spinlock.hpp"

GORT_BEGIN_NAMESPACE
namespace detail {

struct select_state;

// One blocked party on one wait queue (Go's sudog). Lives on the blocked
// party's stack, which does not move.
struct waiter {
  g_base* g = nullptr;     // the parked G, or null for an outside thread
  note* thread_note = nullptr;
  void* elem = nullptr;    // the value to send (T*) or the slot to receive into
  bool success = false;    // set by the waker: the operation completed
  bool canceled = false;   // woken by a stop request instead
  select_state* sel = nullptr;  // non-null when part of a select
  int case_index = -1;
  std::int64_t enqueued_ns = 0;
  waiter* prev = nullptr;
  waiter* next = nullptr;
  bool queued = false;
};

// What all cases of one select share: the first waker to claim it wins.
struct select_state {
  std::atomic<bool> done{false};
  int fired = -1;  // written by the winner before it wakes the G
};

// FIFO of waiters; the owner's spinlock guards it. push_front puts back
// one that was woken and lost the race again (mutex: Go's LIFO re-queue).
class waitq {
 public:
  bool empty() const noexcept { return head_ == nullptr; }
  void push_back(waiter* w) noexcept {
    w->next = nullptr;
    w->prev = tail_;
    if (tail_ != nullptr) tail_->next = w;
    else head_ = w;
    tail_ = w;
    w->queued = true;
  }
  void push_front(waiter* w) noexcept {
    w->prev = nullptr;
    w->next = head_;
    if (head_ != nullptr) head_->prev = w;
    else tail_ = w;
    head_ = w;
    w->queued = true;
  }
  void remove(waiter* w) noexcept {
    if (!w->queued) return;
    if (w->prev != nullptr) w->prev->next = w->next;
    else head_ = w->next;
    if (w->next != nullptr) w->next->prev = w->prev;
    else tail_ = w->prev;
    w->prev = w->next = nullptr;
    w->queued = false;
  }
  // The first waiter that may still be woken: a select waiter whose select
  // already fired elsewhere is dropped (Go's dequeue + selectDone CAS).
  waiter* pop_front() noexcept {
    while (waiter* w = head_) {
      remove(w);
      if (w->sel != nullptr) {
        bool expected = false;
        // CAS acq_rel: exactly one channel's waker claims a select.
        if (!w->sel->done.compare_exchange_strong(expected, true, std::memory_order_acq_rel))
          continue;
        w->sel->fired = w->case_index;
      }
      return w;
    }
    return nullptr;
  }
  waiter* front() const noexcept { return head_; }

 private:
  waiter* head_ = nullptr;
  waiter* tail_ = nullptr;
};

inline bool unlock_spinlock(g_base*, void* l) {
  static_cast<spinlock*>(l)->unlock();
  return true;
}

// Blocks the caller until wake(w). `l` is held on entry and released once
// the caller is parked (G) or about to sleep (thread). w.g / w.thread_note
// are filled in here.
inline void block(waiter& w, spinlock& l, const char* reason) {
  if (g_base* gp = current_g()) {
    w.g = gp;
    gp->sched->gopark(&unlock_spinlock, &l, reason);
    return;
  }
  note n;
  w.thread_note = &n;
  l.unlock();
  n.sleep();
}

// Wakes a waiter taken off its queue. Call after releasing the primitive's
// lock where possible (goready may take scheduler locks).
inline void wake(waiter* w) {
  if (w->g != nullptr) w->g->sched->goready(w->g);
  else w->thread_note->wakeup();
}

}  // namespace detail
GORT_END_NAMESPACE
