// Samples of docs/api/sync.md (built and run by meson; the page quotes the
// regions marked [name] ... [/name], checked by docs/check_examples.py).
#include <gort/gort.hpp>

#include <atomic>
#include <cstdio>
#include <map>
#include <mutex>
#include <shared_mutex>
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
      // [mutex]
      gort::mutex mu;
      long balance = 0;
      gort::wait_group wg;
      for (int i = 0; i < 50; ++i) {
        wg.add(1);
        gort::go([&] {
          {
            std::lock_guard<gort::mutex> lk(mu);  // a contended lock parks the G
            balance += 10;
          }
          wg.done();  // after the unlock: once wait() returns, mu may go
        });
      }
      wg.wait();
      // [/mutex]
      expect(balance == 500, "mutex");
    }
    {
      // [shared_mutex]
      gort::shared_mutex rw;
      std::map<std::string, int> table{{"a", 1}};
      auto lookup = [&](const std::string& k) {
        std::shared_lock<gort::shared_mutex> r(rw);  // readers share
        auto it = table.find(k);
        return it == table.end() ? 0 : it->second;
      };
      {
        std::unique_lock<gort::shared_mutex> w(rw);  // a writer is alone
        table["b"] = 2;
      }
      int b = lookup("b");
      // [/shared_mutex]
      expect(b == 2, "shared_mutex");
    }
    {
      // [condition_variable]
      gort::mutex mu;
      gort::condition_variable cv;
      bool ready = false;
      gort::go([&] {
        std::lock_guard<gort::mutex> lk(mu);
        ready = true;
        cv.notify_all();
      });
      std::unique_lock<gort::mutex> lk(mu);
      cv.wait(lk, [&] { return ready; });  // releases mu while parked
      // [/condition_variable]
      expect(ready, "condition_variable");
    }
    {
      // [wait_group]
      gort::wait_group wg;
      std::atomic<int> done{0};
      wg.add(3);  // before starting the Gs, not inside them
      for (int i = 0; i < 3; ++i) gort::go([&] { ++done; wg.done(); });
      wg.wait();  // parks until the counter is zero
      // [/wait_group]
      expect(done == 3, "wait_group");
    }
    {
      // [once]
      gort::once init;
      std::atomic<int> runs{0};
      gort::wait_group wg;
      for (int i = 0; i < 4; ++i) {
        wg.add(1);
        gort::go([&] {
          init.call([&] { ++runs; });  // the others wait until it has run
          wg.done();
        });
      }
      wg.wait();  // runs == 1
      // [/once]
      expect(runs == 1 && init.done(), "once");
    }
    {
      // [semaphore]
      gort::semaphore slots(2);  // at most two Gs in the section at once
      std::atomic<int> inside{0}, most{0};
      gort::wait_group wg;
      for (int i = 0; i < 8; ++i) {
        wg.add(1);
        gort::go([&] {
          slots.acquire();
          int now = ++inside;
          for (int m = most; now > m && !most.compare_exchange_weak(m, now);) {}
          gort::yield();
          --inside;
          slots.release();
          wg.done();
        });
      }
      wg.wait();  // most <= 2
      // [/semaphore]
      expect(most <= 2 && slots.available() == 2, "semaphore");
    }
  });
  return failures == 0 ? 0 : 1;
}
