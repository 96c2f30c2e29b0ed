// gort/go.hpp: what a G can do about itself and its runtime, whatever the
// runtime's traits: spawn, yield, its id, blocking calls, thread locking.
#pragma once

#include <sys/syscall.h>
#include <unistd.h>

#include <cstdint>
#include <stdexcept>
#include <type_traits>
#include <utility>

#include "detail/config.hpp"
#include "detail/runtime2.hpp"
#include "runtime.hpp"

GORT_BEGIN_NAMESPACE

namespace detail {
inline g_base* require_g(const char* what) {
  g_base* gp = current_g();
  if (gp == nullptr)
    throw std::logic_error(std::string("gort: ") + what +
                           " called outside a G (use runtime::go / runtime::run from "
                           "other threads)");
  return gp;
}
}  // namespace detail

// Starts f(args...) as a new G in the current G's runtime. Throws
// std::logic_error outside a G. Returns the new G's id.
// A yield point: every Traits::spawn_yield_every-th call (64 by default)
// and when sysmon asked the caller to yield, it first lets the Gs queued so
// far run; it may return on another thread (spawn_yield_every = 0: never).
template <class F, class... Args>
std::uint64_t go(F&& f, Args&&... args) {
  detail::g_base* gp = detail::require_g("gort::go");
  return gp->sched->spawn_task(detail::make_task(std::forward<F>(f), std::forward<Args>(args)...));
}

// Lets other Gs run; the caller goes to the back of its P's queue. When
// nothing could run first (its P's queue empty, nothing on the global
// queue, no timer or I/O pending) it returns at once, on the same thread.
// Outside a G, yields the thread (sched_yield).
inline void yield() { detail::yield_any(); }

namespace this_g {

// The current G's id (unique within the process, never reused); 0 outside
// a G.
inline std::uint64_t id() noexcept {
  detail::g_base* gp = detail::current_g();
  return gp != nullptr ? gp->goid : 0;
}

// True when sysmon has asked the current G to yield (it has run 10 ms
// without reaching a yield point). gort has no asynchronous preemption: a
// long computation calls this, or simply gort::yield(), now and then.
inline bool preempt_requested() noexcept {
  detail::g_base* gp = detail::current_g();
  return gp != nullptr && gp->preempt.load(std::memory_order_relaxed);
}

// The OS thread the current G runs on now (it may change at every yield
// point unless the G called lock_os_thread).
inline long os_thread_id() noexcept { return ::syscall(SYS_gettid); }

}  // namespace this_g

// Runs f() (a blocking system call, a C library call, a slow disk read)
// without stalling the other Gs of this P: the P is handed to another M if
// f() blocks for more than a sysmon tick while other Gs wait. Go's
// entersyscall/exitsyscall. f runs outside the scheduler: gort::yield()
// there yields the thread, gort::go queues the new G globally, and a
// primitive that would park the G (a channel, a mutex, a sleep, net I/O)
// is a fatal error with a message. Outside a G, simply calls f().
template <class F>
decltype(auto) blocking(F&& f) {
  detail::g_base* gp = detail::current_g();
  if (gp == nullptr || gp->status() != detail::gstatus::running) return std::forward<F>(f)();
  struct guard {
    detail::sched_base* s;
    ~guard() { s->exitsyscall(); }
  };
  gp->sched->entersyscall();
  guard gd{gp->sched};
  return std::forward<F>(f)();
}

// Wires the current G to its OS thread: it runs only there, and the thread
// runs nothing else, until unlock_os_thread() (calls nest; Go's
// LockOSThread). A G that exits while locked takes its thread with it.
inline void lock_os_thread() { detail::require_g("gort::lock_os_thread")->sched->lock_os_thread(); }
inline void unlock_os_thread() {
  detail::require_g("gort::unlock_os_thread")->sched->unlock_os_thread();
}

GORT_END_NAMESPACE
