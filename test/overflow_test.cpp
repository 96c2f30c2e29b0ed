// Stack overflow is never silent: a child process overflows a coroutine
// stack and must die by SIGABRT after printing which coroutine overflowed.
#include <gort/detail/coroutine.hpp>
#include <gort/gort.hpp>

#include <catch2/catch.hpp>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <sys/mman.h>

#include "test_util.hpp"

using gort::detail::coroutine;

namespace {

// Uses ~1 KiB of stack per level; volatile so that nothing is elided.
// Not instrumented by ASan: its redzones are never written, and a canary
// that happens to lie in one would stay intact (the test is of gort's
// canary, not of ASan's own report).
[[gnu::noinline, gnu::no_sanitize_address]] int recurse(int depth,
                                                      coroutine* suspend_at_bottom) {
  volatile char buf[1024];
  std::memset(const_cast<char*>(buf), depth & 0xff, sizeof buf);
  if (depth == 0) {
    if (suspend_at_bottom) suspend_at_bottom->suspend();
    return buf[0];
  }
  return recurse(depth - 1, suspend_at_bottom) + buf[depth % sizeof buf];
}

volatile int never = -1;  // the recursion's end, which no depth reaches

[[gnu::noinline]] int recurse_forever(int depth) {
  volatile char buf[1024];
  if (depth == never) return 0;
  std::memset(const_cast<char*>(buf), depth & 0xff, sizeof buf);
  return recurse_forever(depth + 1) + buf[depth % sizeof buf];
}

// A page that faults on access, far from any stack (UBSan would stop a null
// dereference before it faulted).
volatile int* inaccessible_int() {
  void* p = ::mmap(nullptr, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  return static_cast<volatile int*>(p);
}

}  // namespace

TEST_CASE("overflowing a guarded stack is reported and aborts",
          "[overflow]") {
  auto r = gort_test::run_in_child([] {
    gort::stack_allocator alloc;
    coroutine c(alloc, 64 * 1024, [](coroutine&) { recurse_forever(0); });
    c.resume();
  });
  INFO(r.output);
  CHECK_FALSE(r.timed_out);
  CHECK(r.killed_by(SIGABRT));
  CHECK_THAT(r.output, Catch::Contains("gort: fatal: stack overflow in coroutine ") &&
                           Catch::Contains("(stack 65536 bytes"));
}

// A coroutine that resumed another one, which suspended, is running on its
// own stack again: its overflow is reported as its own. Before, the inner
// suspend left the thread's stack record empty, and the overflow was a
// bare SIGSEGV.
TEST_CASE("a coroutine that resumed another one still has its overflow reported",
          "[overflow]") {
  auto r = gort_test::run_in_child([] {
    gort::stack_allocator alloc;
    coroutine inner(alloc, 64 * 1024, [](coroutine& self) {
      for (;;) self.suspend();
    });
    coroutine outer(alloc, 64 * 1024, [&](coroutine&) {
      inner.resume();
      std::fprintf(stderr, "outer is coroutine %llu\n",
                   static_cast<unsigned long long>(outer.id()));
      recurse_forever(0);
    });
    outer.resume();
  });
  INFO(r.output);
  CHECK_FALSE(r.timed_out);
  CHECK(r.killed_by(SIGABRT));
  const auto at = r.output.find("outer is coroutine ");
  REQUIRE(at != std::string::npos);
  const std::string id = r.output.substr(at + 19, r.output.find('\n', at) - at - 19);
  CHECK_THAT(r.output, Catch::Contains("gort: fatal: stack overflow in coroutine " + id + " "));
}

TEST_CASE("overflowing a carved stack is caught by its canary at switch-out",
          "[overflow]") {
  auto r = gort_test::run_in_child([] {
    gort::stack_allocator::options o;
    o.max_guarded = 0;  // every stack carved, canary-protected
    gort::stack_allocator alloc(o);
    // The first slot of a region is kept so that the coroutine's stack (the
    // second slot) has mapped memory below it: the overflow does not fault,
    // only the canary can catch it.
    gort::stack below = alloc.allocate(64 * 1024);
    coroutine c(alloc, 64 * 1024, [](coroutine&) {
      recurse(70, nullptr);  // ~70 KiB deep on a 64 KiB stack, then back
    });
    c.resume();
    alloc.deallocate(below);
  });
  INFO(r.output);
  CHECK_FALSE(r.timed_out);
  CHECK(r.killed_by(SIGABRT));
  CHECK_THAT(r.output, Catch::Contains("gort: fatal: stack overflow in coroutine ") &&
                           Catch::Contains("canary overwritten"));
}

TEST_CASE("a carved stack that suspends while overflowed is caught at once",
          "[overflow]") {
  auto r = gort_test::run_in_child([] {
    gort::stack_allocator::options o;
    o.max_guarded = 0;
    gort::stack_allocator alloc(o);
    gort::stack below = alloc.allocate(64 * 1024);
    coroutine c(alloc, 64 * 1024, [](coroutine& self) { recurse(70, &self); });
    c.resume();
    alloc.deallocate(below);
  });
  INFO(r.output);
  CHECK(r.killed_by(SIGABRT));
  CHECK_THAT(r.output, Catch::Contains("stack pointer below the limit"));
}

// A runtime G's overflow hits the guard page below its stack.
struct small_stack_traits : gort::default_traits {
  static constexpr std::size_t stack_size = 64 * 1024;
};

TEST_CASE("a G overflowing its stack is reported by id and aborts", "[overflow]") {
  auto r = gort_test::run_in_child([] {
    gort::basic_runtime<small_stack_traits> rt(gort::config{.procs = 1});
    rt.run([] { recurse_forever(0); });
  });
  INFO(r.output);
  CHECK_FALSE(r.timed_out);
  CHECK(r.killed_by(SIGABRT));
  CHECK_THAT(r.output, Catch::Contains("gort: fatal: stack overflow in G "));
}

// G structs at the top of their stacks, so that a queued G that never ran
// owns the slot below the overflowing G's (see below).
struct small_stack_g_in_stack_traits : small_stack_traits {
  static constexpr bool g_in_stack = true;
};

TEST_CASE("a G on a carved stack that overflows is caught at switch-out", "[overflow]") {
  auto r = gort_test::run_in_child([] {
    // The guarded budget used up (this is a child process): every stack
    // of the runtime is carved.
    gort::detail::guarded_stacks_in_use.store(gort::detail::default_guarded_budget());
    gort::basic_runtime<small_stack_g_in_stack_traits> rt(gort::config{.procs = 1});
    rt.run([] {
      // Slots are handed out upwards in a region: the main G has the
      // first, `below` the second, the overflowing G the third. `below`
      // is queued and never runs before the abort, so the overflow writes
      // mapped memory that no live frame uses (ASan would report a write
      // into another G's frames itself).
      gort::wait_group wg;
      wg.add(1);
      gort::go([] {});  // below
      gort::go([&] {
        recurse(70, nullptr);  // ~70 KiB deep on a 64 KiB stack, then back
        wg.done();
      });  // exits next: a switch-out, checked
      wg.wait();
    });
  });
  INFO(r.output);
  CHECK_FALSE(r.timed_out);
  CHECK(r.killed_by(SIGABRT));
  CHECK_THAT(r.output, Catch::Contains("gort: fatal: stack overflow in G ") &&
                           Catch::Contains("canary overwritten"));
}

TEST_CASE("a fault that is not an overflow reaches the previous handler",
          "[overflow]") {
  auto r = gort_test::run_in_child([] {
    struct sigaction sa;
    std::memset(&sa, 0, sizeof sa);
    sa.sa_handler = [](int) {
      const char msg[] = "host handler ran\n";
      (void)!::write(2, msg, sizeof msg - 1);
      std::_Exit(7);
    };
    ::sigaction(SIGSEGV, &sa, nullptr);
    gort::stack_allocator alloc;
    coroutine c(alloc, 64 * 1024, [](coroutine&) {
      *inaccessible_int() = 1;  // a fault that is not an overflow
    });
    c.resume();
  });
  INFO(r.output);
  CHECK(WIFEXITED(r.status));
  CHECK(WEXITSTATUS(r.status) == 7);
  CHECK_THAT(r.output, Catch::Contains("host handler ran"));
  CHECK_THAT(r.output, !Catch::Contains("stack overflow"));
}

// The program installs a handler after gort's that passes faults on to
// the one it replaced (gort's); a later stack_allocator puts gort's back
// in front, chained to the program's. Before, the two called each other
// until the stack ran out.
namespace {
struct sigaction host_prev;
volatile sig_atomic_t host_runs = 0;
void host_handler(int sig, siginfo_t* info, void* uctx) {
  host_runs = host_runs + 1;
  const char msg[] = "host handler ran\n";
  (void)!::write(2, msg, sizeof msg - 1);
  if (host_runs > 5) std::_Exit(3);  // the loop: stop it here
  if ((host_prev.sa_flags & SA_SIGINFO) != 0) host_prev.sa_sigaction(sig, info, uctx);
}
}  // namespace

TEST_CASE("a program handler that chains back to gort's runs once, then the fault kills",
          "[overflow]") {
  auto r = gort_test::run_in_child([] {
    ::signal(SIGSEGV, SIG_DFL);
    gort::stack_allocator first;  // gort's handler, in front of the default
    struct sigaction sa;
    std::memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = &host_handler;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    ::sigaction(SIGSEGV, &sa, &host_prev);  // the program's, chaining to gort's
    gort::stack_allocator second;  // gort's in front again, chaining to the program's
    *inaccessible_int() = 1;
  });
  INFO(r.output);
  CHECK(r.killed_by(SIGSEGV));
  std::size_t runs = 0;
  for (std::size_t at = 0; (at = r.output.find("host handler ran", at)) != std::string::npos; ++at)
    ++runs;
  CHECK(runs == 1);
}

TEST_CASE("with no previous handler a stray fault dies by SIGSEGV",
          "[overflow]") {
  auto r = gort_test::run_in_child([] {
    ::signal(SIGSEGV, SIG_DFL);
    gort::stack_allocator alloc;
    coroutine c(alloc, 64 * 1024, [](coroutine&) {
      *inaccessible_int() = 1;
    });
    c.resume();
  });
  CHECK(r.killed_by(SIGSEGV));
  CHECK_THAT(r.output, !Catch::Contains("stack overflow"));
}
