// The samples of docs/getting-started.md, as one program (built and run by
// meson; docs/check_examples.py keeps the page's copies in step with the
// regions marked [name] ... [/name] below).
#include <gort/gort.hpp>

#include <chrono>
#include <cstdio>
#include <mutex>
#include <string>
#include <vector>

using namespace std::chrono_literals;

// [first_g]
int first_g() {
  gort::runtime rt;  // one P per CPU (or GORT_PROCS)
  // run() starts its function as a G and waits for it: the "main G".
  return rt.run([] {
    std::printf("hello from G %llu\n",
                static_cast<unsigned long long>(gort::this_g::id()));
    return 42;
  });
  // ~runtime waits for every G, then stops its threads.
}
// [/first_g]

// [channels]
long sum_squares(long n) {
  gort::runtime rt;
  return rt.run([n] {
    gort::chan<long> squares(16);  // buffered: 16 values before a send waits
    for (long w = 0; w < 4; ++w) {
      gort::go([&squares, w, n] {  // four producers
        for (long i = w; i < n; i += 4) squares.send(i * i);
      });
    }
    long sum = 0;
    for (long k = 0; k < n; ++k) sum += *squares.recv();  // parks while empty
    return sum;
  });
}
// [/channels]

// [pipeline]
std::vector<std::string> pipeline() {
  gort::runtime rt;
  return rt.run([] {
    gort::chan<int> numbers;           // unbuffered: a send waits for its receiver
    gort::chan<std::string> words(4);
    gort::go([&] {
      for (int i = 1; i <= 3; ++i) numbers.send(i);
      numbers.close();                 // ends the receiver's loop
    });
    gort::go([&] {
      for (int i : numbers) words.send(std::string(static_cast<std::size_t>(i), '*'));
      words.close();
    });
    std::vector<std::string> out;
    for (std::string& w : words) out.push_back(std::move(w));
    return out;                        // {"*", "**", "***"}
  });
}
// [/pipeline]

// [select_timers]
int first_of_two() {
  gort::runtime rt;
  return rt.run([] {
    gort::chan<int> fast(1), slow(1);
    gort::go([&] { gort::sleep_for(1ms); fast.send(1); });
    gort::go([&] { gort::sleep_for(50ms); slow.send(2); });
    gort::timer timeout(5s);  // its channel receives once, after 5 s
    int got = 0;
    gort::select(  // parks until one case is ready; runs that case's function
        gort::on_recv(fast, [&](std::optional<int> v) { got = *v; }),
        gort::on_recv(slow, [&](std::optional<int> v) { got = *v; }),
        gort::on_recv(timeout.c(), [&](auto) { got = -1; }));
    slow.recv();  // the slow G uses our channels: wait for it before they go
    return got;   // 1
  });
}
// [/select_timers]

// [sync]
int count_with_mutex() {
  gort::runtime rt;
  return rt.run([] {
    gort::mutex mu;        // parks the G, never the thread
    gort::wait_group wg;
    int counter = 0;
    for (int i = 0; i < 100; ++i) {
      wg.add(1);
      gort::go([&] {
        {
          std::lock_guard<gort::mutex> lk(mu);
          ++counter;
        }
        wg.done();
      });
    }
    wg.wait();             // until all 100 have called done()
    return counter;        // 100
  });
}
// [/sync]

int main() {
  int failures = 0;
  auto expect = [&](bool ok, const char* what) {
    std::printf("%s: %s\n", ok ? "ok" : "FAIL", what);
    if (!ok) ++failures;
  };
  expect(first_g() == 42, "first G returns 42");
  long want = 0;
  for (long i = 0; i < 1000; ++i) want += i * i;
  expect(sum_squares(1000) == want, "sum of squares over a channel");
  expect(pipeline() == std::vector<std::string>{"*", "**", "***"}, "pipeline");
  expect(first_of_two() == 1, "select takes the ready channel");
  expect(count_with_mutex() == 100, "mutex and wait_group");
  return failures == 0 ? 0 : 1;
}
