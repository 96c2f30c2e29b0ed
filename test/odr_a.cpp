// ODR check, first TU: uses every inline function and variable gort has.
#include <gort/detail/coroutine.hpp>
#include <gort/gort.hpp>

int odr_a() {
  gort::stack_allocator alloc;
  int n = 0;
  gort::detail::coroutine c(alloc, 64 * 1024, [&](gort::detail::coroutine& self) {
    ++n;
    self.suspend();
    ++n;
  });
  while (c.resume()) {
  }
  return n;
}
