// Samples of docs/api/traits.md (built and run by meson; the page quotes
// the regions marked [name] ... [/name], checked by docs/check_examples.py).
#include <gort/gort.hpp>

#include <atomic>
#include <cstdio>

int failures = 0;
void expect(bool ok, const char* what) {
  std::printf("%s: %s\n", ok ? "ok" : "FAIL", what);
  if (!ok) ++failures;
}

// [traits]
// Many small Gs: 64 KiB stacks, a deeper local run queue.
struct many_small_gs : gort::default_traits {
  static constexpr std::size_t stack_size = 64 * 1024;
  static constexpr std::uint32_t run_queue_capacity = 1024;
};

// Go's floating-point behaviour: the FP control words belong to the thread.
struct shared_fp : gort::default_traits {
  static constexpr bool preserve_fp_control = false;
};
// [/traits]

int main() {
  // [use]
  gort::basic_runtime<many_small_gs> rt(gort::config{.procs = 2});
  std::atomic<int> n{0};
  rt.run([&] {
    gort::wait_group wg;
    for (int i = 0; i < 10000; ++i) {
      wg.add(1);
      gort::go([&] { ++n; wg.done(); });  // gort::go works whatever the traits
    }
    wg.wait();
  });
  // [/use]
  expect(n == 10000, "a runtime with custom traits");
  gort::basic_runtime<shared_fp> fp(gort::config{.procs = 1});
  expect(fp.run([] { return 1; }) == 1, "preserve_fp_control = false");
  return failures == 0 ? 0 : 1;
}
