// gort/detail/spinlock.hpp: a short lock for a primitive's state.
//
// Not std::mutex: a G takes it, then parks, and the lock is released by the
// park's unlockf on the next G's stack or on g0 (same thread, another
// fiber: TSan would see a mutex unlocked by another "thread").
#pragma once

#include <sched.h>

#include <atomic>

#include "config.hpp"

GORT_BEGIN_NAMESPACE
namespace detail {

class spinlock {
 public:
  // The uncontended case inline (one xchg); waiting out of line.
  void lock() noexcept {
    // exchange-acquire: pairs with the store-release in unlock().
    if (GORT_LIKELY(!held_.exchange(true, std::memory_order_acquire))) return;
    lock_slow();
  }
  bool try_lock() noexcept { return !held_.exchange(true, std::memory_order_acquire); }
  void unlock() noexcept { held_.store(false, std::memory_order_release); }

 private:
  [[gnu::noinline]] void lock_slow() noexcept {
    for (int spins = 0;; ++spins) {
      while (held_.load(std::memory_order_relaxed)) {
        if (spins < 64) __builtin_ia32_pause();
        else ::sched_yield();  // the holder may have been preempted
        ++spins;
      }
      // exchange-acquire: pairs with the store-release in unlock().
      if (!held_.exchange(true, std::memory_order_acquire)) return;
    }
  }

  std::atomic<bool> held_{false};
};

}  // namespace detail
GORT_END_NAMESPACE
