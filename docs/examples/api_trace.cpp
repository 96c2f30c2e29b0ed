// Samples for docs/testing.md, "Watching the scheduler" (regions marked
// [name] ... [/name], checked by docs/check_examples.py).
#include <cstdio>

#include <gort/gort.hpp>

int main() {
  // [recorder]
  gort::trace::recorder rec;  // outlives the runtime that feeds it
  {
    gort::runtime rt(gort::config{.procs = 2});
    rt.set_trace(&rec);
    rt.run([] {
      gort::chan<int> ch(0);
      gort::go([&] { ch.send(42); });
      ch.recv();
    });
  }  // every G has exited: the trace is complete
  for (const gort::trace::event& e : rec.events())
    if (e.what == gort::trace::kind::park)
      std::printf("G %llu parked: %s\n", static_cast<unsigned long long>(e.g), e.reason);
  // [/recorder]
  return rec.count(gort::trace::kind::spawn) >= 2 ? 0 : 1;
}
