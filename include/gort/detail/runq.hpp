// gort/detail/runq.hpp: a P's local run queue (Go's runq in proc.go).
//
// A bounded ring of G pointers, single producer (the P's owner), multiple
// consumers (the owner and thieves on other Ms):
//
//   head  advanced by consumers with a CAS (owner: runqget; thieves: grab);
//   tail  written only by the owner; release-published after the slot;
//   slots atomics (relaxed): a thief may read a slot that the owner is about
//         to overwrite; the head CAS decides who really took it, exactly as
//         in Go, where the race detector is told so.
//
// Invariants, each kept where marked:
//   (R1) tail - head <= N, as observed by the owner (put checks it; the
//        owner is the only writer of tail and head only grows).
//   (R2) a G is taken by exactly one consumer: the one whose CAS moves head
//        past its slot.
//   (R3) a thief reads head then tail with acquire loads; if it sees more
//        than N/2 (tail moved under it), it retries instead of copying a
//        slot that was never published.
//
// Which calls run where:  put / get / grab_half_for_overflow: owner only;
// get_exclusive: owner only, in a runtime with one P (no thief exists).
// steal_into(thief_queue): on the thief's M, which owns thief_queue; the
// victim may be running concurrently. size(): any thread, approximate.
//
// This is default_traits::run_queue. A traits struct may replace it with
// any type that models gort::run_queue_policy (gort/policy.hpp, whose
// rules P1-P6 generalise R1-R3); gort::testing::check_run_queue runs the
// same kind of stress as test/runq_test.cpp on a replacement.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "config.hpp"

GORT_BEGIN_NAMESPACE
namespace detail {

template <class G, std::uint32_t N>
class runq {
  static_assert(N >= 2 && (N & (N - 1)) == 0,
                "run queue capacity must be a power of two >= 2");

 public:
  static constexpr std::uint32_t capacity = N;

  // Owner only. Returns false (and leaves the queue unchanged) when full;
  // the caller then moves half of it to the global queue (runqputslow).
  bool put(G* gp) noexcept {
    // load-acquire: pairs with the head CAS of consumers, so the slot we are
    // about to reuse has been read by whoever took it.
    const std::uint32_t h = head_.load(std::memory_order_acquire);
    const std::uint32_t t = tail_.load(std::memory_order_relaxed);  // owner's own
    if (t - h >= N) return false;  // (R1)
    slots_[t % N].store(gp, std::memory_order_relaxed);
    // store-release: publishes the slot; pairs with the acquire loads of
    // tail in get and grab.
    tail_.store(t + 1, std::memory_order_release);
    return true;
  }

  // Owner only. Null when empty.
  G* get() noexcept {
    for (;;) {
      std::uint32_t h = head_.load(std::memory_order_acquire);
      const std::uint32_t t = tail_.load(std::memory_order_relaxed);
      if (t == h) return nullptr;
      G* gp = slots_[h % N].load(std::memory_order_relaxed);
      // CAS-release: (R2); releases the slot back to the owner's put.
      if (head_.compare_exchange_weak(h, h + 1, std::memory_order_release,
                                      std::memory_order_relaxed)) {
        // Start loading the next G while this one runs: a queued G is
        // usually cold (skynet: most of schedule's time was the first
        // load from the G it picked). Only the owner writes slots, so
        // reading the next one is no race; a thief may take that G first,
        // which makes the prefetch useless, not wrong.
        if (t - h > 1) prefetch(slots_[(h + 1) % N].load(std::memory_order_relaxed));
        return gp;
      }
    }
  }

  // Owner only, and only where no thief can exist (a runtime with one P):
  // get() without the CAS, which was a fifth of a yield's cost there.
  // head is still published with a store-release, for size() readers.
  G* get_exclusive() noexcept {
    const std::uint32_t h = head_.load(std::memory_order_relaxed);  // ours alone
    const std::uint32_t t = tail_.load(std::memory_order_relaxed);
    if (t == h) return nullptr;
    G* gp = slots_[h % N].load(std::memory_order_relaxed);
    // store-release: (R2) with one consumer; releases the slot to put().
    head_.store(h + 1, std::memory_order_release);
    if (t - h > 1) prefetch(slots_[(h + 1) % N].load(std::memory_order_relaxed));
    return gp;
  }

  // Owner only, when put() failed: takes the older half of the queue into
  // batch (capacity N/2) and returns how many, or 0 if a thief moved head
  // meanwhile (then put() has room again).
  std::uint32_t grab_half_for_overflow(G** batch) noexcept {
    std::uint32_t h = head_.load(std::memory_order_acquire);
    const std::uint32_t t = tail_.load(std::memory_order_relaxed);
    const std::uint32_t n = (t - h) / 2;
    if (n != (N / 2)) return 0;  // not full any more
    for (std::uint32_t i = 0; i < n; ++i)
      batch[i] = slots_[(h + i) % N].load(std::memory_order_relaxed);
    if (!head_.compare_exchange_strong(h, h + n, std::memory_order_release,
                                       std::memory_order_relaxed))
      return 0;
    return n;
  }

  // Thief side (runqgrab + runqsteal): moves half of this queue into `into`,
  // which the caller owns and which must be empty. Returns one of the stolen
  // Gs to run at once and leaves the rest in `into`; null if nothing.
  G* steal_into(runq& into) noexcept {
    const std::uint32_t t = into.tail_.load(std::memory_order_relaxed);
    std::uint32_t n = 0;
    for (;;) {
      std::uint32_t h = head_.load(std::memory_order_acquire);  // (R3)
      const std::uint32_t vt = tail_.load(std::memory_order_acquire);
      n = vt - h;
      n = n - n / 2;
      if (n == 0) return nullptr;
      if (n > N / 2) continue;  // read inconsistent h and t: retry (R3)
      for (std::uint32_t i = 0; i < n; ++i)
        into.slots_[(t + i) % N].store(
            slots_[(h + i) % N].load(std::memory_order_relaxed),
            std::memory_order_relaxed);
      // CAS-release: (R2) the Gs we copied are ours only if head still is h.
      if (head_.compare_exchange_weak(h, h + n, std::memory_order_release,
                                      std::memory_order_relaxed))
        break;
    }
    --n;
    G* gp = into.slots_[(t + n) % N].load(std::memory_order_relaxed);
    if (n == 0) return gp;
    // `into` was empty and we add at most N/2: (R1) holds.
    GORT_ASSERT(t - into.head_.load(std::memory_order_acquire) + n <= N,
                "runq::steal_into: thief queue overflow");
    into.tail_.store(t + n, std::memory_order_release);  // publish the rest
    return gp;
  }

  // Any thread; a snapshot that may be stale by the time it returns.
  std::uint32_t size() const noexcept {
    for (;;) {
      const std::uint32_t h = head_.load(std::memory_order_acquire);
      const std::uint32_t t = tail_.load(std::memory_order_acquire);
      if (h == head_.load(std::memory_order_acquire)) return t - h;
    }
  }
  bool empty() const noexcept { return size() == 0; }

 private:
  static void prefetch(const G* gp) noexcept { prefetch_lines(gp, sizeof(G) < 256 ? sizeof(G) : 256); }
  alignas(64) std::atomic<std::uint32_t> head_{0};
  alignas(64) std::atomic<std::uint32_t> tail_{0};
  std::atomic<G*> slots_[N] = {};
};

}  // namespace detail
GORT_END_NAMESPACE
