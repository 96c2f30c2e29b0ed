// gort/detail/context.hpp: switching between execution contexts.
//
// A `context` is one side of a switch: either a thread's own stack (the g0
// of an M, or the thread that calls coroutine::resume) or a coroutine stack.
// switch_context() wraps the raw jump with everything a switch must keep
// true:
//   - the overflow check of the stack being left (its canary, its stack
//     pointer), so a canary-protected stack that overflowed is reported at
//     the next switch-out, never silently;
//   - the running-stack record the SIGSEGV handler reads;
//   - ASan's and TSan's fiber annotations, so that sanitizer builds see
//     each stack switch and report real bugs, not noise;
//   - the C++ runtime's per-thread exception state (__cxa_eh_globals: the
//     chain of caught exceptions and the uncaught count). A context that
//     suspends inside a catch block and resumes on another thread, or after
//     the thread caught exceptions of its own, must find its own chain, and
//     leave the thread's intact. The switch saves the thread's state into
//     the outgoing context and loads the incoming one's.
//
// Protocol: the side that is resumed stores the saved stack pointer of the
// side that jumped (transfer.fctx) into that side's context before anything
// else runs. A context is therefore not resumable until the switch away from
// it has completed on the other side; the scheduler relies on this (gopark
// runs its unlockf only after that store, see sched.hpp).
#pragma once

#include <cstddef>
#include <cstdint>

#include "../stack.hpp"
#include "arch/fcontext.hpp"
#include "config.hpp"
#include "overflow.hpp"

#if GORT_ASAN
extern "C" {
void __sanitizer_start_switch_fiber(void** fake_stack_save, const void* bottom,
                                    std::size_t size);
void __sanitizer_finish_switch_fiber(void* fake_stack_save,
                                     const void** bottom_old,
                                     std::size_t* size_old);
void __asan_unpoison_memory_region(const volatile void* addr, std::size_t size);
}
#endif
#if GORT_TSAN
extern "C" {
void* __tsan_get_current_fiber(void);
void* __tsan_create_fiber(unsigned flags);
void __tsan_destroy_fiber(void* fiber);
void __tsan_switch_to_fiber(void* fiber, unsigned flags);
}
#endif

// __cxa_get_globals under a name of our own: <cxxabi.h> declares it
// __attribute__((const)), which would let the compiler reuse one thread's
// answer after a switch that moved the caller to another thread.
extern "C" void* gort_v0_cxa_get_globals() noexcept __asm__("__cxa_get_globals");

GORT_BEGIN_NAMESPACE
namespace detail {

// The C++ ABI's per-thread exception state (Itanium C++ ABI 2.5.1; libstdc++
// and libc++abi agree on these two members on x86-64).
struct eh_globals {
  void* caught_exceptions = nullptr;
  unsigned int uncaught_exceptions = 0;
};

// The calling thread's exception state, cached per thread. Out of line so
// that no caller can reuse a TLS address computed before a switch that
// moved it to another thread.
[[gnu::noinline]] inline eh_globals* thread_eh_globals() noexcept {
  thread_local eh_globals* cached = nullptr;
  if (GORT_UNLIKELY(cached == nullptr))
    cached = static_cast<eh_globals*>(gort_v0_cxa_get_globals());
  return cached;
}

struct context;

// Passed through the jump: who jumped, and the caller's payload. It lives
// in the context that jumps, not on its stack: under ASan with
// detect_stack_use_after_return a local may live on the fiber's fake
// stack, which a context that never returns (`last`) frees before the
// other side has read the record (a SEGV in finish_switch at every G exit).
struct switch_record {
  context* from;
  void* data;
};

struct context {
  void* sp = nullptr;           // saved stack pointer while suspended
  stack_info* stk = nullptr;    // null for a thread's own stack
  eh_globals eh;                // exception state while suspended
  switch_record out{};          // the record of this context's last switch away
#if GORT_ASAN
  void* asan_fake_stack = nullptr;
  const void* asan_bottom = nullptr;  // for a thread stack: learnt on the
  std::size_t asan_size = 0;          // first switch away from it
#endif
#if GORT_TSAN
  void* tsan_fiber = nullptr;
  bool tsan_owned = false;
#endif

  context() = default;
  context(const context&) = delete;
  context& operator=(const context&) = delete;
  ~context() {
#if GORT_TSAN
    if (tsan_owned && tsan_fiber != nullptr) __tsan_destroy_fiber(tsan_fiber);
#endif
  }

  // Makes this a fresh coroutine context on si's stack: the first switch to
  // it calls entry(t) where switch_data(t) is the payload of that switch.
  void make(stack_info* si, fcontext_entry entry) noexcept {
    stk = si;
#if GORT_ASAN
    // A reused stack still carries the redzones of its last user's frames,
    // which never returned.
    __asan_unpoison_memory_region(si->stk.limit,
                                  static_cast<std::size_t>(si->stk.hi - si->stk.limit));
#endif
    sp = make_fcontext(si->stk.hi, entry);
#if GORT_ASAN
    // A reused context's last fake stack was freed when it exited (`last`):
    // a fresh one starts with none (ASan makes one on demand).
    asan_fake_stack = nullptr;
    asan_bottom = si->stk.limit;
    asan_size = static_cast<std::size_t>(si->stk.hi - si->stk.limit);
#endif
#if GORT_TSAN
    if (tsan_fiber == nullptr) {
      tsan_fiber = __tsan_create_fiber(0);
      tsan_owned = true;
    }
#endif
  }
};

// Checks the stack being left. Called at every switch-out of a coroutine.
inline void check_stack_on_switch_out(const stack_info& si) noexcept {
  // The frame address, not a local's: under ASan locals may live on a
  // heap-allocated fake stack.
  const char* sp = static_cast<const char*>(__builtin_frame_address(0));
  if (GORT_UNLIKELY(sp < si.stk.lo)) report_overflow(si, ", stack pointer below the limit");
  if (si.stk.canary && GORT_UNLIKELY(!canary_intact(si.stk.limit)))
    report_overflow(si, ", canary overwritten");
}

// Must be the first thing that runs on the resumed side of a switch (after
// jump_fcontext returns, or at the top of a fresh context's entry). Returns
// the payload.
inline void* finish_switch(transfer t, context& self) noexcept {
  auto* rec = static_cast<switch_record*>(t.data);
  rec->from->sp = t.fctx;
#if GORT_ASAN
  const void* bottom_old = nullptr;
  std::size_t size_old = 0;
  __sanitizer_finish_switch_fiber(self.asan_fake_stack, &bottom_old, &size_old);
  if (rec->from->stk == nullptr) {  // learn the thread stack's bounds
    rec->from->asan_bottom = bottom_old;
    rec->from->asan_size = size_old;
  }
#endif
  set_running_stack(self.stk);
  return rec->data;
}

// Switches from `from` (the running context) to `to`; returns the payload of
// the switch that eventually resumes `from`. `eh` is the calling thread's
// exception state (thread_eh_globals(), which a caller on a fixed thread may
// cache). `last` says `from` will never run again (its ASan fake stack is
// released).
template <bool PreserveFP = true, resume_by R = resume_by::jmp>
inline void* switch_context(context& from, context& to, void* data,
                            eh_globals* eh, bool last = false) noexcept {
  if (from.stk != nullptr) check_stack_on_switch_out(*from.stk);
  from.eh = *eh;  // the thread's chain belongs to the context leaving it
  *eh = to.eh;
  switch_record& rec = from.out;
  rec = switch_record{&from, data};
#if GORT_ASAN
  if (last) from.asan_fake_stack = nullptr;  // freed by the call below
  __sanitizer_start_switch_fiber(last ? nullptr : &from.asan_fake_stack,
                                 to.asan_bottom, to.asan_size);
#else
  (void)last;
#endif
#if GORT_TSAN
  // A thread context may be left from different threads over its life (a
  // coroutine resumed from thread A, later from B): name the current one.
  if (from.stk == nullptr) from.tsan_fiber = __tsan_get_current_fiber();
  __tsan_switch_to_fiber(to.tsan_fiber, 0);
#endif
  transfer t = jump<PreserveFP, R>(to.sp, &rec);
  return finish_switch(t, from);
}

}  // namespace detail
GORT_END_NAMESPACE
