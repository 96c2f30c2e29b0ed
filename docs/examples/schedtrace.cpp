// Busy Gs, then idle: what docs/debugging.md shows of
// GORT_DEBUG=schedtrace=<ms>. Built by meson; docs/check_schedtrace.py runs
// it with the trace on and checks the format the page describes.
#include <gort/gort.hpp>

#include <chrono>

using namespace std::chrono_literals;

int main() {
  gort::runtime rt(gort::config{.procs = 4});
  rt.run([] {
    gort::wait_group wg;
    for (int i = 0; i < 2000; ++i) {  // 2000 Gs that keep yielding for 300 ms
      wg.add(1);
      gort::go([&wg] {
        const auto end = gort::clock::now() + 300ms;
        while (gort::clock::now() < end) gort::yield();
        wg.done();
      });
    }
    wg.wait();
    gort::sleep_for(250ms);  // then nothing runs
  });
}
