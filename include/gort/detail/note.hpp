// gort/detail/note.hpp: one-shot sleep/wakeup for an M (Go's note, from
// lock_futex.go), on a futex.
//
// Protocol (invariant 8 in the design map): exactly one waker calls
// wakeup() once; exactly one sleeper calls sleep() and, after it returns,
// clear() before the note is used again. The waker publishes what the
// sleeper needs (nextp, ...) before wakeup(); the release in wakeup pairs
// with the acquire in sleep().
#pragma once

#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>

#include "config.hpp"

GORT_BEGIN_NAMESPACE
namespace detail {

inline void futex_wait(std::atomic<std::uint32_t>* addr, std::uint32_t val,
                       const timespec* rel) noexcept {
  ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(addr),
            FUTEX_WAIT_PRIVATE, val, rel, nullptr, 0);
}
inline void futex_wake(std::atomic<std::uint32_t>* addr, int n) noexcept {
  ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(addr),
            FUTEX_WAKE_PRIVATE, n, nullptr, nullptr, 0);
}

inline std::int64_t nanotime() noexcept {
  timespec ts;
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return std::int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

class note {
 public:
  // Any thread; at most once per clear().
  void wakeup() noexcept {
    // exchange-release: publishes the waker's writes to the sleeper.
    if (key_.exchange(1, std::memory_order_release) != 0)
      GORT_FATAL("notewakeup: double wakeup");
    futex_wake(&key_, 1);
  }

  // The owning thread only. Returns once wakeup() has been called.
  void sleep() noexcept {
    // load-acquire: pairs with the exchange in wakeup().
    while (key_.load(std::memory_order_acquire) == 0) futex_wait(&key_, 0, nullptr);
  }

  // Sleeps at most ns nanoseconds (ns < 0: no limit). Returns whether the
  // note was woken.
  bool sleep_for(std::int64_t ns) noexcept {
    if (ns < 0) {
      sleep();
      return true;
    }
    const std::int64_t now = nanotime();
    // Saturated: a timer at the end of time (gort::detail::max_when) asks
    // for nearly INT64_MAX ns.
    const std::int64_t deadline = ns > INT64_MAX - now ? INT64_MAX : now + ns;
    while (key_.load(std::memory_order_acquire) == 0) {
      const std::int64_t left = deadline - nanotime();
      if (left <= 0) return false;
      timespec ts{static_cast<time_t>(left / 1'000'000'000),
                  static_cast<long>(left % 1'000'000'000)};
      futex_wait(&key_, 0, &ts);
    }
    return true;
  }

  // The sleeper only, after sleep() returned (or before first use).
  void clear() noexcept { key_.store(0, std::memory_order_relaxed); }

  bool woken() const noexcept { return key_.load(std::memory_order_acquire) != 0; }

 private:
  std::atomic<std::uint32_t> key_{0};
};

}  // namespace detail
GORT_END_NAMESPACE
