// gort/detail/futex_mutex.hpp: the runtime's own lock (Go's runtime mutex,
// lock_futex.go): spin briefly, then sleep on a futex.
//
// Why not std::mutex: glibc's default mutex goes to the kernel on the first
// failed attempt. The scheduler's locks (sched.lock, the free-G list,
// allglock) are held for tens of nanoseconds, by Ms on other CPUs; a
// waiter that sleeps pays a futex wait, and the holder a futex wake, for a
// lock that would have been free a microsecond later. On the 2-vCPU VM
// that was 14% of skynet's CPU time at 2 Ps (docs/life-of-an-m.md,
// "The runtime's locks"). Why not a spinlock: allglock is also held across
// munmap, and an M may be descheduled while it holds any of them; a waiter
// must not burn its CPU for that long.
//
// States: 0 unlocked, 1 locked with nobody asleep, 2 locked and somebody
// may be asleep on the futex. A waiter that goes to sleep first sets 2, so
// unlock() knows whether to call futex_wake: the uncontended path is one
// xchg to lock and one to unlock, no syscall.
//
// Meets Lockable (std::lock_guard, std::unique_lock).
#pragma once

#include <sched.h>

#include <atomic>
#include <cstdint>

#include "config.hpp"
#include "note.hpp"

GORT_BEGIN_NAMESPACE
namespace detail {

class futex_mutex {
 public:
  futex_mutex() = default;
  futex_mutex(const futex_mutex&) = delete;
  futex_mutex& operator=(const futex_mutex&) = delete;

  void lock() noexcept {
    // exchange-acquire: pairs with the exchange-release in unlock().
    const std::uint32_t v = key_.exchange(locked, std::memory_order_acquire);
    if (GORT_LIKELY(v == unlocked)) return;
    lock_slow(v);
  }

  bool try_lock() noexcept {
    std::uint32_t v = unlocked;
    return key_.compare_exchange_strong(v, locked, std::memory_order_acquire,
                                        std::memory_order_relaxed);
  }

  void unlock() noexcept {
    // exchange-release: publishes the critical section to the next owner.
    const std::uint32_t v = key_.exchange(unlocked, std::memory_order_release);
    if (GORT_UNLIKELY(v == sleeping)) futex_wake(&key_, 1);
    else if (GORT_UNLIKELY(v == unlocked)) GORT_FATAL("futex_mutex: unlock of an unlocked mutex");
  }

 private:
  static constexpr std::uint32_t unlocked = 0;
  static constexpr std::uint32_t locked = 1;
  static constexpr std::uint32_t sleeping = 2;
  static constexpr int active_spins = 4;    // rounds of spin_pauses PAUSEs
  static constexpr int spin_pauses = 30;
  static constexpr int passive_spins = 1;   // rounds ending in sched_yield

  // v: what the failed exchange in lock() found. Our exchange stored
  // `locked` over it; if it was `sleeping`, a sleeper may now go unwoken
  // unless whoever takes the lock next restores `sleeping`. So every later
  // acquisition by this waiter stores `wait` (the strongest state seen),
  // never plain `locked` over a possible sleeper.
  [[gnu::noinline]] void lock_slow(std::uint32_t v) noexcept {
    std::uint32_t wait = v;
    for (;;) {
      for (int i = 0; i < active_spins + passive_spins; ++i) {
        std::uint32_t cur = key_.load(std::memory_order_relaxed);
        while (cur == unlocked) {
          // CAS-acquire: pairs with the exchange-release in unlock().
          if (key_.compare_exchange_weak(cur, wait, std::memory_order_acquire,
                                         std::memory_order_relaxed))
            return;
        }
        if (i < active_spins) {
          for (int k = 0; k < spin_pauses; ++k) __builtin_ia32_pause();
        } else {
          ::sched_yield();  // the holder may have been preempted
        }
      }
      // Announce a sleeper. If the lock was free meanwhile we now hold it
      // (marked sleeping: at worst one futex_wake too many at unlock).
      // exchange-acquire: pairs with the exchange-release in unlock().
      if (key_.exchange(sleeping, std::memory_order_acquire) == unlocked) return;
      wait = sleeping;
      futex_wait(&key_, sleeping, nullptr);
    }
  }

  std::atomic<std::uint32_t> key_{unlocked};
};

}  // namespace detail
GORT_END_NAMESPACE
