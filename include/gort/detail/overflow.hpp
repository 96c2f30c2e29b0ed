// gort/detail/overflow.hpp: stack-overflow reporting.
//
// Each thread that runs coroutines publishes, in a thread_local, which stack
// it is running on (set at every switch, see detail/context.hpp). A SIGSEGV
// handler, running on an alternate signal stack (the overflowed stack has no
// room for a signal frame), compares the fault address and the interrupted
// stack pointer with that stack's limits. A fault in the guard page, or one
// just below the stack while the stack pointer has left it, is an overflow:
// it prints
//     gort: fatal: stack overflow in G 42 (stack 262144 bytes)
// with write(2) (async-signal-safe) and aborts. Any other fault is passed on
// to the handler the program had before, or to the default action, so gort
// never hides a crash that is not its own.
//
// These globals are the only process-wide state gort keeps: a signal handler
// can reach nothing else.
#pragma once

#include <signal.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <mutex>

#include "config.hpp"

GORT_BEGIN_NAMESPACE
namespace detail {

inline std::size_t page_size() noexcept {
  static const std::size_t ps = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  return ps;
}

// The canary below a stack carved from a shared region (gort/stack.hpp):
// canary_bytes that must stay zero. Nothing writes them: they are the
// untouched bottom of the slot, which reads as zero (the kernel maps its
// shared zero page there), so the canary costs no RAM. A written pattern
// would commit a page per stack (measured: 8.3 KiB per parked G instead of
// 4.3; docs/stacks.md). What it gives up: an overflow that writes only zeros
// there goes unseen (the stack pointer check still catches one that is
// below the stack when the G switches out).
inline constexpr std::uint64_t canary_value = 0;
inline constexpr std::size_t canary_bytes = 64;
static_assert(canary_bytes % 16 == 0, "stacks must stay 16-byte aligned");

// Are the canary_bytes at p (64-byte aligned) all canary_value?
inline bool canary_intact(const void* p) noexcept {
  const auto* w = static_cast<const std::uint64_t*>(p);
  std::uint64_t x = 0;
  for (std::size_t i = 0; i < canary_bytes / 8; ++i) x |= w[i] ^ canary_value;
  return x == 0;
}

// A stack's extent: [limit, lo) is its guard page or canary, [lo, hi) usable.
struct stack_bounds {
  char* limit = nullptr;
  char* lo = nullptr;
  char* hi = nullptr;
  bool canary = false;

  std::size_t size() const noexcept { return static_cast<std::size_t>(hi - lo); }
};

// What the fault handler and the switch know about the stack a context runs
// on. Threads' own stacks have no stack_info (the kernel guards them).
struct stack_info {
  const char* kind = "coroutine";  // "G" for goroutines
  std::uint64_t id = 0;
  stack_bounds stk;
};

// The stack the calling thread is running on; null on the thread's own stack.
// Written only by its own thread (at every switch), read by its own signal
// handler: a compiler barrier is all the ordering it needs.
inline thread_local const stack_info* tls_running_stack = nullptr;

// Out of line on purpose: a fresh TLS address on every call, never one the
// compiler computed before a switch that moved the caller to another thread.
[[gnu::noinline]] inline void set_running_stack(const stack_info* si) noexcept {
  tls_running_stack = si;
  __asm__ volatile("" ::: "memory");
}

[[gnu::noinline]] inline const stack_info* running_stack() noexcept {
  __asm__ volatile("" ::: "memory");
  return tls_running_stack;
}

// How far below a stack a fault still counts as its overflow when the
// stack pointer is below the stack too (a frame bigger than the guard).
inline constexpr std::size_t overflow_slack = 64 * 1024;

inline struct sigaction previous_segv_action;  // the host program's handler

inline void write_all(int fd, const char* s, std::size_t n) noexcept {
  while (n > 0) {
    ssize_t w = ::write(fd, s, n);
    if (w <= 0) {
      if (w < 0 && errno == EINTR) continue;
      return;
    }
    s += w;
    n -= static_cast<std::size_t>(w);
  }
}

// Appends the decimal form of v to buf at *pos (async-signal-safe).
inline void append_u64(char* buf, std::size_t cap, std::size_t* pos,
                       std::uint64_t v) noexcept {
  char tmp[24];
  int n = 0;
  do {
    tmp[n++] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v != 0);
  while (n > 0 && *pos < cap) buf[(*pos)++] = tmp[--n];
}
inline void append_str(char* buf, std::size_t cap, std::size_t* pos,
                       const char* s) noexcept {
  while (*s && *pos < cap) buf[(*pos)++] = *s++;
}

[[noreturn]] inline void report_overflow(const stack_info& si,
                                         const char* how) noexcept {
  char buf[256];
  std::size_t pos = 0;
  append_str(buf, sizeof buf, &pos, "gort: fatal: stack overflow in ");
  append_str(buf, sizeof buf, &pos, si.kind);
  append_str(buf, sizeof buf, &pos, " ");
  append_u64(buf, sizeof buf, &pos, si.id);
  append_str(buf, sizeof buf, &pos, " (stack ");
  append_u64(buf, sizeof buf, &pos, si.stk.size());
  append_str(buf, sizeof buf, &pos, " bytes");
  append_str(buf, sizeof buf, &pos, how);
  append_str(buf, sizeof buf, &pos,
             "); give it a larger stack (the runtime's traits stack_size)\n");
  write_all(STDERR_FILENO, buf, pos);
  std::abort();
}

inline bool is_overflow(const stack_info& si, std::uintptr_t addr,
                        std::uintptr_t sp) noexcept {
  const auto lo = reinterpret_cast<std::uintptr_t>(si.stk.lo);
  const auto limit = reinterpret_cast<std::uintptr_t>(si.stk.limit);
  if (addr >= limit && addr < lo) return true;  // in the guard page/canary
  return sp < lo && addr < lo && addr + overflow_slack >= limit;
}

// How deep the calling thread is in segv_handler's chaining (below).
inline thread_local int segv_chain_depth = 0;

// For a handler about to return: with the default action set, the faulting
// instruction runs again and the kernel delivers the fault as if gort were
// not here.
inline void set_default_action(int sig) noexcept {
  struct sigaction dfl;
  std::memset(&dfl, 0, sizeof dfl);
  dfl.sa_handler = SIG_DFL;
  ::sigaction(sig, &dfl, nullptr);
}

inline void segv_handler(int sig, siginfo_t* info, void* uctx) noexcept {
  const int saved_errno = errno;
  // Entered again from inside our own chaining: the program's handler
  // passes faults on to the one it replaced, which was gort's (installed
  // before it; a later stack_allocator put gort's in front again), so the
  // two would call each other until the stack ran out. Break the cycle.
  if (segv_chain_depth != 0) {
    set_default_action(sig);
    errno = saved_errno;
    return;
  }
  const stack_info* si = tls_running_stack;
  __atomic_signal_fence(__ATOMIC_SEQ_CST);
  if (si != nullptr && info != nullptr) {
    const auto addr = reinterpret_cast<std::uintptr_t>(info->si_addr);
    std::uintptr_t sp = ~std::uintptr_t{0};
#if defined(__x86_64__)
    if (uctx != nullptr)
      sp = static_cast<std::uintptr_t>(
          static_cast<ucontext_t*>(uctx)->uc_mcontext.gregs[REG_RSP]);
#endif
    if (is_overflow(*si, addr, sp)) report_overflow(*si, "");
  }
  // Not ours: chain to what the program had.
  const struct sigaction& prev = previous_segv_action;
  if ((prev.sa_flags & SA_SIGINFO) == 0 &&
      (prev.sa_handler == SIG_DFL || prev.sa_handler == SIG_IGN)) {
    set_default_action(sig);
    errno = saved_errno;
    return;
  }
  ++segv_chain_depth;
  errno = saved_errno;
  if ((prev.sa_flags & SA_SIGINFO) != 0) {
    if (prev.sa_sigaction != nullptr) prev.sa_sigaction(sig, info, uctx);
  } else {
    prev.sa_handler(sig);
  }
  --segv_chain_depth;
}

// Makes sure gort's SIGSEGV handler is installed, remembering the handler it
// replaces so that faults that are not overflows reach it. Checks the live
// disposition (one sigaction call), so a program that installed its own
// handler after gort gets gort's back in front of it, chained. Called when a
// stack_allocator is made; thread-safe.
inline void install_overflow_handler() {
  static std::mutex mu;
  std::lock_guard<std::mutex> lk(mu);
  struct sigaction cur;
  if (::sigaction(SIGSEGV, nullptr, &cur) == 0 &&
      (cur.sa_flags & SA_SIGINFO) != 0 && cur.sa_sigaction == &segv_handler)
    return;
  struct sigaction sa;
  std::memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = &segv_handler;
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
  sigemptyset(&sa.sa_mask);
  // The handler reads previous_segv_action only for faults that happen after
  // this sigaction; the store happens before it.
  previous_segv_action = cur;
  if (::sigaction(SIGSEGV, &sa, nullptr) != 0)
    GORT_FATAL("install_overflow_handler: sigaction(SIGSEGV) failed (errno %d)",
               errno);
}

// An alternate signal stack for the calling thread, so that the SIGSEGV
// handler can run when the thread's current stack is exhausted. Kept if the
// thread already has one (the host program's, or a sanitizer's); otherwise
// mapped on first use and removed at thread exit.
class thread_altstack {
 public:
  static constexpr std::size_t size = 64 * 1024;

  static void ensure() noexcept {
    // A trivially initialised flag keeps the common path to one TLS load;
    // the object with the destructor is made once per thread.
    thread_local bool done = false;
    if (GORT_LIKELY(done)) return;
    thread_local thread_altstack self;
    (void)self;
    done = true;
  }

 private:
  thread_altstack() noexcept {
    stack_t cur;
    if (::sigaltstack(nullptr, &cur) == 0 && (cur.ss_flags & SS_DISABLE) == 0)
      return;  // the thread has one already
    void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return;  // overflow then dies as a plain SIGSEGV
    stack_t ss;
    std::memset(&ss, 0, sizeof ss);
    ss.ss_sp = p;
    ss.ss_size = size;
    if (::sigaltstack(&ss, nullptr) != 0) {
      ::munmap(p, size);
      return;
    }
    mem_ = p;
  }
  ~thread_altstack() {
    if (mem_ == nullptr) return;
    stack_t ss;
    std::memset(&ss, 0, sizeof ss);
    ss.ss_flags = SS_DISABLE;
    ::sigaltstack(&ss, nullptr);
    ::munmap(mem_, size);
  }
  void* mem_ = nullptr;
};

}  // namespace detail
GORT_END_NAMESPACE
