// An example run-queue policy: a LIFO slot in front of gort's own ring
// (docs/testing.md, "Writing and testing your own scheduling policy").
// Tested by test/lifo_run_queue_test.cpp: gort::testing::check_run_queue,
// and the order Gs run in on a real runtime.
//
// The most recently put G runs next; older ones wait in the FIFO ring.
// This is runnext moved into the queue (tokio calls it the LIFO slot): a G
// that a timer or a poll readies, or one that a spawn displaces from
// runnext, runs while what it touched is still in the cache. The price is
// fairness: two Gs that keep putting each other can keep the ring waiting
// (the global queue's fairness tick still runs), and a burst of puts runs
// its last first.
//
// Lock-free, on top of default_traits::run_queue (gort's ring, rules
// R1-R3 of detail/runq.hpp), plus one atomic slot:
//   - only the owner makes the slot non-null (put); the owner (get) and
//     thieves (steal_into) take it with a CAS to null, so a G in the slot
//     is taken exactly once (P1);
//   - put moves the old slot G into the ring only after checking there is
//     room; only the owner adds to the ring and thieves only remove, so
//     that room is still there (P2);
//   - thieves take the slot only when the ring gave them nothing: it is the
//     G most likely to be warm in the victim's cache.
#pragma once

#include <gort/policy.hpp>
#include <gort/traits.hpp>

#include <atomic>
#include <cstdint>
#include <cstdlib>

namespace example {

// [queue]
template <class G, std::uint32_t N>
class lifo_run_queue {
  using ring_t = gort::default_traits::run_queue<G, N>;

 public:
  // The ring's N plus the slot. capacity / 2 == N / 2, which is all the
  // runtime's overflow buffer (sized from N) has room for.
  static constexpr std::uint32_t capacity = N + 1;

  // Owner only.
  bool put(G* gp) noexcept {
    // load-acquire: pairs with the CAS-release of a thief that emptied it.
    if (slot_.load(std::memory_order_acquire) == nullptr) {
      // Only the owner makes the slot non-null: nobody can fill it under
      // us. store-release: publishes gp to get/steal_into.
      slot_.store(gp, std::memory_order_release);
      return true;
    }
    if (ring_.size() >= N) return false;  // full (a thief may make room)
    // exchange acq_rel: takes the old G, publishes gp; the old G may have
    // been stolen meanwhile (null).
    G* old = slot_.exchange(gp, std::memory_order_acq_rel);
    if (old != nullptr && !ring_.put(old)) std::abort();  // room was checked
    return true;
  }

  // Owner only: the slot first, then the ring in FIFO order.
  G* get() noexcept {
    if (G* gp = take_slot()) return gp;
    return ring_.get();
  }

  // Owner only, after put failed (slot full, ring full): the ring's older
  // half, or 0 if a thief made room.
  std::uint32_t grab_half_for_overflow(G** out) noexcept {
    return ring_.grab_half_for_overflow(out);
  }

  // A thief: half of the ring; the slot only if the ring was empty.
  G* steal_into(lifo_run_queue& thief) noexcept {
    if (G* gp = ring_.steal_into(thief.ring_)) return gp;
    return take_slot();
  }

  // Any thread. Between put's exchange and its ring put, the displaced G is
  // in neither: size() may be one short, but the queue is never empty then
  // (the new G is in the slot), which is what P5 needs.
  std::uint32_t size() const noexcept {
    return ring_.size() + (slot_.load(std::memory_order_acquire) != nullptr ? 1 : 0);
  }
  bool empty() const noexcept { return size() == 0; }

 private:
  G* take_slot() noexcept {
    G* gp = slot_.load(std::memory_order_acquire);
    // CAS acq_rel: exactly one of the owner and the thieves wins gp.
    if (gp != nullptr && slot_.compare_exchange_strong(gp, nullptr, std::memory_order_acq_rel))
      return gp;
    return nullptr;
  }

  alignas(64) std::atomic<G*> slot_{nullptr};
  ring_t ring_;
};
// [/queue]

// [traits]
struct lifo_traits : gort::default_traits {
  template <class G, std::uint32_t N>
  using run_queue = lifo_run_queue<G, N>;
};
// gort::basic_runtime<lifo_traits> rt;  // every P runs a lifo_run_queue
// [/traits]

}  // namespace example
