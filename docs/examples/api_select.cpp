// Samples of docs/api/select.md (built and run by meson; the page quotes
// the regions marked [name] ... [/name], checked by docs/check_examples.py).
#include <gort/gort.hpp>

#include <chrono>
#include <cstdio>
#include <stop_token>
#include <string>

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
      // [recv_send]
      gort::chan<int> in(1), out(1);
      in.send(1);
      int got = 0;
      int which = gort::select(
          gort::on_recv(in, [&](std::optional<int> v) { got = v.value_or(-1); }),  // nullopt: closed
          gort::on_send(out, 2, [] { /* 2 was sent */ }));
      // Both were ready: one of them, chosen at random, ran. which is its index.
      // [/recv_send]
      expect((which == 0 && got == 1) || (which == 1 && out.size() == 1), "recv or send");
    }
    {
      // [default]
      gort::chan<int> empty;
      bool would_block = false;
      gort::select(gort::on_recv(empty, [](std::optional<int>) {}),
                   gort::on_default([&] { would_block = true; }));  // never parks
      // [/default]
      expect(would_block, "default");
    }
    {
      // [timeout]
      gort::chan<std::string> reply;
      std::string result;
      gort::select(
          gort::on_recv(reply, [&](std::optional<std::string> v) { result = v.value_or(""); }),
          gort::on_recv(*gort::after(10ms), [&](auto) { result = "timed out"; }));
      // [/timeout]
      expect(result == "timed out", "timeout");
    }
    {
      // [loop]
      gort::chan<int> data(4), quit;
      gort::go([&] {
        for (int i = 0; i < 4; ++i) data.send(i);
        quit.close();  // a closed channel is always ready: a broadcast
      });
      int sum = 0;
      for (bool running = true; running;) {
        gort::select(gort::on_recv(data, [&](std::optional<int> v) { sum += *v; }),
                     gort::on_recv(quit, [&](std::optional<int>) { running = false; }));
      }
      while (auto v = data.try_recv()) sum += *v;  // what was left when quit won
      // [/loop]
      expect(sum == 6, "select loop");
    }
    {
      // [stop]
      gort::chan<int> never;
      std::stop_source stop;
      gort::go([&] { gort::sleep_for(1ms); stop.request_stop(); });
      bool canceled = false;
      try {
        gort::select(stop.get_token(), gort::on_recv(never, [](std::optional<int>) {}));
      } catch (const gort::operation_canceled&) {
        canceled = true;
      }
      // [/stop]
      expect(canceled, "select with a stop token");
    }
  });
  return failures == 0 ? 0 : 1;
}
