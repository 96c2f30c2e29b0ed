// The demo README's first command runs: gort's scheduler at work.
#include <gort/gort.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <unistd.h>

int main() {
  gort::runtime rt;  // one P per CPU (or GORT_PROCS)
  std::printf("gort %s: %u Ps\n", GORT_VERSION_STRING, rt.procs());

  // 1. A hundred thousand Gs, each on its own stack, spawned from a G.
  std::atomic<long> sum{0};
  const auto t0 = std::chrono::steady_clock::now();
  rt.run([&] {
    for (long i = 0; i < 100000; ++i) gort::go([&sum, i] { sum += i; });
  });
  while (rt.stats().gs_live != 0) gort::yield();  // outside a G: sched_yield
  const auto t1 = std::chrono::steady_clock::now();
  std::printf("100000 Gs spawned and run: sum %ld in %.1f ms\n", sum.load(),
              std::chrono::duration<double, std::milli>(t1 - t0).count());

  // 2. A blocking call does not stall the other Gs of its P.
  int fds[2];
  if (::pipe(fds) != 0) return 1;
  const long ticks = rt.run([&] {
    std::atomic<bool> got{false};
    std::atomic<long> n{0};
    gort::go([&] {
      char c;
      gort::blocking([&] { return ::read(fds[0], &c, 1); });  // blocks its thread
      got = true;
    });
    gort::go([&] {
      for (int i = 0; i < 1000; ++i) {
        ++n;
        gort::yield();
      }
      char c = 'x';
      (void)!::write(fds[1], &c, 1);
    });
    while (!got) gort::yield();
    return n.load();
  });
  std::printf("while one G blocked in read(), another ran %ld steps and woke it\n", ticks);

  // 3. An exception in the main G comes back to the caller.
  try {
    rt.run([] { throw std::runtime_error("thrown in a G"); });
  } catch (const std::exception& e) {
    std::printf("run() rethrew: %s\n", e.what());
  }
  const auto s = rt.stats();
  std::printf("stats: %llu Gs created, %d Ms, %d of %d Ps idle, %llu steals\n",
              static_cast<unsigned long long>(s.gs_created), s.ms_total, s.ps_idle, s.ps,
              static_cast<unsigned long long>(s.steals));
  return 0;
}
