// Stack overflow is never silent: a child process overflows a coroutine
// stack and must die by SIGABRT after printing which coroutine overflowed.
#include <gort/detail/coroutine.hpp>

#include <catch2/catch.hpp>
#include <csignal>
#include <cstring>
#include <sys/mman.h>

#include "test_util.hpp"

using gort::detail::coroutine;

namespace {

// Uses ~1 KiB of stack per level; volatile so that nothing is elided.
[[gnu::noinline]] int recurse(int depth, coroutine* suspend_at_bottom) {
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
