// gort/sync.hpp: Go's sync package, in C++ shapes.
//
//   gort::mutex mu;  std::lock_guard lk(mu);          // Lockable
//   gort::shared_mutex rw;  std::shared_lock r(rw);    // SharedLockable
//   gort::condition_variable cv;  cv.wait(lk, pred);   // with std::unique_lock<gort::mutex>
//   gort::wait_group wg;  wg.add(n); wg.done(); wg.wait();
//   gort::once o;  o.call([] { ... });
//   gort::semaphore sem(4);  sem.acquire(); sem.release();
//
// Blocking parks the G, never its M; uncontended paths are one atomic
// operation, no system call and no park. On a thread that is not a G they
// block the thread. Thread-safe.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <system_error>
#include <utility>

#include "chan.hpp"
#include "detail/config.hpp"
#include "detail/note.hpp"
#include "detail/waitq.hpp"

GORT_BEGIN_NAMESPACE

// Go's sync.Mutex. Normal mode: an unlock wakes the first waiter, which
// competes with newcomers (throughput); while that woken waiter, or a
// spinning locker, has yet to compete, unlocks wake nobody (Go's
// mutexWoken). A woken waiter that loses goes back to the front of the
// queue. A waiter that has waited more than 1 ms switches the mutex to
// starvation mode: the lock is handed straight to the waiter at the front,
// newcomers queue behind (bounded latency).
class mutex {
 public:
  mutex() = default;
  mutex(const mutex&) = delete;
  mutex& operator=(const mutex&) = delete;

  void lock() {
    std::uint32_t expected = 0;
    // CAS acquire: the uncontended path. Pairs with the release in unlock.
    if (GORT_LIKELY(state_.compare_exchange_strong(expected, locked, std::memory_order_acquire)))
      return;
    lock_slow();
  }
  bool try_lock() {
    std::uint32_t s = state_.load(std::memory_order_relaxed);
    while ((s & (locked | starving)) == 0)
      if (state_.compare_exchange_weak(s, s | locked, std::memory_order_acquire)) return true;
    return false;
  }
  void unlock() {
    std::uint32_t expected = locked;
    if (GORT_LIKELY(state_.compare_exchange_strong(expected, 0, std::memory_order_release)))
      return;
    unlock_slow();
  }

 private:
  static constexpr std::uint32_t locked = 1;    // held
  static constexpr std::uint32_t waiters = 2;   // the queue is not empty
  static constexpr std::uint32_t starving = 4;  // hand-off mode
  // A G will compete for the mutex without being woken: one an unlock woke,
  // or a spinner. Unlocks then just release. The bit has one owner, the G
  // that set it (a spinner) or was woken with it, and that G clears it when
  // it takes the mutex or queues: it is never left set with nobody to
  // compete, so an unlock that skips the wake loses no waiter.
  static constexpr std::uint32_t woken = 8;
  // Above the flags: how many unlocks skipped a wake because of `woken`
  // since the last one that looked at the queue. Two Gs that trade the
  // mutex by spinning would otherwise never wake the queue's front; every
  // skip_check-th unlock looks whether it has starved.
  static constexpr std::uint32_t skip_one = 16;
  static constexpr std::uint32_t flag_mask = skip_one - 1;
  static constexpr std::uint32_t skip_check = 64;
  static constexpr std::int64_t starvation_ns = 1'000'000;

  void lock_slow() {
    std::int64_t wait_start = 0;
    std::uint32_t awoke = 0;  // `woken` while this G owns that bit
    for (int spin = 0;; ++spin) {
      std::uint32_t s = state_.load(std::memory_order_relaxed);
      if ((s & (locked | starving)) == 0) {
        if (state_.compare_exchange_weak(s, (s | locked) & ~awoke, std::memory_order_acquire))
          return;
        continue;
      }
      // A brief active spin, as Go's, while the holder may be running.
      if ((s & starving) == 0 && detail::can_spin(spin)) {
        // Claim `woken` if nobody has: the unlock need not wake a waiter,
        // this G is about to take the mutex.
        if (awoke == 0 && (s & (woken | waiters)) == waiters &&
            state_.compare_exchange_weak(s, s | woken, std::memory_order_relaxed))
          awoke = woken;
        for (int k = 0; k < detail::active_spin_cnt; ++k) __builtin_ia32_pause();
        continue;
      }
      q_lock_.lock();
      // Set the waiters bit only while the mutex is still held (a CAS), so
      // that its holder's unlock cannot take the fast path and miss us; the
      // same CAS gives up `woken` if this G owns it.
      s = state_.load(std::memory_order_relaxed);
      bool queued_bit = false;
      while ((s & (locked | starving)) != 0) {
        if (state_.compare_exchange_weak(s, (s | waiters) & ~awoke, std::memory_order_acq_rel)) {
          queued_bit = true;
          break;
        }
      }
      if (!queued_bit) {  // released meanwhile: compete again
        q_lock_.unlock();
        continue;
      }
      awoke = 0;
      detail::waiter w;
      if (wait_start == 0) {
        wait_start = detail::sched_nanotime();
        q_.push_back(&w);
      } else {
        q_.push_front(&w);  // woken and lost: keep its place (Go's LIFO)
      }
      w.enqueued_ns = wait_start;
      detail::block(w, q_lock_, "sync.Mutex.Lock");
      if (w.success) return;  // handed off in starvation mode: we own it
      awoke = woken;          // unlock_slow set it for us
      spin = -1;
    }
  }

  void unlock_slow() {
    std::uint32_t s = state_.load(std::memory_order_relaxed);
    // A G will compete anyway: release and wake nobody, counting the skip.
    while ((s & (locked | starving | woken)) == (locked | woken) && s / skip_one < skip_check) {
      // CAS release: pairs with the acquire of the next lock.
      if (state_.compare_exchange_weak(s, (s & ~locked) + skip_one, std::memory_order_release))
        return;
    }
    q_lock_.lock();
    s = state_.load(std::memory_order_relaxed);
    if ((s & locked) == 0) {
      q_lock_.unlock();
      GORT_FATAL("sync: unlock of unlocked gort::mutex");
    }
    const bool pending = (s & (starving | woken)) == woken;
    detail::waiter* front = q_.front();
    if (front == nullptr || pending) {
      // Nobody to wake, or a G already will compete: release, unless the
      // front has starved (then hand it over, below). The state can change
      // once q_lock_ is let go (a G queues, the owner of `woken` gives it
      // up): the CAS below then fails and we look again.
      const bool starved =
          front != nullptr && detail::sched_nanotime() - front->enqueued_ns > starvation_ns;
      if (!starved) {
        // Let go of q_lock_ before the state: once the state says unlocked,
        // another G may lock, unlock and destroy the mutex.
        q_lock_.unlock();
        // CAS release: fails if a G queued meanwhile (under q_lock_) or the
        // woken bit changed; then look again.
        if (state_.compare_exchange_strong(s, s & flag_mask & ~locked, std::memory_order_release))
          return;
        unlock_slow();
        return;
      }
    }
    detail::waiter* w = q_.pop_front();
    const bool starved = (s & starving) != 0 ||
                         detail::sched_nanotime() - w->enqueued_ns > starvation_ns;
    std::uint32_t next = q_.empty() ? 0 : waiters;
    if (starved) {
      // Hand-off: the mutex stays locked, now owned by w. A G that owns
      // `woken` keeps it: it finds the mutex held, and takes it later or
      // queues (at once if the mutex is now starving).
      next |= locked;
      if (!q_.empty()) next |= starving;
      w->success = true;
    } else {
      next |= woken;  // w competes; until it has, unlocks wake nobody
    }
    // A spinner may claim `woken` (a CAS) while we decide: keep its bit.
    // Nothing else changes the state while it is locked and q_lock_ held.
    std::uint32_t cur = state_.load(std::memory_order_relaxed);
    while (!state_.compare_exchange_weak(cur, next | (cur & woken), std::memory_order_release)) {
    }
    q_lock_.unlock();
    detail::wake(w);
  }

  std::atomic<std::uint32_t> state_{0};
  detail::spinlock q_lock_;
  detail::waitq q_;  // q_lock_
};

// Readers-writer lock. Writers are preferred once waiting (a steady stream
// of readers cannot starve them), as Go's RWMutex.
class shared_mutex {
 public:
  void lock() {
    mu_.lock();
    if (active_readers_ == 0 && !writer_) {
      writer_ = true;
      mu_.unlock();
      return;
    }
    ++waiting_writers_;
    detail::waiter w;
    writers_.push_back(&w);
    detail::block(w, mu_, "sync.RWMutex.Lock");
  }
  bool try_lock() {
    std::lock_guard<detail::spinlock> lk(mu_);
    if (active_readers_ != 0 || writer_) return false;
    writer_ = true;
    return true;
  }
  void unlock() {
    mu_.lock();
    writer_ = false;
    wake_next(true);  // releases mu_
  }
  void lock_shared() {
    mu_.lock();
    if (!writer_ && waiting_writers_ == 0) {
      ++active_readers_;
      mu_.unlock();
      return;
    }
    detail::waiter w;
    readers_.push_back(&w);
    detail::block(w, mu_, "sync.RWMutex.RLock");
  }
  bool try_lock_shared() {
    std::lock_guard<detail::spinlock> lk(mu_);
    if (writer_ || waiting_writers_ != 0) return false;
    ++active_readers_;
    return true;
  }
  void unlock_shared() {
    mu_.lock();
    if (active_readers_ == 0) {
      mu_.unlock();
      GORT_FATAL("sync: unlock_shared of gort::shared_mutex not held shared");
    }
    if (--active_readers_ == 0) {
      wake_next(false);
      return;
    }
    mu_.unlock();
  }

 private:
  // mu_ held, the lock free of writers; releases mu_. After a writer:
  // every waiting reader goes first, as in Go (else a writer). After the
  // last reader: a waiting writer.
  void wake_next(bool after_writer) {
    detail::waiter* list = nullptr;
    if (after_writer) {
      while (detail::waiter* w = readers_.pop_front()) {
        ++active_readers_;
        w->next = list;
        list = w;
      }
    }
    if (list == nullptr && active_readers_ == 0) {
      if (detail::waiter* w = writers_.pop_front()) {
        --waiting_writers_;
        writer_ = true;
        mu_.unlock();
        detail::wake(w);
        return;
      }
    }
    mu_.unlock();
    while (list != nullptr) {
      detail::waiter* w = list;
      list = w->next;
      detail::wake(w);
    }
  }

  detail::spinlock mu_;
  int active_readers_ = 0;    // mu_
  int waiting_writers_ = 0;   // mu_
  bool writer_ = false;       // mu_
  detail::waitq writers_;     // mu_
  detail::waitq readers_;     // mu_
};

// Works with std::unique_lock<gort::mutex>. Waits may wake spuriously only
// in the sense the standard allows; use the predicate overloads.
class condition_variable {
 public:
  // Throws std::system_error (operation_not_permitted) if lk does not hold
  // its mutex, before waiting (std::condition_variable leaves it undefined).
  void wait(std::unique_lock<mutex>& lk) {
    check_owns(lk);
    detail::waiter w;
    q_lock_.lock();
    q_.push_back(&w);
    lk.unlock();  // after queueing: a notify in between finds us
    detail::block(w, q_lock_, "sync.Cond.Wait");
    lk.lock();
  }
  template <class Pred>
  void wait(std::unique_lock<mutex>& lk, Pred pred) {
    while (!pred()) wait(lk);
  }
  // Returns false if stopped (std::condition_variable_any's contract: the
  // predicate's value).
  template <class Pred>
  bool wait(std::unique_lock<mutex>& lk, std::stop_token st, Pred pred) {
    check_owns(lk);
    while (!pred()) {
      if (st.stop_requested()) return pred();
      detail::waiter w;
      auto on_stop = [&] { detail::cancel_waiter(q_lock_, q_, w); };
      std::stop_callback<decltype(on_stop)> cb(st, on_stop);
      q_lock_.lock();
      if (st.stop_requested()) {
        q_lock_.unlock();
        continue;
      }
      q_.push_back(&w);
      lk.unlock();
      detail::block(w, q_lock_, "sync.Cond.Wait");
      lk.lock();
    }
    return true;
  }
  void notify_one() {
    q_lock_.lock();
    detail::waiter* w = q_.pop_front();
    q_lock_.unlock();
    if (w != nullptr) detail::wake(w);
  }
  void notify_all() {
    detail::waiter* list = nullptr;
    q_lock_.lock();
    while (detail::waiter* w = q_.pop_front()) {
      w->next = list;
      list = w;
    }
    q_lock_.unlock();
    while (list != nullptr) {
      detail::waiter* w = list;
      list = w->next;
      detail::wake(w);
    }
  }

 private:
  static void check_owns(const std::unique_lock<mutex>& lk) {
    if (!lk.owns_lock())
      throw std::system_error(std::make_error_code(std::errc::operation_not_permitted),
                              "gort::condition_variable::wait: the unique_lock does not hold its mutex");
  }
  detail::spinlock q_lock_;
  detail::waitq q_;  // q_lock_
};

// Go's sync.WaitGroup. add() with a result below zero throws
// std::logic_error (Go panics) and leaves the counter unchanged.
class wait_group {
 public:
  // Adds n (may be negative) to the counter; throws std::logic_error if it
  // would go negative. When it reaches zero, every G blocked in wait()
  // wakes. As in Go, an add() that makes a zero counter positive must not
  // race with wait()s still returning from the previous round.
  void add(std::int64_t n) {
    std::uint64_t s = state_.load(std::memory_order_relaxed);
    std::uint64_t ns;
    do {
      const std::int64_t c = static_cast<std::int64_t>(s >> 32) + n;
      if (c < 0) throw std::logic_error("gort: wait_group counter would go negative");
      if (c > 0x7fffffff) throw std::length_error("gort: wait_group counter overflow");
      ns = (static_cast<std::uint64_t>(c) << 32) | (s & waiter_mask);
      // acq_rel: pairs with itself and with the acquire in wait().
    } while (!state_.compare_exchange_weak(s, ns, std::memory_order_acq_rel));
    // Touch *this no more unless Gs are blocked in wait(): a wait() that
    // sees the zero may return and its caller destroy the wait_group. The
    // blocked ones cannot return before wake_all wakes them.
    if ((ns >> 32) != 0 || (ns & waiter_mask) == 0) return;
    wake_all();
  }
  void done() { add(-1); }
  // Blocks until the counter is zero (returns at once if it is).
  void wait() {
    // load-acquire: pairs with the acq_rel CAS that brought it to zero.
    if ((state_.load(std::memory_order_acquire) >> 32) == 0) return;
    q_lock_.lock();
    std::uint64_t s = state_.load(std::memory_order_acquire);
    for (;;) {  // count ourselves as a waiter while the counter is not zero
      if ((s >> 32) == 0) {
        q_lock_.unlock();
        return;
      }
      if (state_.compare_exchange_weak(s, s + 1, std::memory_order_acq_rel)) break;
    }
    detail::waiter w;
    q_.push_back(&w);
    detail::block(w, q_lock_, "sync.WaitGroup.Wait");
  }
  std::int64_t count() const noexcept {
    return static_cast<std::int64_t>(state_.load(std::memory_order_acquire) >> 32);
  }

 private:
  static constexpr std::uint64_t waiter_mask = 0xffffffffull;

  // The counter reached zero with waiters counted: wake exactly those
  // (each counted itself and queued under q_lock_).
  void wake_all() {
    detail::waiter* list = nullptr;
    std::uint64_t n = 0;
    q_lock_.lock();
    while (detail::waiter* w = q_.pop_front()) {
      w->next = list;
      list = w;
      ++n;
    }
    state_.fetch_sub(n, std::memory_order_acq_rel);
    q_lock_.unlock();  // the waiters are still parked: *this is alive
    while (list != nullptr) {
      detail::waiter* w = list;
      list = w->next;
      detail::wake(w);  // after the last one, *this may be gone
    }
  }

  // Counter in the high 32 bits, blocked waiters in the low 32 (Go's
  // layout), so that add() knows whether anyone must be woken.
  std::atomic<std::uint64_t> state_{0};
  detail::spinlock q_lock_;
  detail::waitq q_;  // q_lock_
};

// Go's sync.Once: call(f) runs f exactly once; concurrent callers wait for
// it. If f throws, the exception propagates and a later call tries again
// (std::call_once's contract).
class once {
 public:
  template <class F>
  void call(F&& f) {
    if (done_.load(std::memory_order_acquire)) return;
    std::lock_guard<mutex> lk(mu_);
    if (done_.load(std::memory_order_relaxed)) return;
    std::forward<F>(f)();
    done_.store(true, std::memory_order_release);
  }
  bool done() const noexcept { return done_.load(std::memory_order_acquire); }

 private:
  std::atomic<bool> done_{false};
  mutex mu_;
};

// A counting semaphore. release() hands permits to waiters in FIFO order.
//
// State: one word, permits in the high half and parked waiters in the low
// half, so that release() can publish permits and learn that nobody waits
// in a single atomic step. That step must be release()'s last touch of the
// semaphore: the moment a permit is visible, an acquirer may take it on
// the fast path, return and destroy the semaphore (the "done" idiom: a
// semaphore on the waiter's stack, released once by a worker). Publishing
// under q_lock_ and unlocking after it would write to freed memory (glibc's
// sem_post had that bug). Invariants:
//   - waiters(state_) == q_.size(), both changed only under q_lock_.
//   - release() adds permits only while waiters == 0 (one CAS); with
//     waiters it takes q_lock_ and hands permits to them directly. The
//     waiters it serves are still blocked until it wakes them, after its
//     last touch of the semaphore, so it outlives that unlock.
//   - an acquirer announces itself (waiters + 1) under q_lock_ in the same
//     CAS that finds no permit, so a release() either sees it and serves it
//     or published its permits before and the acquirer takes one.
class semaphore {
 public:
  // The most permits a semaphore holds at once.
  static constexpr std::int64_t max() noexcept { return 0xffffffff; }

  // Throws std::invalid_argument if initial is negative or above max().
  explicit semaphore(std::int64_t initial) {
    if (initial < 0) throw std::invalid_argument("gort: semaphore count must not be negative");
    if (initial > max())
      throw std::invalid_argument("gort: semaphore count " + std::to_string(initial) +
                                  " is above semaphore::max() (" + std::to_string(max()) + ")");
    state_.store(static_cast<std::uint64_t>(initial) << 32, std::memory_order_relaxed);
  }
  void acquire() {
    if (try_acquire()) return;
    q_lock_.lock();
    std::uint64_t s = state_.load(std::memory_order_relaxed);
    for (;;) {
      const bool take = permits(s) > 0;
      if (state_.compare_exchange_weak(s, take ? s - one_permit : s + one_waiter,
                                       std::memory_order_acq_rel, std::memory_order_relaxed)) {
        if (take) {
          q_lock_.unlock();
          return;
        }
        break;
      }
    }
    detail::waiter w;
    q_.push_back(&w);
    detail::block(w, q_lock_, "semaphore acquire");  // woken owning a permit
  }
  bool try_acquire() {
    std::uint64_t s = state_.load(std::memory_order_relaxed);
    while (permits(s) > 0)
      if (state_.compare_exchange_weak(s, s - one_permit, std::memory_order_acquire,
                                       std::memory_order_relaxed))
        return true;
    return false;
  }
  // Throws std::invalid_argument if n is negative, std::overflow_error if
  // the permits left after serving the waiters would exceed max() (the
  // waiters served get theirs; the rest are not added).
  void release(std::int64_t n = 1) {
    if (n < 0) throw std::invalid_argument("gort: semaphore release count must not be negative");
    if (n == 0) return;
    detail::waiter* list = nullptr;  // served; woken after the last touch of *this
    for (;;) {
      std::uint64_t s = state_.load(std::memory_order_relaxed);
      while (waiters(s) == 0) {
        if (n > max() - permits(s)) {
          wake_all(list);
          throw std::overflow_error("gort: semaphore release would exceed semaphore::max() (" +
                                    std::to_string(max()) + ") permits");
        }
        if (state_.compare_exchange_weak(s, s + (static_cast<std::uint64_t>(n) << 32),
                                         std::memory_order_release, std::memory_order_relaxed)) {
          wake_all(list);  // the CAS was the last touch
          return;
        }
      }
      q_lock_.lock();
      while (n > 0) {
        detail::waiter* w = q_.pop_front();
        if (w == nullptr) break;
        state_.fetch_sub(one_waiter, std::memory_order_relaxed);  // q_lock_ orders it
        w->next = list;  // a permit goes straight to the waiter
        list = w;
        --n;
      }
      q_lock_.unlock();  // the waiters in `list` keep *this alive
      if (n == 0) break;
      // Permits left and nobody queued as of the unlock: publish them, or
      // serve whoever queued since.
    }
    wake_all(list);
  }
  std::int64_t available() const noexcept {
    return static_cast<std::int64_t>(permits(state_.load(std::memory_order_acquire)));
  }

 private:
  static constexpr std::uint64_t one_waiter = 1;
  static constexpr std::uint64_t one_permit = std::uint64_t{1} << 32;
  static constexpr std::int64_t permits(std::uint64_t s) noexcept {
    return static_cast<std::int64_t>(s >> 32);
  }
  static constexpr std::uint64_t waiters(std::uint64_t s) noexcept { return s & 0xffffffff; }
  static void wake_all(detail::waiter* list) {
    while (list != nullptr) {
      detail::waiter* w = list;
      list = w->next;  // before the wake: w lives on the waiter's stack
      detail::wake(w);
    }
  }

  std::atomic<std::uint64_t> state_{0};
  detail::spinlock q_lock_;
  detail::waitq q_;  // q_lock_
};

GORT_END_NAMESPACE
