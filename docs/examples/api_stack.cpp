// Samples of docs/api/stack.md (built and run by meson; the page quotes the
// regions marked [name] ... [/name], checked by docs/check_examples.py).
#include <gort/gort.hpp>

#include <cstdio>
#include <cstring>
#include <stdexcept>

int failures = 0;
void expect(bool ok, const char* what) {
  std::printf("%s: %s\n", ok ? "ok" : "FAIL", what);
  if (!ok) ++failures;
}

int main() {
  // [allocate]
  gort::stack_allocator alloc;  // thread-safe; runtimes own one each
  gort::stack s = alloc.allocate(64 * 1024);
  std::memset(s.lo, 0, s.size());  // [lo, hi) is usable; pages commit on first touch
  bool guarded = s.prot == gort::stack::protection::guard_page;  // while the VMA budget lasts
  alloc.deallocate(s);             // back to the pool, pages still committed
  gort::stack again = alloc.allocate(64 * 1024);  // reuses it
  alloc.deallocate(again);
  // [/allocate]
  expect(again.lo == s.lo, "a freed stack is reused");
  std::printf("first stack guarded: %s\n", guarded ? "yes" : "no (canary)");

  // [options]
  gort::stack_allocator::options o;
  o.max_guarded = 0;   // no guard pages: every stack is carved, canary-protected
  o.pool_limit = 16;   // keep at most 16 freed stacks per size
  gort::stack_allocator carved(o);
  gort::stack c = carved.allocate(32 * 1024);
  bool canary = c.prot == gort::stack::protection::canary;
  carved.deallocate(c);
  // [/options]
  expect(canary, "max_guarded = 0 carves");

  // [errors]
  try {
    alloc.allocate(1000);  // not a multiple of the page size
  } catch (const std::invalid_argument& e) {
    std::printf("%s\n", e.what());
  }
  // [/errors]
  return failures == 0 ? 0 : 1;
}
