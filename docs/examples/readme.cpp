// The example at the top of README.md, which quotes the region below
// (built and run by meson; docs/check_examples.py keeps the copies equal).
// [readme]
#include <gort/gort.hpp>
#include <atomic>
#include <cstdio>

int main() {
  std::atomic<long> sum{0};              // outlives rt: Gs use it until ~runtime
  gort::runtime rt;                      // one P per CPU, or GORT_PROCS
  long n = rt.run([&] {                  // the main G; run() waits for it
    for (long i = 0; i < 1000; ++i)
      gort::go([&sum, i] { sum += i; }); // a G on its own stack
    gort::yield();
    return 1000L;
  });
  // ~runtime waits for every G, then joins its threads.
  std::printf("%ld Gs spawned\n", n);
}
// [/readme]
