// Samples of docs/api/time.md (built and run by meson; the page quotes the
// regions marked [name] ... [/name], checked by docs/check_examples.py).
#include <gort/gort.hpp>

#include <chrono>
#include <cstdio>
#include <stop_token>

using namespace std::chrono_literals;

int failures = 0;
void expect(bool ok, const char* what) {
  std::printf("%s: %s\n", ok ? "ok" : "FAIL", what);
  if (!ok) ++failures;
}

int main() {
  gort::runtime rt(gort::config{.procs = 2});
  rt.run([] {
    {
      // [sleep]
      auto t0 = gort::clock::now();
      gort::sleep_for(5ms);                        // parks the G; the M runs others
      gort::sleep_until(gort::clock::now() + 1ms);
      auto slept = gort::clock::now() - t0;        // at least 6 ms
      // [/sleep]
      expect(slept >= 6ms, "sleep_for, sleep_until");
    }
    {
      // [sleep_stop]
      std::stop_source stop;
      gort::go([&] { gort::sleep_for(1ms); stop.request_stop(); });
      bool full = gort::sleep_for(1h, stop.get_token());  // false: cut short
      // [/sleep_stop]
      expect(!full, "sleep with a stop token");
    }
    {
      // [after]
      auto deadline = gort::after(2ms);  // receives the time once, then stays empty
      std::optional<gort::clock::time_point> fired = deadline->recv();
      // [/after]
      expect(fired.has_value(), "after");
    }
    {
      // [timer]
      gort::timer t(1h);
      bool stopped = t.stop();    // true: it had not fired
      t.reset(1ms);               // armed again
      auto when = t.c().recv();   // fires once
      // [/timer]
      expect(stopped && when.has_value(), "timer stop, reset");
    }
    {
      // [ticker]
      gort::ticker tick(1ms);
      int ticks = 0;
      for (auto tp : tick.c()) {  // a tick the receiver misses is dropped
        (void)tp;
        if (++ticks == 3) break;
      }
      tick.stop();
      // [/ticker]
      expect(ticks == 3, "ticker");
    }
  });
  return failures == 0 ? 0 : 1;
}
