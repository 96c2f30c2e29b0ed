// Channels (gort/chan.hpp), over 1, 2, 4 and 8 Ps.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <catch2/catch.hpp>
#include <memory>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

#include <gort/chan.hpp>
#include <gort/gort.hpp>

#include "test_util.hpp"

namespace {
unsigned procs_param() { return GENERATE(1u, 2u, 4u, 8u); }
constexpr int scale(int n) { return GORT_TSAN ? n / 20 : n; }
}  // namespace

TEST_CASE("chan: producer/consumer matrix, every value once, per-sender order", "[chan]") {
  const unsigned procs = procs_param();
  const long cap = GENERATE(0L, 1L, 16L);
  const int senders = GENERATE(1, 4);
  const int receivers = GENERATE(1, 3);
  const int per_sender = scale(5000);
  gort::chan<std::pair<int, int>> ch(cap);
  std::vector<std::vector<int>> got(senders);
  std::vector<int> last(senders, -1);
  std::atomic<int> order_errors{0};
  gort::chan<std::vector<std::pair<int, int>>> results(receivers);
  {
    gort::runtime rt(gort::config{.procs = procs});
    rt.run([&] {
      std::atomic<int> senders_left{senders};
      for (int s = 0; s < senders; ++s)
        gort::go([&, s] {
          for (int i = 0; i < per_sender; ++i) ch.send({s, i});
          if (senders_left.fetch_sub(1) == 1) ch.close();
        });
      for (int r = 0; r < receivers; ++r)
        gort::go([&] {
          std::vector<std::pair<int, int>> mine;
          for (auto v : ch) mine.push_back(v);
          results.send(std::move(mine));
        });
      for (int r = 0; r < receivers; ++r) {
        auto mine = results.recv();
        REQUIRE(mine.has_value());
        std::vector<int> seen_last(senders, -1);
        for (auto [s, i] : *mine) {
          // Each receiver sees each sender's values in order.
          if (i <= seen_last[s]) order_errors.fetch_add(1);
          seen_last[s] = i;
          got[s].push_back(i);
        }
      }
    });
  }
  CHECK(order_errors == 0);
  for (int s = 0; s < senders; ++s) {
    std::sort(got[s].begin(), got[s].end());
    REQUIRE(got[s].size() == static_cast<size_t>(per_sender));
    for (int i = 0; i < per_sender; ++i) REQUIRE(got[s][i] == i);
  }
}

TEST_CASE("chan: close wakes blocked receivers and senders", "[chan]") {
  const unsigned procs = procs_param();
  gort::chan<int> ch(0);
  std::atomic<int> nullopts{0}, throws{0};
  gort::runtime rt(gort::config{.procs = procs});
  rt.run([&] {
    gort::chan<int> done(10);
    for (int i = 0; i < 5; ++i)
      gort::go([&] {
        if (!ch.recv()) nullopts.fetch_add(1);
        done.send(1);
      });
    gort::chan<int> full(1);
    full.send(0);
    for (int i = 0; i < 5; ++i)
      gort::go([&] {
        try {
          full.send(1);
        } catch (const gort::channel_closed&) {
          throws.fetch_add(1);
        }
        done.send(1);
      });
    // Whether they are blocked yet or not, close decides: nobody ever
    // sends on ch or receives from full.
    for (int i = 0; i < 20; ++i) gort::yield();
    ch.close();
    full.close();
    for (int i = 0; i < 10; ++i) done.recv();
    CHECK(full.recv() == 0);  // buffered values survive close
    CHECK_FALSE(full.recv().has_value());
  });
  CHECK(nullopts == 5);
  CHECK(throws == 5);
}

TEST_CASE("chan: errors are clear", "[chan]") {
  CHECK_THROWS_AS(gort::chan<int>(-1), std::invalid_argument);
  gort::chan<int> ch(2);
  ch.send(1);  // buffered: works on a plain thread without blocking
  CHECK(ch.size() == 1);
  CHECK(ch.capacity() == 2);
  ch.close();
  CHECK_THROWS_AS(ch.send(2), gort::channel_closed);
  CHECK_THROWS_WITH(ch.close(), "gort: close of closed channel");
  CHECK(ch.recv() == 1);
  CHECK_FALSE(ch.recv().has_value());
  CHECK(ch.is_closed());
}

TEST_CASE("chan: try_send and try_recv never block", "[chan]") {
  gort::chan<std::unique_ptr<int>> ch(1);
  CHECK_FALSE(ch.try_recv().has_value());
  CHECK(ch.try_send(std::make_unique<int>(7)));
  auto p = std::make_unique<int>(8);
  CHECK_FALSE(ch.try_send(p));  // full; p is left alone
  CHECK(p != nullptr);
  auto v = ch.try_recv();
  REQUIRE(v.has_value());
  CHECK(**v == 7);
}

TEST_CASE("chan: a plain thread and a G talk through an unbuffered channel", "[chan]") {
  const unsigned procs = procs_param();
  gort::chan<int> to_g(0), from_g(0);
  gort::runtime rt(gort::config{.procs = procs, .deadlock_detection = false});
  rt.go([&] {
    for (auto v : to_g) from_g.send(v * 2);
    from_g.close();
  });
  long sum = 0;
  std::thread feeder([&] {
    for (int i = 1; i <= 100; ++i) to_g.send(i);
    to_g.close();
  });
  for (auto v : from_g) sum += v;
  feeder.join();
  CHECK(sum == 2 * 5050);
}

// Two Gs that hand a value back and forth keep passing the P through
// runnext and inherit each other's time slice; once sysmon asks the running
// one to yield (after 10 ms), its next park must let the rest of the local
// queue run (Go preempts such a pair asynchronously). Before that rule, at
// 1 P the third G here never ran and the loop hit its 5 s bound.
TEST_CASE("chan: a ping-ponging pair does not starve a queued G", "[chan]") {
  const unsigned procs = GENERATE(1u, 2u);
  // After a sleep long enough for sysmon to find every P idle and sleep
  // deeply: the M that wakes for the timer takes the P back, and sysmon
  // must wake with it (its preempt flag is what ends the pair's slice).
  const bool after_idle = GENERATE(false, true);
  INFO("procs = " << procs << ", after_idle = " << after_idle);
  // Declared before the runtime: its destructor waits for the partner,
  // which may still be in ping.recv when the loop below ends.
  std::atomic<bool> ran{false};
  gort::chan<int> ping(0), pong(0), gate(0), started(1);
  gort::runtime rt(gort::config{.procs = procs});
  rt.run([&] {
    if (after_idle) gort::sleep_for(std::chrono::milliseconds(50));
    gort::go([&] {
      started.send(0);
      gate.recv();
      ran.store(true);
    });
    started.recv();  // at 1 P the third G now waits in gate.recv
    gort::go([&] {
      for (auto v : ping) pong.send(v);
    });
    ping.send(0);
    REQUIRE(pong.recv() == 0);
    gort::yield();  // at 1 P the partner now waits in ping.recv
    gate.send(0);  // the third G to runnext; the first ping.send below
                   // moves it to the queue's tail
    const auto t0 = std::chrono::steady_clock::now();
    long rounds = 0;
    while (!ran.load() && std::chrono::steady_clock::now() - t0 < std::chrono::seconds(5)) {
      ping.send(1);
      REQUIRE(pong.recv() == 1);
      ++rounds;
    }
    ping.close();
    INFO("rounds: " << rounds);
    CHECK(ran.load());
  });
}

TEST_CASE("chan: stop tokens wake blocked receivers and senders", "[chan]") {
  const unsigned procs = procs_param();
  gort::chan<int> nobody_sends(0), nobody_receives(0);
  std::stop_source src;
  std::atomic<int> canceled{0};
  gort::runtime rt(gort::config{.procs = procs});
  rt.run([&] {
    gort::chan<int> done(4);
    for (int i = 0; i < 2; ++i) {
      gort::go([&] {
        try {
          nobody_sends.recv(src.get_token());
        } catch (const gort::operation_canceled&) {
          canceled.fetch_add(1);
        }
        done.send(1);
      });
      gort::go([&] {
        try {
          nobody_receives.send(5, src.get_token());
        } catch (const gort::operation_canceled&) {
          canceled.fetch_add(1);
        }
        done.send(1);
      });
    }
    for (int i = 0; i < 10; ++i) gort::yield();
    src.request_stop();
    for (int i = 0; i < 4; ++i) done.recv();
  });
  CHECK(canceled == 4);
  std::stop_source s2;  // a token already stopped fails at once
  s2.request_stop();
  CHECK_THROWS_AS(nobody_sends.recv(s2.get_token()), gort::operation_canceled);
}

TEST_CASE("chan: a receive nobody will ever satisfy is a reported deadlock", "[chan][fatal]") {
  auto r = gort_test::run_in_child([] {
    gort::runtime rt(gort::config{.procs = 2});
    rt.run([] {
      gort::chan<int> ch(0);
      ch.recv();
    });
  });
  INFO(r.output);
  CHECK(r.killed_by(SIGABRT));
  CHECK_THAT(r.output, Catch::Contains("deadlock!") && Catch::Contains("[chan receive]"));
}
