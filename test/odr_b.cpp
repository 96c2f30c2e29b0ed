// ODR check, second TU: the same inline entities as odr_a.cpp, instantiated
// with the other FP flavour too.
#include <gort/detail/coroutine.hpp>
#include <gort/gort.hpp>

int odr_b() {
  gort::stack_allocator alloc;
  int n = 0;
  gort::detail::basic_coroutine<false> c(
      alloc, 64 * 1024, [&](gort::detail::basic_coroutine<false>& self) {
        n += 10;
        self.suspend();
        n += 10;
      });
  while (c.resume()) {
  }
  gort::detail::coroutine d(alloc, 64 * 1024,
                            [&](gort::detail::coroutine&) { n += 100; });
  d.resume();
  return n;
}
