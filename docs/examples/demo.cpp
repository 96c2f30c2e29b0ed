// The demo README's first command runs. For now it shows the foundation:
// coroutines on guarded stacks, switching on one thread; it grows into the
// scheduler demo as gort does.
#include <gort/detail/coroutine.hpp>
#include <gort/gort.hpp>

#include <chrono>
#include <cstdio>
#include <memory>
#include <vector>

int main() {
  using gort::detail::coroutine;
  gort::stack_allocator stacks;

  // Three producers take turns, one step per resume.
  std::vector<std::unique_ptr<coroutine>> producers;
  for (int p = 0; p < 3; ++p)
    producers.push_back(std::make_unique<coroutine>(
        stacks, 64 * 1024, [p](coroutine& self) {
          for (int i = 0; i < 3; ++i) {
            std::printf("  producer %d: step %d\n", p, i);
            self.suspend();
          }
        }));
  std::printf("gort %s: round-robin over 3 coroutines\n", GORT_VERSION_STRING);
  for (bool any = true; any;) {
    any = false;
    for (auto& c : producers) any |= c->resume();
  }

  // Many live coroutines: more than the guarded-stack budget, so the rest are
  // carved from shared regions with canaries.
  constexpr int n = 50000;
  std::vector<std::unique_ptr<coroutine>> many;
  many.reserve(n);
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < n; ++i) {
    many.push_back(std::make_unique<coroutine>(stacks, 32 * 1024,
                                               [](coroutine& self) { self.suspend(); }));
    many.back()->resume();
  }
  const auto t1 = std::chrono::steady_clock::now();
  std::printf("%d coroutines parked at once (%zu on guarded stacks), %.0f ns each to create and park\n",
              n, stacks.guarded_in_use(),
              std::chrono::duration<double, std::nano>(t1 - t0).count() / n);
  for (auto& c : many) c->resume();
  many.clear();
  producers.clear();
  std::printf("all finished; stacks in use: %zu\n", stacks.in_use());
  return 0;
}
