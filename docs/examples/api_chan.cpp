// Samples of docs/api/chan.md (built and run by meson; the page quotes the
// regions marked [name] ... [/name], checked by docs/check_examples.py).
#include <gort/gort.hpp>

#include <cstdio>
#include <memory>
#include <stop_token>
#include <string>
#include <thread>

int failures = 0;
void expect(bool ok, const char* what) {
  std::printf("%s: %s\n", ok ? "ok" : "FAIL", what);
  if (!ok) ++failures;
}

int main() {
  gort::runtime rt(gort::config{.procs = 2});
  rt.run([] {
    {
      // [unbuffered]
      gort::chan<std::string> ch;  // capacity 0: each send waits for a receiver
      gort::go([&] { ch.send("hand-off"); });
      std::optional<std::string> v = ch.recv();  // parks until the send
      // [/unbuffered]
      expect(v == "hand-off", "unbuffered");
    }
    {
      // [buffered]
      gort::chan<int> jobs(3);  // three sends complete with no receiver
      jobs.send(1);
      jobs.send(2);
      jobs.send(3);
      std::size_t queued = jobs.size();  // 3; a fourth send would park
      // [/buffered]
      expect(queued == 3 && jobs.capacity() == 3, "buffered");
    }
    {
      // [close_range]
      gort::chan<int> nums(2);
      gort::go([&] {
        for (int i = 0; i < 5; ++i) nums.send(i);
        nums.close();  // receivers drain the buffer, then see the end
      });
      int sum = 0;
      for (int n : nums) sum += n;  // until closed and drained: 0+1+2+3+4
      std::optional<int> after = nums.recv();  // nullopt: closed and drained
      try {
        nums.send(9);  // sending on a closed channel throws (Go panics)
      } catch (const gort::channel_closed& e) {
        std::printf("%s\n", e.what());
      }
      // [/close_range]
      expect(sum == 10 && !after && nums.is_closed(), "close and range-for");
    }
    {
      // [try]
      gort::chan<int> ch(1);
      bool sent = ch.try_send(7);       // true: there was room
      bool again = ch.try_send(8);      // false: full, and try_ never parks
      std::optional<int> got = ch.try_recv();   // 7
      std::optional<int> none = ch.try_recv();  // nullopt: nothing ready now
      // [/try]
      expect(sent && !again && got == 7 && !none, "try_send / try_recv");
    }
    {
      // [stop]
      gort::chan<int> never;
      std::stop_source stop;
      gort::go([&] {
        gort::sleep_for(std::chrono::milliseconds(1));
        stop.request_stop();
      });
      bool canceled = false;
      try {
        never.recv(stop.get_token());  // parks until a value or a stop request
      } catch (const gort::operation_canceled&) {
        canceled = true;
      }
      // [/stop]
      expect(canceled, "stop token");
    }
    {
      // [move_only]
      gort::chan<std::unique_ptr<int>> boxes(1);
      boxes.send(std::make_unique<int>(5));
      std::unique_ptr<int> b = *boxes.recv();
      // [/move_only]
      expect(b && *b == 5, "move-only values");
    }
  });

  // [threads]
  // Outside a G, a blocking operation blocks the thread instead.
  gort::chan<int> ch;
  std::thread t([&] { ch.send(1); });
  int one = *ch.recv();
  t.join();
  // [/threads]
  expect(one == 1, "plain threads");
  return failures == 0 ? 0 : 1;
}
