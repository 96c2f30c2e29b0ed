// gort/time.hpp: sleeping, timeouts, timers and tickers.
//
//   gort::sleep_for(10ms);                  // parks the G, not the M
//   auto t = gort::after(50ms);             // a channel that receives once
//   gort::timer tm(1s);  tm.stop();  tm.reset(2s);
//   gort::ticker tk(100ms); tk.c().recv();
//
// Time is std::chrono::steady_clock. Timers live in the runtime of the G
// that makes them; outside a G, sleep_for blocks the thread and after /
// timer / ticker throw std::logic_error (they need a runtime to fire them).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <stop_token>
#include <thread>

#include "chan.hpp"
#include "detail/config.hpp"
#include "detail/note.hpp"
#include "detail/runtime2.hpp"
#include "detail/timers.hpp"
#include "detail/waitq.hpp"

GORT_BEGIN_NAMESPACE

using clock = std::chrono::steady_clock;
static_assert(std::is_same_v<clock::duration, std::chrono::nanoseconds>,
              "gort: timers count steady_clock ticks as nanoseconds");

namespace detail {

inline std::int64_t to_nanotime(clock::time_point tp) noexcept {
  // steady_clock is CLOCK_MONOTONIC on Linux, as nanotime().
  return std::chrono::duration_cast<std::chrono::nanoseconds>(tp.time_since_epoch()).count();
}
inline clock::time_point from_nanotime(std::int64_t ns) noexcept {
  return clock::time_point(std::chrono::duration_cast<clock::duration>(std::chrono::nanoseconds(ns)));
}

// The latest deadline a timer can have. INT64_MAX means "no timer" to the
// timer heaps (p::timer0when), so deadlines stop one below it; nanotime()
// gets there after ~292 years of uptime.
inline constexpr std::int64_t max_when = INT64_MAX - 1;

// d in the clock's nanoseconds, saturated instead of overflowing (a
// duration_cast of hours::max() to nanoseconds is signed overflow, and
// came out as a deadline in the past: "wait forever" fired at once). Any
// duration type, integer or floating; NaN counts as forever.
template <class Rep, class Period>
clock::duration saturated(std::chrono::duration<Rep, Period> d) noexcept {
  const long double ns = std::chrono::duration<long double, std::nano>(d).count();
  constexpr long double hi = static_cast<long double>(INT64_MAX);
  constexpr long double lo = static_cast<long double>(INT64_MIN);
  if (!(ns < hi)) return clock::duration::max();
  if (ns <= lo) return clock::duration::min();
  return std::chrono::duration_cast<clock::duration>(d);
}

// The deadline d after now (nanotime), clamped to max_when: Go's when(),
// where an overflowing deadline becomes maxWhen. now >= 0.
inline std::int64_t when_after(std::int64_t now, clock::duration d) noexcept {
  std::int64_t w = 0;
  if (__builtin_add_overflow(now, d.count(), &w)) return d.count() > 0 ? max_when : 0;
  return w < max_when ? w : max_when;
}

inline sched_base* require_runtime(const char* what) {
  g_base* gp = current_g();
  if (gp == nullptr)
    throw std::logic_error(std::string("gort: ") + what +
                           " needs a runtime: call it from inside a G");
  return gp->sched;
}

// A G sleeping on a timer. Lives on the G's stack: whoever touches it on
// another thread (the park's unlockf, a stop callback) does so under `mu`,
// and the G takes `mu` once after waking, so it cannot return (and destroy
// this) while they still touch it. The timer's own fn reads `g` and touches
// nothing after goready.
struct sleep_timer : timer_node {
  g_base* g = nullptr;
  spinlock mu;
  bool armed = false;       // mu: the timer was added
  bool stop_seen = false;   // mu: a stop request came
  bool canceled = false;    // mu: the stop request woke the G
};

inline void sleep_timer_fire(timer_node* t) {
  g_base* gp = static_cast<sleep_timer*>(t)->g;
  gp->sched->goready(gp, false);  // tail: Gs woken together keep firing order
}

// unlockf of a sleep: the timer starts only once the G is parked, so it can
// never fire for a G that is still running.
inline bool sleep_timer_arm(g_base* gp, void* arg) {
  auto* st = static_cast<sleep_timer*>(arg);
  std::lock_guard<spinlock> lk(st->mu);
  if (st->stop_seen) {
    st->canceled = true;
    return false;  // a stop came before the park completed: do not sleep
  }
  gp->sched->add_timer(st);
  st->armed = true;
  return true;
}

// Returns false if a stop request cut the sleep short.
inline bool sleep_until_ns(std::int64_t when, std::stop_token* token) {
  g_base* gp = current_g();
  sleep_timer st;
  st.when = when < max_when ? when : max_when;  // time_point::max(): never "no timer"
  st.fn = &sleep_timer_fire;
  st.g = gp;
  auto on_stop = [&st] {
    g_base* g = nullptr;
    {
      std::lock_guard<spinlock> lk(st.mu);
      st.stop_seen = true;
      if (st.armed && st.g->sched->del_timer(&st)) {
        st.canceled = true;
        g = st.g;
      }
    }
    if (g != nullptr) g->sched->goready(g);
  };
  std::optional<std::stop_callback<decltype(on_stop)>> cb;
  if (token != nullptr) {
    if (token->stop_requested()) return false;
    cb.emplace(*token, on_stop);
  }
  gp->sched->gopark(&sleep_timer_arm, &st, "sleep");
  std::lock_guard<spinlock> lk(st.mu);  // wait out anyone still touching st
  return !st.canceled;
}

// A timer's or after()'s fire: the runtime's time, into its channel. Full:
// the value is dropped, as in Go. Closed by its owner (Go's timer channels
// cannot be closed; gort's can): nobody is left to deliver to.
inline void fire_into(chan<clock::time_point>& ch, sched_base* s) {
  try {
    ch.try_send(from_nanotime(s->now()));
  } catch (const channel_closed&) {
  }
}

}  // namespace detail

// The time on the calling G's runtime clock: steady_clock's time, or, in a
// deterministic runtime (gort::testing::sim_runtime), its virtual time.
// Compute deadlines from it (gort::now() + 50ms) and they hold in both.
inline clock::time_point now() noexcept { return detail::from_nanotime(detail::sched_nanotime()); }

// Parks the current G until tp (blocks the thread outside a G). A deadline
// in the past still yields once.
inline void sleep_until(clock::time_point tp) {
  if (detail::current_g() == nullptr) {
    std::this_thread::sleep_until(tp);
    return;
  }
  detail::sleep_until_ns(detail::to_nanotime(tp), nullptr);
}
// Durations too long to express as a deadline (duration::max(): "forever")
// sleep until the latest deadline there is.
template <class Rep, class Period>
void sleep_for(std::chrono::duration<Rep, Period> d) {
  sleep_until(detail::from_nanotime(detail::when_after(detail::sched_nanotime(), detail::saturated(d))));
}

// The same, cut short by a stop request: returns false if it was.
inline bool sleep_until(clock::time_point tp, std::stop_token token) {
  if (detail::current_g() == nullptr) {
    std::mutex mu;
    std::condition_variable_any cv;
    std::unique_lock<std::mutex> lk(mu);
    return !cv.wait_until(lk, token, tp, [] { return false; }) && !token.stop_requested();
  }
  return detail::sleep_until_ns(detail::to_nanotime(tp), &token);
}
template <class Rep, class Period>
bool sleep_for(std::chrono::duration<Rep, Period> d, std::stop_token token) {
  return sleep_until(detail::from_nanotime(detail::when_after(detail::sched_nanotime(), detail::saturated(d))),
                     std::move(token));
}

// Go's time.Timer: its channel c() receives the firing time once. stop()
// returns true if it stopped a pending timer (false: it had fired, been
// stopped, or is firing right now, and then its value still comes);
// reset(d) re-arms it and returns whether it was pending. Thread-safe.
// Needs a G's runtime to make. A timer may outlive its runtime: one still
// pending then is dropped, never fires, and stop() returns false; reset()
// throws std::logic_error once the runtime is gone, and must not race with
// its destruction.
class timer {
 public:
  template <class Rep, class Period>
  explicit timer(std::chrono::duration<Rep, Period> d)
      : timer(detail::saturated(d), clock::duration::zero()) {}
  timer(const timer&) = delete;
  timer& operator=(const timer&) = delete;
  ~timer() { stop(); }

  chan<clock::time_point>& c() noexcept { return s_->ch; }

  bool stop() {
    std::lock_guard<detail::spinlock> lk(s_->mu);
    return stop_locked();
  }
  template <class Rep, class Period>
  bool reset(std::chrono::duration<Rep, Period> d) {
    const clock::duration dd = detail::saturated(d);
    std::lock_guard<detail::spinlock> lk(s_->mu);  // one hold: stop and re-arm
    // Pending and still in its heap: move it there (pending implies the
    // runtime is alive: its end drops every pending timer first).
    if (s_->pending && s_->sched->mod_timer(s_.get(), deadline(dd))) return true;
    const bool was = stop_locked();
    arm_locked(dd);
    return was;
  }

 protected:
  // First expiry after `first`; then every `period` if it is not zero (a
  // ticker: the period is set before the first arm).
  timer(clock::duration first, clock::duration period)
      : s_(std::make_shared<state>(detail::require_runtime("gort::timer"))) {
    s_->fn = &fire;  // set once: an M that popped the node reads them unlocked
    s_->drop = &drop;
    s_->period = period;
    std::lock_guard<detail::spinlock> lk(s_->mu);
    arm_locked(first);
  }

  // What follows `mu` is guarded by it. Invariant: the fires still to run
  // (nodes popped by an M whose fire has not taken mu yet) number `stale`,
  // plus one when pending and the node is not in the heap; `self` is set
  // exactly while pending or stale != 0, so the state outlives them all.
  struct state : detail::timer_node {
    explicit state(detail::sched_base* s) : sched(s), alive(s->liveness()), ch(1) {}
    detail::sched_base* sched;
    std::weak_ptr<const void> alive;  // expires with the runtime
    chan<clock::time_point> ch;
    detail::spinlock mu;
    std::shared_ptr<state> self;  // keeps the state alive while anything may fire
    clock::duration period{0};    // ticker
    bool pending = false;         // armed; neither fired (one-shot), stopped nor dropped
    int stale = 0;                // fires of stopped arms still to run: each delivers once
  };

  // mu held.
  bool stop_locked() {
    if (!s_->pending) return false;  // (dropped: its runtime is not touched)
    s_->pending = false;
    if (s_->sched->del_timer(s_.get())) {
      if (s_->stale == 0) s_->self.reset();  // the object's own s_ still holds it
      return true;
    }
    // Popped, its fire not run yet: that fire delivers once, does not
    // re-arm (a ticker), and lets go of `self` when it is the last.
    ++s_->stale;
    return false;
  }

  // d from now on the timer's own runtime clock (a sim_runtime's virtual
  // time, whoever calls).
  std::int64_t deadline(clock::duration d) const { return detail::when_after(s_->sched->now(), d); }

  // mu held; the node is not in the heap (never armed, stopped, fired, or
  // popped and counted in stale). Expires at deadline(d).
  void arm_locked(clock::duration d) {
    if (s_->alive.expired())
      throw std::logic_error("gort: timer reset after its runtime was destroyed");
    s_->when = deadline(d);
    s_->self = s_;
    s_->pending = true;
    s_->sched->add_timer(s_.get());  // never throws; no fire looks before mu is released
  }

  static void fire(detail::timer_node* t) {
    state* s = static_cast<state*>(t);
    std::shared_ptr<state> keep;  // s must outlive the send below
    {
      std::lock_guard<detail::spinlock> lk(s->mu);
      keep = s->self;
      if (s->stale != 0) {
        --s->stale;
        if (s->stale == 0 && !s->pending) s->self.reset();
      } else if (!s->pending) {
        return;  // unreachable by the invariant; nothing to deliver
      } else if (s->period.count() != 0) {
        // Ticker: the next tick after now, on the original phase; ticks a
        // stalled runtime missed are skipped, as Go's are.
        // Saturating: a period of years ends at max_when.
        const std::int64_t period = s->period.count();  // > 0, clock::duration is ns
        const std::int64_t now = s->sched->now();
        s->when = detail::when_after(s->when, s->period);
        if (s->when <= now) s->when = detail::when_after(s->when, s->period * ((now - s->when) / period + 1));
        s->sched->add_timer(s);
      } else {
        s->pending = false;
        s->self.reset();
      }
    }
    detail::fire_into(s->ch, s->sched);
  }

  // The runtime ended with the timer pending (timer_node::drop): no M is
  // left, so no fire is in flight.
  static void drop(detail::timer_node* t) {
    state* s = static_cast<state*>(t);
    std::shared_ptr<state> keep;  // released after the lock: it may own s
    std::lock_guard<detail::spinlock> lk(s->mu);
    keep = std::move(s->self);
    s->pending = false;
    s->stale = 0;
  }

  std::shared_ptr<state> s_;
};

// Go's time.Ticker: c() receives every period (ticks a slow receiver misses
// are dropped). Stops when destroyed or stop()ped; reset(period) restarts
// it with a new period (Go's Ticker.Reset).
class ticker : public timer {
 public:
  template <class Rep, class Period>
  explicit ticker(std::chrono::duration<Rep, Period> period)
      : timer(checked(detail::saturated(period)), detail::saturated(period)) {}

  template <class Rep, class Period>
  void reset(std::chrono::duration<Rep, Period> period) {
    const clock::duration p = checked(detail::saturated(period));
    std::lock_guard<detail::spinlock> lk(s_->mu);
    stop_locked();
    s_->period = p;
    arm_locked(p);
  }

 private:
  static clock::duration checked(clock::duration period) {
    if (period <= clock::duration::zero())
      throw std::invalid_argument("gort: ticker period must be positive");
    return period;
  }
};

// Go's time.After: a channel that receives the time once, after d. The
// channel stays valid as long as the returned pointer, also after its
// runtime is destroyed (a pending after() is then dropped, never sent).
template <class Rep, class Period>
std::shared_ptr<chan<clock::time_point>> after(std::chrono::duration<Rep, Period> d) {
  struct holder : detail::timer_node {
    explicit holder(detail::sched_base* s) : sched(s), ch(1) {}
    detail::sched_base* sched;
    chan<clock::time_point> ch;
    std::shared_ptr<holder> self;  // while pending; fn or drop lets go
  };
  auto h = std::make_shared<holder>(detail::require_runtime("gort::after"));
  h->when = detail::when_after(detail::sched_nanotime(), detail::saturated(d));
  h->fn = [](detail::timer_node* t) {
    std::shared_ptr<holder> keep = std::move(static_cast<holder*>(t)->self);
    detail::fire_into(keep->ch, keep->sched);
  };
  h->drop = [](detail::timer_node* t) {
    std::shared_ptr<holder> keep = std::move(static_cast<holder*>(t)->self);
  };
  h->self = h;
  h->sched->add_timer(h.get());
  return std::shared_ptr<chan<clock::time_point>>(h, &h->ch);
}

GORT_END_NAMESPACE
