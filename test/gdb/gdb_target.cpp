// The program test/gdb/check.py debugs: Gs parked at known functions, then
// the main thread stops in gort_gdb_test_breakpoint() for gdb to look.
// Alone (no gdb) it runs to the end and exits 0.
#include <gort/gort.hpp>

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <mutex>

using namespace std::chrono_literals;

namespace {
std::atomic<int> about_to_park{0};
}

// Each function parks its G in a different way; noinline keeps a frame of
// its own for the backtrace to show.
[[gnu::noinline]] int parked_in_recv_here(gort::chan<int>& ch) {
  about_to_park.fetch_add(1);
  return ch.recv().value_or(-1);
}

[[gnu::noinline]] void parked_in_mutex_here(gort::mutex& mu) {
  about_to_park.fetch_add(1);
  std::lock_guard<gort::mutex> lk(mu);
}

[[gnu::noinline]] void parked_in_sleep_here() {
  about_to_park.fetch_add(1);
  gort::sleep_for(1h);
  __asm__ volatile("" ::: "memory");  // no tail call: keep this frame
}

[[gnu::noinline]] void parked_in_wait_group_here(gort::wait_group& wg) {
  about_to_park.fetch_add(1);
  wg.wait();
  __asm__ volatile("" ::: "memory");
}

[[gnu::noinline]] void blocked_in_syscall_here(int fd) {
  about_to_park.fetch_add(1);
  char c;
  (void)gort::blocking([&] { return ::read(fd, &c, 1); });
  __asm__ volatile("" ::: "memory");
}

extern "C" [[gnu::noinline]] void gort_gdb_test_breakpoint() { __asm__ volatile("" ::: "memory"); }

int main() {
  // Outside threads (this one) wake the Gs: no deadlock detection.
  gort::runtime rt(gort::config{.procs = 2, .deadlock_detection = false});
  gort::chan<int> ch(0);
  gort::mutex mu;
  gort::wait_group wg;
  int fds[2];
  if (::pipe(fds) != 0) return 1;
  mu.lock();  // outside a G: uncontended, so it does not block
  wg.add(1);

  rt.go([&] { parked_in_recv_here(ch); });
  rt.go([&] { parked_in_mutex_here(mu); });
  rt.go([&] { parked_in_sleep_here(); });
  rt.go([&] { parked_in_wait_group_here(wg); });
  rt.go([&] { blocked_in_syscall_here(fds[0]); });

  // Wait until every G has parked: all five got there and no P runs a G
  // (sysmon takes the P of the one in read() back within 10 ms).
  while (about_to_park.load() != 5 ||
         rt.stats().ps_idle != static_cast<int>(rt.procs()))
    std::this_thread::sleep_for(1ms);
  std::this_thread::sleep_for(20ms);
  std::printf("gdb_target: 5 Gs parked\n");
  std::fflush(stdout);
  gort_gdb_test_breakpoint();

  // Let them all go, so that the runtime can end.
  ch.send(1);
  mu.unlock();
  wg.done();
  char c = 'x';
  (void)!::write(fds[1], &c, 1);
  std::printf("gdb_target: done\n");
  // One G sleeps for an hour: end here rather than wait for it.
  std::fflush(stdout);
  ::_exit(0);
}
