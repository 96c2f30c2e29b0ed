// Timers, sleep, after, timer, ticker (gort/time.hpp), over 1, 2, 4, 8 Ps.
#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <memory>
#include <optional>
#include <random>
#include <stop_token>
#include <thread>
#include <vector>

#include <gort/gort.hpp>

using namespace std::chrono_literals;

namespace {
unsigned procs_param() { return GENERATE(1u, 2u, 4u, 8u); }
constexpr int scale(int n) { return GORT_TSAN ? n / 20 : n; }
}  // namespace

TEST_CASE("sleep: no G wakes before its deadline; on one P, in deadline order", "[time]") {
  const unsigned procs = procs_param();
  const int n = scale(10000);
  std::vector<gort::clock::time_point> deadline(n);
  std::vector<gort::clock::time_point> woke(n);
  std::vector<long> order(n);
  std::atomic<long> seq{0};
  // Shared with the Gs, which run on after the main G returns: it all lives
  // outside run() and outlives the runtime.
  std::vector<std::int64_t> offset_us(n);
  std::mt19937 rng(42);
  for (auto& o : offset_us) o = rng() % 50000;
  gort::clock::time_point base;
  gort::wait_group checked_in;
  gort::chan<int> gate(0);
  {
    gort::runtime rt(gort::config{.procs = procs});
    rt.run([&] {
      // Every G checks in, then waits at a gate; the deadlines are set only
      // then, far enough ahead (twice the time all of that took, however
      // slow the build: ASan, a loaded machine) that every G is asleep
      // before the first one: a G that reaches sleep_until late wakes at
      // once, out of deadline order, and that is not what is tested here.
      const auto t0 = gort::clock::now();
      for (int i = 0; i < n; ++i) {
        checked_in.add(1);
        gort::go([&, i] {
          checked_in.done();
          gate.recv();  // closed by main: every G passes
          deadline[i] = base + std::chrono::microseconds(offset_us[i]);
          gort::sleep_until(deadline[i]);
          woke[i] = gort::clock::now();
          order[i] = seq.fetch_add(1);
        });
      }
      checked_in.wait();
      base = gort::clock::now() + 2 * (gort::clock::now() - t0) + 100ms;
      gate.close();
    });
  }
  int early = 0;
  for (int i = 0; i < n; ++i)
    if (woke[i] < deadline[i]) ++early;
  CHECK(early == 0);
  if (procs == 1) {
    std::vector<int> idx(n);
    for (int i = 0; i < n; ++i) idx[i] = i;
    std::sort(idx.begin(), idx.end(), [&](int a, int b) { return deadline[a] < deadline[b]; });
    int out_of_order = 0;
    for (int k = 1; k < n; ++k)  // equal deadlines may wake in either order
      if (deadline[idx[k]] != deadline[idx[k - 1]] && order[idx[k]] < order[idx[k - 1]])
        ++out_of_order;
    CHECK(out_of_order == 0);
  }
}

TEST_CASE("sleep does not block other Gs on the same P", "[time]") {
  const unsigned procs = procs_param();
  std::atomic<long> ticks_during_sleep{0};
  // Outside the main G: the ticker may read it once more after run()
  // returns (the main G's stack is gone by then), until the runtime's
  // destructor has waited for it.
  std::atomic<bool> sleeping{true};
  gort::runtime rt(gort::config{.procs = procs});
  rt.run([&] {
    gort::go([&] {
      while (sleeping.load()) {
        ticks_during_sleep.fetch_add(1);
        gort::yield();
      }
    });
    const auto t0 = gort::clock::now();
    gort::sleep_for(30ms);
    CHECK(gort::clock::now() - t0 >= 30ms);
    sleeping.store(false);
  });
  CHECK(ticks_during_sleep > 0);
}

TEST_CASE("a short sleep on an idle runtime wakes by itself", "[time]") {
  const unsigned procs = procs_param();
  gort::runtime rt(gort::config{.procs = procs});
  const auto elapsed = rt.run([] {
    const auto t0 = gort::clock::now();
    gort::sleep_for(1ms);
    return gort::clock::now() - t0;
  });
  CHECK(elapsed >= 1ms);
  CHECK(elapsed < 2s);  // generous: only "it woke without outside help"
}

TEST_CASE("a G asleep on a timer is not a deadlock", "[time]") {
  gort::runtime rt(gort::config{.procs = 2});
  rt.run([] { gort::sleep_for(20ms); });  // every M idle meanwhile
  SUCCEED();
}

TEST_CASE("stop tokens cut sleeps short", "[time]") {
  const unsigned procs = procs_param();
  std::stop_source src;
  std::atomic<int> cut{0};
  gort::runtime rt(gort::config{.procs = procs});
  rt.run([&] {
    gort::chan<int> done(8);
    for (int i = 0; i < 8; ++i)
      gort::go([&] {
        if (!gort::sleep_for(10s, src.get_token())) cut.fetch_add(1);
        done.send(1);
      });
    gort::sleep_for(5ms);
    src.request_stop();
    for (int i = 0; i < 8; ++i) done.recv();
  });
  CHECK(cut == 8);
  std::stop_source s2;
  s2.request_stop();
  CHECK_FALSE(rt.run([&] { return gort::sleep_for(1s, s2.get_token()); }));
}

TEST_CASE("after() receives once; timer stop/reset keep Go's promises", "[time]") {
  const unsigned procs = procs_param();
  gort::runtime rt(gort::config{.procs = procs});
  rt.run([] {
    auto ch = gort::after(2ms);
    auto v = ch->recv();
    REQUIRE(v.has_value());
    CHECK(ch->try_recv() == std::nullopt);

    // stop() before firing: true, and the channel never receives.
    gort::timer t(1h);
    CHECK(t.stop());
    CHECK_FALSE(t.stop());
    // reset on a stopped timer: false; then it fires.
    CHECK_FALSE(t.reset(1ms));
    CHECK(t.c().recv().has_value());
    CHECK_FALSE(t.stop());  // already fired
  });
}

TEST_CASE("timer stop racing its firing: exactly one of stopped or fired", "[time]") {
  const unsigned procs = GENERATE(2u, 4u);
  std::atomic<int> bad{0};
  gort::runtime rt(gort::config{.procs = procs});
  rt.run([&] {
    for (int i = 0; i < scale(2000); ++i) {
      gort::timer t(std::chrono::microseconds(i % 50));
      gort::chan<bool> stopped(1);
      gort::go([&] { stopped.send(t.stop()); });
      const bool was_stopped = *stopped.recv();
      if (was_stopped) {
        if (t.c().try_recv().has_value()) bad.fetch_add(1);
      } else {
        if (!t.c().recv().has_value()) bad.fetch_add(1);  // must have fired
      }
    }
  });
  CHECK(bad == 0);
}

TEST_CASE("timer reset racing its firing: the new arm still delivers", "[time]") {
  // reset(2ms) lands while reset(0)'s arm may be firing (popped by an M,
  // its fire not run yet). That late fire may still deliver its value, but
  // must neither take the new arm's keep-alive nor stop it from sending.
  const unsigned procs = GENERATE(2u, 4u);
  gort::runtime rt(gort::config{.procs = procs});
  rt.run([] {
    std::minstd_rand rng(7);
    gort::timer t(1h);
    int checked = 0;
    for (int i = 0; i < scale(300); ++i) {
      while (t.c().try_recv()) {
      }
      t.reset(0ms);
      const auto spin_until = std::chrono::steady_clock::now() + std::chrono::nanoseconds(rng() % 5000);
      while (std::chrono::steady_clock::now() < spin_until) {
      }
      const gort::clock::time_point second = gort::now() + 2ms;  // <= the second arm's deadline
      t.reset(2ms);
      // Values until the second arm's (sent at or after its deadline). The
      // channel holds one value and a send into a full one is dropped (as
      // in Go): once an earlier value was still unread at `second`, the
      // second arm may have found the channel full, and this round proves
      // nothing. Otherwise its value must come.
      for (;;) {
        std::optional<gort::clock::time_point> v;
        auto timeout = gort::after(10s);  // only a lost arm waits this long
        const int got = gort::select(gort::on_recv(t.c(), [&](auto x) { v = x; }),
                                     gort::on_recv(*timeout, [](auto) {}));
        REQUIRE(got == 0);  // else the second arm never sent
        REQUIRE(v.has_value());
        if (*v >= second) {
          ++checked;
          break;
        }
        if (gort::now() >= second) break;  // read late: inconclusive
      }
    }
    CHECK(checked > 0);
  });
}

TEST_CASE("ticker stop racing a tick: it stays stopped", "[time]") {
  // stop() while a tick is firing returns false and that tick may still
  // arrive, but the ticker must not re-arm. After the stop only a few
  // values can come (one buffered before it, the sends of ticks other Ms
  // were finishing, one late); a ticker that kept going would send one
  // per 50 us poll below, ~40.
  const unsigned procs = GENERATE(2u, 4u);
  gort::runtime rt(gort::config{.procs = procs});
  rt.run([] {
    gort::ticker tk(50us);
    int worst = 0;
    for (int i = 0; i < scale(100); ++i) {
      gort::sleep_for(std::chrono::microseconds(i % 70));
      while (tk.c().try_recv()) {
      }
      tk.stop();
      int after_stop = 0;
      for (int poll = 0; poll < 40; ++poll) {  // 40 polls, each >= 50 us
        gort::sleep_for(50us);
        if (tk.c().try_recv()) ++after_stop;
      }
      worst = std::max(worst, after_stop);
      tk.reset(50us);
    }
    CHECK(worst < 10);
    tk.reset(20us);  // a new period
    for (int i = 0; i < 3; ++i) {
      auto timeout = gort::after(10s);  // only a ticker that stopped waits this long
      REQUIRE(gort::select(gort::on_recv(tk.c(), [](auto) {}), gort::on_recv(*timeout, [](auto) {})) == 0);
    }
    CHECK_THROWS_AS(tk.reset(0us), std::invalid_argument);
  });
}

TEST_CASE("timers still pending when their runtime ends are dropped", "[time]") {
  const unsigned procs = procs_param();
  // Declared before the runtime: they outlive it.
  std::weak_ptr<gort::chan<gort::clock::time_point>> unread;
  std::optional<gort::timer> pending;
  std::optional<gort::timer> fired;
  std::optional<gort::ticker> ticking;
  {
    gort::runtime rt(gort::config{.procs = procs});
    rt.run([&] {
      unread = gort::after(1h);  // nobody keeps or reads it
      pending.emplace(1h);
      ticking.emplace(1h);
      fired.emplace(1ms);
      REQUIRE(fired->c().recv().has_value());
    });
    CHECK_FALSE(unread.expired());  // its timer keeps it while pending
  }
  CHECK(unread.expired());  // dropped with the runtime, not leaked
  // The runtime is gone: none of these may touch it.
  CHECK_FALSE(pending->stop());
  CHECK_THROWS_AS(pending->reset(1ms), std::logic_error);
  CHECK_FALSE(ticking->stop());
  CHECK_FALSE(fired->stop());
  CHECK_THROWS_AS(fired->reset(1ms), std::logic_error);  // fired before: the runtime is gone too
  pending.reset();
  ticking.reset();
  fired.reset();
}

TEST_CASE("ticker ticks until stopped", "[time]") {
  gort::runtime rt(gort::config{.procs = 2});
  rt.run([] {
    gort::ticker tk(1ms);
    for (int i = 0; i < 5; ++i) CHECK(tk.c().recv().has_value());
    tk.stop();
  });
  CHECK_THROWS_AS(rt.run([] { gort::ticker bad(0ms); }), std::invalid_argument);
  CHECK_THROWS_AS(gort::after(1ms), std::logic_error);  // outside a G
}
