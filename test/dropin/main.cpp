// The program every drop-in path of test/dropin/run.sh builds: one G sends
// on a channel, the main G receives. Prints "dropin ok <sum>" and exits 0.
#include <gort/gort.hpp>

#include <cstdio>

int main() {
  gort::runtime rt(gort::config{.procs = 2});
  const int sum = rt.run([] {
    gort::chan<int> ch(0);
    gort::go([&ch] {
      for (int i = 1; i <= 10; ++i) ch.send(i);
      ch.close();
    });
    int s = 0;
    for (int v : ch) s += v;
    return s;
  });
  std::printf("dropin ok %d (gort %s)\n", sum, GORT_VERSION_STRING);
  return sum == 55 ? 0 : 1;
}
