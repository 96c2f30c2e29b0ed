// User-code strictness: this TU includes <gort/gort.hpp> and instantiates
// every public template, so that a warning in a header's template body
// shows up here. test/dropin/run.sh compiles it with
// -Wall -Wextra -Wpedantic -Werror in C++20 and C++23 modes, with g++ and
// clang++, then runs it.
#include <gort/gort.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <shared_mutex>
#include <stop_token>
#include <string>

using namespace std::chrono_literals;

struct small_traits : gort::default_traits {
  struct g_payload {
    int tag = 0;
  };
  static constexpr std::size_t stack_size = 64 * 1024;
};

int main() {
  gort::runtime rt(gort::config{.procs = 2});
  const int got = rt.run([] {
    gort::chan<int> ch(0);
    gort::chan<std::string> buffered(4);
    gort::wait_group wg;
    gort::mutex mu;
    gort::shared_mutex rw;
    gort::condition_variable cv;
    gort::once once;
    gort::semaphore sem(1);
    bool ready = false;
    int total = 0;

    wg.add(2);
    gort::go([&] {
      for (int i = 1; i <= 3; ++i) ch.send(i);
      ch.close();
      wg.done();
    });
    gort::go([&](int base) {
      std::unique_lock<gort::mutex> lk(mu);
      ready = true;
      total += base;
      cv.notify_all();
      wg.done();
    }, 100);
    for (int v : ch) total += v;  // 1 + 2 + 3
    {
      std::unique_lock<gort::mutex> lk(mu);
      cv.wait(lk, [&] { return ready; });
    }
    wg.wait();

    buffered.send("x");
    if (auto s = buffered.try_recv()) total += static_cast<int>(s->size());  // 1
    std::string item = "y";
    (void)buffered.try_send(item);
    int which = gort::select(
        gort::on_recv(buffered, [&](std::optional<std::string> v) { total += v ? 10 : 0; }),
        gort::on_recv(*gort::after(1s), [](std::optional<gort::clock::time_point>) {}));
    total += which;  // 0
    gort::select(gort::on_send(buffered, std::string("z"), [] {}),
                 gort::on_default([] {}));
    std::stop_source stop;
    stop.request_stop();
    try {
      (void)ch.recv(stop.get_token());  // closed: nullopt or canceled
    } catch (const gort::operation_canceled&) {
    }

    { std::shared_lock<gort::shared_mutex> r(rw); }
    { std::lock_guard<gort::shared_mutex> w(rw); }
    once.call([&] { ++total; });  // 1
    sem.acquire();
    sem.release();
    gort::sleep_for(1ms);
    (void)gort::sleep_for(1ms, stop.get_token());
    gort::timer t(1h);
    (void)t.stop();
    gort::ticker tick(1ms);
    (void)tick.c().recv();
    gort::yield();
    (void)gort::this_g::id();
    (void)gort::this_g::preempt_requested();
    (void)gort::blocking([] { return 1; });
    gort::lock_os_thread();
    gort::unlock_os_thread();

    // net, fs, signal.
    auto ln = gort::net::listen_tcp("127.0.0.1:0");
    gort::go([addr = ln.local_addr().to_string()] {
      auto c = gort::net::dial_tcp(addr);
      c.set_nodelay(true);
      c.write(gort::net::as_bytes("ping"));
    });
    gort::net::conn c = ln.accept();
    std::byte buf[4];
    total += static_cast<int>(c.read_full(buf));  // 4
    auto udp = gort::net::listen_udp("127.0.0.1:0");
    udp.send_to(gort::net::as_bytes("u"), udp.local_addr());
    total += static_cast<int>(udp.recv_from(buf).first);  // 1
    char path[] = "/tmp/gort-strict-XXXXXX";
    const int fd = ::mkstemp(path);
    if (fd >= 0) ::close(fd);
    auto f = gort::fs::file::open(path, O_RDWR | O_TRUNC);
    f.write_at(gort::net::as_bytes("abc"), 0);
    total += static_cast<int>(f.read_at(buf, 0));  // 3
    f.close();
    ::unlink(path);
    gort::signal::notifier sig{SIGUSR2};
    sig.close();
    return total;  // 100 + 6 + 1 + 10 + 0 + 1 + 4 + 1 + 3 = 126
  });
  gort::basic_runtime<small_traits> small(gort::config{.procs = 1});
  small.run([] {});
  gort::stack_allocator alloc;
  gort::stack s = alloc.allocate(64 * 1024);
  alloc.deallocate(s);
  const gort::runtime_stats st = rt.stats();
  std::printf("strict: %d (Gs created %llu)\n", got,
              static_cast<unsigned long long>(st.gs_created));
  return got == 126 ? 0 : 1;
}
