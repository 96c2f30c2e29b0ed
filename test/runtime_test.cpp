// Tests of the scheduler through gort/runtime.hpp and gort/go.hpp. Every
// behaviour test runs with 1, 2, 4 and 8 Ps.
#include <dirent.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <gort/gort.hpp>

#include "test_util.hpp"

namespace {

constexpr bool tsan = GORT_TSAN;
// Many Gs under TSan cost a fiber each; scale the big tests down there.
constexpr int scale(int n) { return tsan ? n / 50 : n; }

unsigned procs_param() { return GENERATE(1u, 2u, 4u, 8u); }

int count_dir(const char* path) {
  int n = 0;
  if (DIR* d = ::opendir(path)) {
    while (::readdir(d) != nullptr) ++n;
    ::closedir(d);
  }
  return n;
}

// Parks the current G forever (for deadlock tests): no waker exists.
bool keep_parked(gort::detail::g_base*, void*) { return true; }

}  // namespace

TEST_CASE("run returns the main G's value and rethrows its exception", "[runtime]") {
  const unsigned procs = procs_param();
  gort::runtime rt(gort::config{.procs = procs});
  CHECK(rt.procs() == procs);
  CHECK(rt.run([] { return 42; }) == 42);
  CHECK(rt.run([](int a, std::string b) { return b + std::to_string(a); }, 7, "x") == "x7");
  CHECK_THROWS_WITH(rt.run([]() -> int { throw std::runtime_error("main failed"); }),
                    "main failed");
  rt.run([] {});  // void, and the runtime is still usable after a throw
  CHECK(rt.run([] { return gort::this_g::id(); }) != 0);
  CHECK(gort::this_g::id() == 0);
}

TEST_CASE("run from inside a G is a clear error", "[runtime]") {
  std::string msg;
  gort::runtime rt(gort::config{.procs = 2});
  rt.run([&] {
    try {
      rt.run([] {});
    } catch (const std::logic_error& e) {
      msg = e.what();
    }
  });
  CHECK_THAT(msg, Catch::Contains("called from inside a G"));
  CHECK_THROWS_AS(gort::go([] {}), std::logic_error);
  CHECK_THROWS_AS(gort::lock_os_thread(), std::logic_error);
}

TEST_CASE("run from several threads at once", "[runtime]") {
  const unsigned procs = procs_param();
  std::vector<std::thread> ts;
  std::atomic<long> sum{0};
  gort::runtime rt(gort::config{.procs = procs});
  for (int t = 0; t < 4; ++t)
    ts.emplace_back([&, t] {
      for (int i = 0; i < 50; ++i) sum += rt.run([=] { return t * 1000 + i; });
    });
  for (auto& t : ts) t.join();
  long want = 0;
  for (int t = 0; t < 4; ++t)
    for (int i = 0; i < 50; ++i) want += t * 1000 + i;
  CHECK(sum == want);
}

// The batch a full local queue spills to the global queue lives in the P,
// not on the spawning G's stack: with 4096 slots it was 16 KiB, as big as
// the whole 16 KiB stack (a fatal "stack overflow" naming stack_size).
struct big_queue_small_stack_traits : gort::default_traits {
  static constexpr std::size_t stack_size = 16 * 1024;
  static constexpr std::uint32_t run_queue_capacity = 4096;
  static constexpr std::uint32_t spawn_yield_every = 0;  // fill the local queue
};

TEST_CASE("a local queue much larger than a G's stack spills over cleanly", "[runtime]") {
  const unsigned procs = procs_param();
  gort::basic_runtime<big_queue_small_stack_traits> rt(gort::config{.procs = procs});
  std::atomic<int> ran{0};
  rt.run([&] {
    gort::wait_group wg;
    wg.add(10000);
    for (int i = 0; i < 10000; ++i)
      gort::go([&] {
        ran.fetch_add(1, std::memory_order_relaxed);
        wg.done();
      });
    wg.wait();
  });
  CHECK(ran == 10000);
}

TEST_CASE("a million Gs are spawned and each runs exactly once", "[runtime]") {
  const unsigned procs = procs_param();
  const int n = scale(1'000'000);
  std::unique_ptr<std::atomic<std::uint8_t>[]> ran(new std::atomic<std::uint8_t>[n]);
  for (int i = 0; i < n; ++i) ran[i].store(0, std::memory_order_relaxed);
  {
    gort::runtime rt(gort::config{.procs = procs});
    rt.run([&] {
      for (int i = 0; i < n; ++i)
        gort::go([&ran, i] { ran[i].fetch_add(1, std::memory_order_relaxed); });
    });
    // The destructor waits for every G.
  }
  int wrong = 0;
  for (int i = 0; i < n; ++i)
    if (ran[i].load() != 1) ++wrong;
  CHECK(wrong == 0);
}

TEST_CASE("spawning from outside threads while Gs run", "[runtime]") {
  const unsigned procs = procs_param();
  std::atomic<int> count{0};
  {
    std::vector<std::thread> ts;
    gort::runtime rt(gort::config{.procs = procs});
    for (int t = 0; t < 3; ++t)
      ts.emplace_back([&] {
        for (int i = 0; i < scale(20000); ++i) rt.go([&] { count.fetch_add(1); });
      });
    for (auto& t : ts) t.join();
  }
  CHECK(count == 3 * scale(20000));
}

namespace {
void tree(std::atomic<long>* leaves, int depth, int fanout) {
  if (depth == 0) {
    leaves->fetch_add(1, std::memory_order_relaxed);
    return;
  }
  for (int i = 0; i < fanout; ++i) gort::go(tree, leaves, depth - 1, fanout);
}
}  // namespace

TEST_CASE("fan-out trees", "[runtime]") {
  const unsigned procs = procs_param();
  std::atomic<long> leaves{0};
  const int depth = tsan ? 3 : 5;
  {
    gort::runtime rt(gort::config{.procs = procs});
    rt.go(tree, &leaves, depth, 10);
  }
  long want = 1;
  for (int i = 0; i < depth; ++i) want *= 10;
  CHECK(leaves == want);
}

TEST_CASE("a G spinning on yield does not starve others", "[runtime]") {
  const unsigned procs = procs_param();
  std::atomic<bool> flag{false};
  gort::runtime rt(gort::config{.procs = procs});
  long spins = rt.run([&] {
    // Occupy every P with yielders; the setter must still get a turn.
    for (unsigned i = 0; i + 1 < procs; ++i)
      gort::go([&] {
        while (!flag.load()) gort::yield();
      });
    gort::go([&] { flag.store(true); });
    long k = 0;
    while (!flag.load()) {
      gort::yield();
      ++k;
    }
    return k;
  });
  CHECK(flag.load());
  CHECK(spins >= 0);
}

TEST_CASE("Gs that yield to each other do not starve the global queue", "[runtime]") {
  const unsigned procs = procs_param();
  // Declared before the runtime: the yielding Gs may still be reading flag
  // after run() returns, until the runtime's destructor has waited for them.
  std::atomic<bool> flag{false};
  std::atomic<bool> started{false};
  std::thread outsider;
  gort::runtime rt(gort::config{.procs = procs});
  rt.run([&] {
    // Keep every P busy with Gs that only yield; the G that sets the flag
    // arrives from an outside thread, through the global queue.
    for (unsigned i = 0; i < procs; ++i)
      gort::go([&] {
        while (!flag.load()) gort::yield();
      });
    outsider = std::thread([&] {
      while (!started.load()) std::this_thread::yield();
      rt.go([&] { flag.store(true); });
    });
    started.store(true);
    while (!flag.load()) gort::yield();
  });
  outsider.join();
  CHECK(flag.load());
}

TEST_CASE("a G that never yields: other Ps keep running, sysmon flags it", "[runtime]") {
  const unsigned procs = GENERATE(2u, 4u, 8u);
  std::atomic<bool> others_done{false};  // outlive rt: the hog ends after run()
  std::atomic<bool> saw_preempt{false};
  std::atomic<int> ran{0};
  gort::runtime rt(gort::config{.procs = procs});
  rt.run([&] {
    gort::go([&] {
      // A hog: no yield point until sysmon asks, and until the others ran.
      while (!gort::this_g::preempt_requested() || !others_done.load()) {
      }
      saw_preempt.store(true);
    });
    gort::yield();  // let the hog start on this P or another
    for (int i = 0; i < 100; ++i) gort::go([&] { ran.fetch_add(1); });
    while (ran.load() < 100) gort::yield();
    others_done.store(true);
  });
  CHECK(ran == 100);
  // The destructor waits for the hog, which exits once sysmon flagged it.
}

TEST_CASE("a G that hogs its P is reported once on stderr", "[runtime]") {
  auto r = gort_test::run_in_child([] {
    gort::runtime rt(gort::config{.procs = 2, .hog_report_ms = 30});
    rt.run([] {
      const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(200);
      while (std::chrono::steady_clock::now() < until) {
      }  // no yield point
    });
  });
  INFO(r.output);
  CHECK(WIFEXITED(r.status));
  CHECK_THAT(r.output, Catch::Contains("without reaching a yield point"));
  // once, not every sysmon round
  const auto first = r.output.find("without reaching");
  CHECK(r.output.find("without reaching", first + 1) == std::string::npos);
}

TEST_CASE("blocking(): other Gs run while one G blocks, even on one P", "[runtime]") {
  const unsigned procs = procs_param();
  gort::runtime rt(gort::config{.procs = procs});
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  char got = 0;
  rt.run([&] {
    gort::go([&] {
      char c = 'x';
      (void)!::write(fds[1], &c, 1);
    });
    // Only the G just spawned (queued on this P) can unblock this read: if
    // the P were not handed off, a 1-P runtime would hang here.
    gort::blocking([&] { return ::read(fds[0], &got, 1); });
  });
  ::close(fds[0]);
  ::close(fds[1]);
  CHECK(got == 'x');
  CHECK(rt.run([] { return gort::blocking([] { return 5; }); }) == 5);
  CHECK_THROWS_WITH(rt.run([] { gort::blocking([] { throw std::runtime_error("in call"); }); }),
                    "in call");
  rt.run([] {});  // the runtime recovered its P after the throw
}

TEST_CASE("blocking(): a yield inside yields the thread; a park inside is a clear fatal error",
          "[runtime][fatal]") {
  const unsigned procs = procs_param();
  {
    gort::runtime rt(gort::config{.procs = procs});
    // Before: the yield ran the scheduler with no P and crashed (SIGSEGV).
    CHECK(rt.run([] {
      return gort::blocking([] {
        for (int i = 0; i < 100; ++i) gort::yield();
        return 7;
      });
    }) == 7);
  }  // its threads gone before the fork (TSan refuses a multi-threaded fork)
  auto r = gort_test::run_in_child([procs] {
    gort::runtime rt2(gort::config{.procs = procs});
    rt2.run([] { gort::blocking([] { gort::sleep_for(std::chrono::milliseconds(1)); }); });
  });
  INFO(r.output);
  CHECK_FALSE(r.timed_out);
  CHECK(r.killed_by(SIGABRT));
  CHECK_THAT(r.output, Catch::Contains("sleep inside gort::blocking()"));
}

// Out of address space for a G's first stack: Go's "out of memory" fatal
// error, naming the G. Before, the bad_alloc came out of whichever G was
// parking when the new one was picked, with the new one marked running.
TEST_CASE("no memory for a G's stack is a clear fatal error", "[runtime][fatal]") {
  if (GORT_ASAN || GORT_TSAN) return;  // their shadow memory needs the address space
  auto r = gort_test::run_in_child([] {
    gort::runtime rt(gort::config{.procs = 1});
    rt.run([] {
      gort::chan<int> never(0);
      std::FILE* f = std::fopen("/proc/self/statm", "r");
      unsigned long pages = 0;
      if (f == nullptr || std::fscanf(f, "%lu", &pages) != 1) std::abort();
      std::fclose(f);
      const rlim_t cap = pages * 4096 + (rlim_t{64} << 20);  // 256 stacks' worth
      rlimit rl{cap, cap};
      if (::setrlimit(RLIMIT_AS, &rl) != 0) std::abort();
      for (int i = 0; i < 2000; ++i) gort::go([&] { never.recv(); });
      never.recv();
    });
  });
  INFO(r.output);
  CHECK_FALSE(r.timed_out);
  CHECK(r.killed_by(SIGABRT));
  CHECK_THAT(r.output, Catch::Contains("gort: fatal: out of memory: cannot allocate a") &&
                           Catch::Contains("-byte stack for G "));
  CHECK_THAT(r.output, !Catch::Contains("uncaught exception"));
}

TEST_CASE("lock_os_thread: the thread stays fixed; unlocked Gs migrate", "[runtime]") {
  const unsigned procs = GENERATE(2u, 4u, 8u);
  std::atomic<int> mismatches{0};
  std::atomic<int> migrated{0};
  {
  gort::runtime rt(gort::config{.procs = procs});
  rt.run([&] {
    for (int k = 0; k < 4; ++k)
      gort::go([&] {
        gort::lock_os_thread();
        const long tid = gort::this_g::os_thread_id();
        for (int i = 0; i < 200; ++i) {
          gort::yield();
          if (gort::this_g::os_thread_id() != tid) mismatches.fetch_add(1);
        }
        gort::unlock_os_thread();
      });
    for (int k = 0; k < 16; ++k)
      gort::go([&] {
        std::set<long> tids;
        for (int i = 0; i < 2000 && tids.size() < 2; ++i) {
          tids.insert(gort::this_g::os_thread_id());
          gort::yield();
        }
        if (tids.size() > 1) migrated.fetch_add(1);
      });
  });
  }  // the destructor waits for every G
  CHECK(mismatches == 0);
  CHECK(migrated > 0);
}

TEST_CASE("a G that exits locked takes its thread with it; others carry on", "[runtime]") {
  const unsigned procs = procs_param();
  gort::runtime rt(gort::config{.procs = procs});
  for (int round = 0; round < 5; ++round) {
    rt.run([] {
      gort::go([] { gort::lock_os_thread(); });  // exits locked
      gort::yield();
    });
  }
  CHECK(rt.run([] { return 1; }) == 1);
}

TEST_CASE("exception state survives parks and migration", "[runtime]") {
  const unsigned procs = procs_param();
  std::atomic<int> ok{0};
  constexpr int n = 64;
  {
  gort::runtime rt(gort::config{.procs = procs});
  rt.run([&] {
    for (int i = 0; i < n; ++i)
      gort::go([&ok, i] {
        try {
          throw std::runtime_error("g" + std::to_string(i));
        } catch (...) {
          for (int k = 0; k < 20; ++k) gort::yield();  // park inside catch
          if (std::uncaught_exceptions() != 0) return;
          try {
            throw;  // our own exception, wherever we run now
          } catch (const std::runtime_error& e) {
            if (e.what() == "g" + std::to_string(i)) ok.fetch_add(1);
          }
        }
      });
  });
  }  // the destructor waits for every G
  CHECK(ok == n);
}

TEST_CASE("several runtimes at once, and one after another", "[runtime]") {
  gort::runtime a(gort::config{.procs = 2});
  gort::runtime b(gort::config{.procs = 3});
  int from_b = 0;  // Catch2 assertions stay on the test's thread
  std::thread t([&] { from_b = b.run([] { return 2; }); });
  CHECK(a.run([] { return 1; }) == 1);
  t.join();
  CHECK(from_b == 2);
  for (int i = 0; i < 3; ++i) {
    gort::runtime c(gort::config{.procs = 1});
    CHECK(c.run([i] { return i; }) == i);
  }
}

TEST_CASE("100 runtimes created and destroyed leak no threads or fds", "[runtime]") {
  const int threads_before = count_dir("/proc/self/task");
  const int fds_before = count_dir("/proc/self/fd");
  for (int i = 0; i < 100; ++i) {
    gort::runtime rt(gort::config{.procs = static_cast<unsigned>(1 + i % 4)});
    rt.run([] {
      for (int k = 0; k < 10; ++k) gort::go([] { gort::yield(); });
    });
  }
  CHECK(count_dir("/proc/self/task") == threads_before);
  CHECK(count_dir("/proc/self/fd") == fds_before);
}

TEST_CASE("stats count Gs, Ms and Ps", "[runtime]") {
  gort::runtime rt(gort::config{.procs = 2});
  rt.run([] {
    for (int i = 0; i < 10; ++i) gort::go([] {});
  });
  const auto s = rt.stats();
  CHECK(s.gs_created >= 11);
  CHECK(s.ps == 2);
  CHECK(s.ms_total >= 1);
  CHECK(s.ms_idle <= s.ms_total);
  CHECK(s.ps_idle <= 2);
}

TEST_CASE("an idle runtime uses almost no CPU", "[runtime][idle]") {
  gort::runtime rt(gort::config{.procs = 4});
  rt.run([] {
    for (int i = 0; i < 100; ++i) gort::go([] {});
  });
  auto cpu = [] {
    rusage ru{};
    ::getrusage(RUSAGE_SELF, &ru);
    return (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e6 + ru.ru_utime.tv_usec +
           ru.ru_stime.tv_usec;
  };
  // Let the Ms finish spinning and sysmon back off, then measure.
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  const double c0 = cpu();
  const auto t0 = std::chrono::steady_clock::now();
  std::this_thread::sleep_for(std::chrono::seconds(1));
  const double used = cpu() - c0;
  const double wall = std::chrono::duration<double, std::micro>(
                          std::chrono::steady_clock::now() - t0).count();
  INFO("CPU used while idle: " << used << " us over " << wall << " us");
  CHECK(used / wall < 0.02);
}

TEST_CASE("procs come from GORT_PROCS when not configured", "[runtime]") {
  auto r = gort_test::run_in_child([] {
    ::setenv("GORT_PROCS", "3", 1);
    gort::runtime rt;
    if (rt.procs() != 3) std::_Exit(1);
  });
  CHECK(WIFEXITED(r.status));
  CHECK(WEXITSTATUS(r.status) == 0);
}

TEST_CASE("an exception escaping a G is fatal and names the G", "[runtime][fatal]") {
  auto r = gort_test::run_in_child([] {
    gort::runtime rt(gort::config{.procs = 2});
    rt.go([] { throw std::runtime_error("escaped"); });
  });
  INFO(r.output);
  CHECK(r.killed_by(SIGABRT));
  CHECK_THAT(r.output, Catch::Contains("gort: fatal: uncaught exception in G ") &&
                           Catch::Contains(": std::runtime_error: escaped"));
}

namespace {
struct not_a_std_exception {
  int code;
};
}  // namespace

TEST_CASE("an escaping exception of any type is named by its type", "[runtime][fatal]") {
  auto r = gort_test::run_in_child([] {
    gort::runtime rt(gort::config{.procs = 1});
    rt.go([] { throw not_a_std_exception{3}; });
  });
  INFO(r.output);
  CHECK(r.killed_by(SIGABRT));
  CHECK_THAT(r.output, Catch::Contains("gort: fatal: uncaught exception in G ") &&
                           Catch::Contains("not_a_std_exception") &&
                           Catch::Contains("not derived from std::exception"));
}

TEST_CASE("deadlock: every G asleep is reported and aborts", "[runtime][fatal]") {
  const unsigned procs = procs_param();
  auto r = gort_test::run_in_child([procs] {
    gort::runtime rt(gort::config{.procs = procs});
    rt.run([] {
      gort::go([] {
        gort::detail::current_g()->sched->gopark(&keep_parked, nullptr, "test wait");
      });
      gort::detail::current_g()->sched->gopark(&keep_parked, nullptr, "main wait");
    });
  });
  INFO(r.output);
  CHECK_FALSE(r.timed_out);
  CHECK(r.killed_by(SIGABRT));
  CHECK_THAT(r.output, Catch::Contains("gort: fatal: all goroutines are asleep - deadlock!") &&
                           Catch::Contains("[main wait]") && Catch::Contains("[test wait]"));
}

TEST_CASE("deadlock in the destructor's wait is reported too", "[runtime][fatal]") {
  auto r = gort_test::run_in_child([] {
    gort::runtime rt(gort::config{.procs = 2});
    rt.go([] { gort::detail::current_g()->sched->gopark(&keep_parked, nullptr, "forever"); });
  });
  CHECK(r.killed_by(SIGABRT));
  CHECK_THAT(r.output, Catch::Contains("deadlock!") && Catch::Contains("[forever]"));
}

TEST_CASE("gopark/goready: a waker on another thread resumes a parked G", "[runtime]") {
  const unsigned procs = procs_param();
  // The waker is an outside thread that checkdead cannot see: without this,
  // the runtime would rightly report a deadlock while the G waits for it.
  gort::runtime rt(gort::config{.procs = procs, .deadlock_detection = false});
  std::atomic<gort::detail::g_base*> parked{nullptr};
  std::thread waker([&] {
    gort::detail::g_base* gp;
    while ((gp = parked.load()) == nullptr) std::this_thread::yield();
    gp->sched->goready(gp);
  });
  const int v = rt.run([&] {
    gort::detail::g_base* me = gort::detail::current_g();
    // unlockf publishes the G only once it is parked: the waker can never
    // ready a G whose registers are not saved yet.
    me->sched->gopark(
        [](gort::detail::g_base* gp, void* slot) {
          static_cast<std::atomic<gort::detail::g_base*>*>(slot)->store(gp);
          return true;
        },
        &parked, "test park");
    return 7;
  });
  waker.join();
  CHECK(v == 7);
}

TEST_CASE("GORT_DEBUG=schedtrace prints scheduler lines", "[runtime]") {
  auto r = gort_test::run_in_child([] {
    ::setenv("GORT_DEBUG", "schedtrace=20", 1);
    gort::runtime rt(gort::config{.procs = 2});
    rt.run([] {
      const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(120);
      while (std::chrono::steady_clock::now() < until) gort::yield();
    });
  });
  INFO(r.output);
  CHECK_THAT(r.output, Catch::Contains("SCHED ") && Catch::Contains("gomaxprocs=2") &&
                           Catch::Contains("idleprocs="));
}

TEST_CASE("GORT_DEBUG=schedtrace with a bad value is refused, not overflowed", "[runtime]") {
  for (const char* bad : {"schedtrace=10000000000000", "schedtrace=abc", "schedtrace=-5"}) {
    auto r = gort_test::run_in_child([bad] {
      ::setenv("GORT_DEBUG", bad, 1);
      gort::runtime rt(gort::config{.procs = 2});
      rt.run([] {
        const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(60);
        while (std::chrono::steady_clock::now() < until) gort::yield();
      });
    });
    INFO(bad << "\n" << r.output);
    CHECK(WIFEXITED(r.status));
    CHECK_THAT(r.output, Catch::Contains("gort: ignoring GORT_DEBUG=schedtrace="));
    CHECK_THAT(r.output, !Catch::Contains("SCHED "));  // before: a line per sysmon tick
  }
}
