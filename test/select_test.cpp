// select (gort/select.hpp), over 1, 2, 4, 8 Ps.
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <stop_token>

#include <gort/gort.hpp>

using namespace std::chrono_literals;

namespace {
unsigned procs_param() { return GENERATE(1u, 2u, 4u, 8u); }
constexpr int scale(int n) { return GORT_TSAN ? n / 20 : n; }
}  // namespace

TEST_CASE("select: ready cases are chosen with equal frequency", "[select]") {
  const int n = scale(100000);
  int hits[3] = {0, 0, 0};
  gort::runtime rt(gort::config{.procs = 1});
  rt.run([&] {
    gort::chan<int> a(1), b(1), c(1);
    for (int i = 0; i < n; ++i) {
      a.try_send(1);
      b.try_send(2);
      c.try_send(3);
      const int k = gort::select(gort::on_recv(a, [](auto) {}), gort::on_recv(b, [](auto) {}),
                                 gort::on_recv(c, [](auto) {}));
      ++hits[k];
    }
  });
  // Each ~n/3; a bound far outside random fluctuation (sd ~ sqrt(n)).
  for (int k = 0; k < 3; ++k) {
    INFO("case " << k << " hits " << hits[k]);
    CHECK(hits[k] > n / 3 - n / 20);
    CHECK(hits[k] < n / 3 + n / 20);
  }
}

TEST_CASE("select: default never blocks; exactly one case fires", "[select]") {
  const unsigned procs = procs_param();
  gort::runtime rt(gort::config{.procs = procs});
  rt.run([] {
    gort::chan<int> a(0);
    bool ran_default = false;
    CHECK(gort::select(gort::on_recv(a, [](auto) {}), gort::on_default([&] { ran_default = true; })) == 1);
    CHECK(ran_default);
  });
  // Many selectors and many senders: every value is received by exactly one
  // select, none twice.
  std::atomic<long> got{0}, sum{0};
  const int senders = 4, per = scale(2000);
  rt.run([&] {
    gort::chan<int> a(0), b(3);
    gort::wait_group wg;
    for (int s = 0; s < senders; ++s) {
      wg.add(1);
      gort::go([&] {
        for (int i = 1; i <= per; ++i) (i % 2 ? a : b).send(i);
        wg.done();
      });
    }
    gort::chan<int> stop(0);
    gort::go([&] {
      wg.wait();
      stop.close();
    });
    gort::wait_group rw;
    for (int r = 0; r < 3; ++r) {
      rw.add(1);
      gort::go([&] {
        for (bool more = true; more;) {
          gort::select(gort::on_recv(a, [&](std::optional<int> v) { got++, sum += *v; }),
                       gort::on_recv(b, [&](std::optional<int> v) { got++, sum += *v; }),
                       gort::on_recv(stop, [&](auto) { more = false; }));
        }
        rw.done();
      });
    }
    rw.wait();
    // drain what is left in b's buffer
    while (auto v = b.try_recv()) got++, sum += *v;
  });
  CHECK(got == senders * per);
  CHECK(sum == static_cast<long>(senders) * per * (per + 1) / 2);
}

TEST_CASE("select: send cases, and close wakes a parked select", "[select]") {
  const unsigned procs = procs_param();
  gort::runtime rt(gort::config{.procs = procs});
  rt.run([] {
    gort::chan<int> out(0), echo(1);
    gort::go([&] { echo.send(*out.recv()); });  // Catch2 checks stay on one G
    bool sent = false;
    CHECK(gort::select(gort::on_send(out, 7, [&] { sent = true; })) == 0);
    CHECK(sent);
    CHECK(echo.recv() == 7);

    gort::chan<int> never(0), closing(0);
    gort::go([&] { closing.close(); });
    std::optional<int> v = 5;
    CHECK(gort::select(gort::on_recv(never, [](auto) {}),
                       gort::on_recv(closing, [&](std::optional<int> x) { v = x; })) == 1);
    CHECK_FALSE(v.has_value());

    gort::chan<int> closed(0);
    closed.close();
    CHECK_THROWS_AS(gort::select(gort::on_send(closed, 1, [] {})), gort::channel_closed);
  });
}

TEST_CASE("select: after() is the timeout idiom; stop tokens end a select", "[select]") {
  const unsigned procs = procs_param();
  gort::runtime rt(gort::config{.procs = procs});
  rt.run([] {
    gort::chan<int> never(0);
    const auto t0 = gort::clock::now();
    auto timeout = gort::after(5ms);
    CHECK(gort::select(gort::on_recv(never, [](auto) {}), gort::on_recv(*timeout, [](auto) {})) == 1);
    CHECK(gort::clock::now() - t0 >= 5ms);

    std::stop_source src;
    gort::go([&] {
      gort::sleep_for(2ms);
      src.request_stop();
    });
    CHECK_THROWS_AS(gort::select(src.get_token(), gort::on_recv(never, [](auto) {})),
                    gort::operation_canceled);
  });
}
