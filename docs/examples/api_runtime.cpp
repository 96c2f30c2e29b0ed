// Samples of docs/api/runtime.md (built and run by meson; the page quotes
// the regions marked [name] ... [/name], checked by docs/check_examples.py).
#include <gort/gort.hpp>

#include <atomic>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <thread>

int failures = 0;
void expect(bool ok, const char* what) {
  std::printf("%s: %s\n", ok ? "ok" : "FAIL", what);
  if (!ok) ++failures;
}

void make() {
  // [make]
  gort::runtime rt;                              // Ps: GORT_PROCS, else the usable CPUs
  gort::runtime four(gort::config{.procs = 4});  // exactly 4 Ps
  gort::runtime fed(gort::config{.deadlock_detection = false});  // outside threads wake its Gs
  std::printf("%u, %u and %u Ps\n", rt.procs(), four.procs(), fed.procs());
  // [/make]
  expect(four.procs() == 4, "config.procs");
}

void run() {
  // [run]
  gort::runtime rt(gort::config{.procs = 2});
  int answer = rt.run([](int a, int b) { return a * b; }, 6, 7);  // 42
  std::string who = rt.run([] { return std::string("G ") + std::to_string(gort::this_g::id()); });
  try {
    rt.run([] { throw std::runtime_error("from a G"); });  // rethrown here
  } catch (const std::runtime_error& e) {
    std::printf("caught: %s\n", e.what());
  }
  // [/run]
  expect(answer == 42, "run returns the G's value");
  expect(who.rfind("G ", 0) == 0, "run: the body runs on a G");
}

void go_from_outside() {
  // [go]
  gort::runtime rt(gort::config{.procs = 2});
  gort::chan<int> results(8);
  std::thread feeder([&] {  // any thread may start Gs
    for (int i = 0; i < 8; ++i) rt.go([&results](int v) { results.send(v * v); }, i);
  });
  int sum = 0;
  for (int i = 0; i < 8; ++i) sum += *results.recv();  // blocks this thread (not a G)
  feeder.join();
  // [/go]
  expect(sum == 140, "go from another thread");
}

void stats() {
  // [stats]
  gort::runtime rt(gort::config{.procs = 2});
  rt.run([] {
    for (int i = 0; i < 100; ++i) gort::go([] {});
  });
  gort::runtime_stats s = rt.stats();
  std::printf("Gs created %llu, live %lld, Ms %d (idle %d), Ps %d (idle %d)\n",
              static_cast<unsigned long long>(s.gs_created), static_cast<long long>(s.gs_live),
              s.ms_total, s.ms_idle, s.ps, s.ps_idle);
  // [/stats]
  expect(s.gs_created == 101 && s.ps == 2, "stats");
}

int main() {
  make();
  run();
  go_from_outside();
  stats();
  return failures == 0 ? 0 : 1;
}
