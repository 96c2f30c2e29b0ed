// Samples of docs/api/go.md (built and run by meson; the page quotes the
// regions marked [name] ... [/name], checked by docs/check_examples.py).
#include <gort/gort.hpp>

#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <string>

int failures = 0;
void expect(bool ok, const char* what) {
  std::printf("%s: %s\n", ok ? "ok" : "FAIL", what);
  if (!ok) ++failures;
}

int main() {
  gort::runtime rt(gort::config{.procs = 2});
  rt.run([] {
    {
      // [go]
      gort::wait_group wg;
      std::atomic<int> sum{0};
      for (int i = 1; i <= 10; ++i) {
        wg.add(1);
        gort::go([&](int v) {  // arguments are copied, as std::thread's
          sum += v;
          wg.done();
        }, i);
      }
      wg.wait();  // sum == 55
      // [/go]
      expect(sum == 55, "go with arguments");
    }
    {
      // [yield]
      std::atomic<bool> done{false};
      gort::go([&] { done = true; });
      while (!done) gort::yield();  // let the other G run (on this P too)
      // [/yield]
      expect(done, "yield");
    }
    {
      // [id]
      std::uint64_t parent = gort::this_g::id();
      gort::chan<std::uint64_t> child(1);
      gort::go([&] { child.send(gort::this_g::id()); });
      std::uint64_t c = *child.recv();  // a different id; never reused
      // [/id]
      expect(parent != 0 && c != parent, "ids");
    }
    {
      // [preempt]
      // A long computation yields now and then: gort has no asynchronous
      // preemption, so a G that never yields keeps its P.
      long x = 0;
      for (long i = 0; i < 20'000'000; ++i) {
        x += i % 7;
        if ((i & 0xffff) == 0 && gort::this_g::preempt_requested()) gort::yield();
      }
      // [/preempt]
      expect(x > 0, "preempt_requested loop");
    }
    {
      // [blocking]
      int fds[2];
      if (::pipe(fds) != 0) return;
      gort::go([&] {
        gort::sleep_for(std::chrono::milliseconds(5));
        (void)!::write(fds[1], "x", 1);
      });
      char c = 0;
      // read() blocks this thread; its P goes on with other Gs meanwhile.
      ssize_t n = gort::blocking([&] { return ::read(fds[0], &c, 1); });
      ::close(fds[0]);
      ::close(fds[1]);
      // [/blocking]
      expect(n == 1 && c == 'x', "blocking");
    }
    {
      // [lock_os_thread]
      gort::lock_os_thread();  // this G runs only on this thread from now on
      long tid = gort::this_g::os_thread_id();
      gort::yield();
      bool same = gort::this_g::os_thread_id() == tid;  // true while locked
      gort::unlock_os_thread();
      // [/lock_os_thread]
      expect(same, "lock_os_thread");
    }
  });
  return failures == 0 ? 0 : 1;
}
