// gort::net, gort::fs and gort::signal on both netpoller backends (io_uring
// and epoll, forced through the traits) and 1, 2 and 4 Ps.
#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include <gort/gort.hpp>

#include "test_util.hpp"

using namespace std::chrono_literals;

namespace {

// io_uring as servers use it by default (multishot accept and recv), and
// with one-shot requests only.
struct uring_traits : gort::default_traits {
  using poller = gort::detail::uring_only_poller;
};
struct uring_oneshot_traits : gort::default_traits {
  using poller = gort::detail::uring_oneshot_poller;
};
// Reads by readiness: a multishot poll per connection, the recv in the G.
struct uring_poll_poller {
  static std::unique_ptr<gort::detail::netpoller_base> create(unsigned procs) {
    std::string why;
    auto p = gort::detail::uring_poller::create(
        procs, why, gort::detail::uring_multishot::accept | gort::detail::uring_multishot::poll);
    if (!p) throw std::runtime_error("io_uring unavailable: " + why);
    return p;
  }
};
struct uring_poll_traits : gort::default_traits {
  using poller = uring_poll_poller;
};
struct epoll_traits : gort::default_traits {
  using poller = gort::detail::epoll_only_poller;
};
// epoll with epoll_pwait (ms timeouts), what kernels before 5.11 get.
struct epoll_pwait_poller {
  static std::unique_ptr<gort::detail::netpoller_base> create(unsigned) {
    std::string why;
    auto p = gort::detail::epoll_poller::create(why, /*pwait2=*/false);
    if (!p) throw std::runtime_error("epoll unavailable: " + why);
    return p;
  }
};
struct epoll_pwait_traits : gort::default_traits {
  using poller = epoll_pwait_poller;
};

int count_fds() {
  int n = 0;
  if (DIR* d = ::opendir("/proc/self/fd")) {
    while (::readdir(d) != nullptr) ++n;
    ::closedir(d);
  }
  return n;
}

// What the open fds are, for a failure message ("3 -> socket:[1234]").
std::string list_fds() {
  std::string out;
  if (DIR* d = ::opendir("/proc/self/fd")) {
    while (dirent* e = ::readdir(d)) {
      if (e->d_name[0] == '.') continue;
      char target[256] = {};
      const std::string path = std::string("/proc/self/fd/") + e->d_name;
      if (::readlink(path.c_str(), target, sizeof target - 1) < 0) continue;
      out += std::string(e->d_name) + " -> " + target + "\n";
    }
    ::closedir(d);
  }
  return out;
}

std::uint64_t fnv(const std::byte* p, std::size_t n, std::uint64_t h = 1469598103934665603ull) {
  for (std::size_t i = 0; i < n; ++i) h = (h ^ static_cast<std::uint8_t>(p[i])) * 1099511628211ull;
  return h;
}

std::vector<std::byte> pattern(std::size_t n, unsigned seed) {
  std::vector<std::byte> v(n);
  std::uint32_t x = seed * 2654435761u + 1;
  for (auto& b : v) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    b = static_cast<std::byte>(x);
  }
  return v;
}

template <class Traits, class F>
void for_procs(F&& f) {
  for (unsigned procs : {1u, 2u, 4u}) {
    INFO("procs = " << procs);
    const int fds_before = count_fds();
    {
      gort::basic_runtime<Traits> rt(gort::config{.procs = procs});
      rt.run([&] { f(procs); });
    }
    INFO("open fds:\n" << list_fds());
    CHECK(count_fds() == fds_before);  // every socket, ring and pipe closed
  }
}

// A blocking connect to 127.0.0.1:port from a thread outside the runtime
// (a peer gort does not schedule); aborts the test if it fails.
int dial_loopback(std::uint16_t port) {
  const int s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (s < 0 || ::connect(s, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) std::abort();
  return s;
}

// An echo server G on ln: one G per connection, until ln closes.
void serve_echo(gort::net::listener& ln, gort::wait_group& wg) {
  wg.add(1);
  gort::go([&ln, &wg] {
    for (;;) {
      std::error_code ec;
      gort::net::conn c = ln.accept(ec);
      if (ec) break;
      wg.add(1);
      gort::go([&wg](gort::net::conn c) {
        std::byte buf[16384];
        for (;;) {
          std::error_code e;
          const std::size_t n = c.read(buf, e);
          if (e || n == 0) break;
          c.write(std::span(buf, n), e);
          if (e) break;
        }
        wg.done();
      }, std::move(c));
    }
    wg.done();
  });
}

}  // namespace

TEST_CASE("net: address::parse takes numeric addresses only", "[net]") {
  CHECK(gort::net::address::parse("127.0.0.1:80").to_string() == "127.0.0.1:80");
  CHECK(gort::net::address::parse("[::1]:0").to_string() == "[::1]:0");
  CHECK(gort::net::address::parse(":8080").port() == 8080);
  std::error_code ec;
  CHECK(gort::net::address::parse("localhost:80", ec).empty());
  CHECK(ec == gort::net::error::bad_address);
  CHECK_THROWS_AS(gort::net::address::parse("1.2.3.4:70000"), std::system_error);
}

TEMPLATE_TEST_CASE("net: echo round trips over many concurrent connections", "[net]",
                   uring_traits, uring_oneshot_traits, uring_poll_traits, epoll_traits, epoll_pwait_traits) {
  for_procs<TestType>([](unsigned) {
    auto ln = gort::net::listen_tcp("127.0.0.1:0");
    const std::string addr = ln.local_addr().to_string();
    gort::wait_group server;
    serve_echo(ln, server);
    constexpr int conns = 1000, rounds = 3;
    std::atomic<int> ok{0};
    gort::wait_group clients;
    for (int i = 0; i < conns; ++i) {
      clients.add(1);
      gort::go([&, i] {
        auto c = gort::net::dial_tcp(addr);
        for (int r = 0; r < rounds; ++r) {
          const std::string msg = "conn " + std::to_string(i) + " round " + std::to_string(r);
          c.write(gort::net::as_bytes(msg));
          std::string back(msg.size(), '\0');
          c.read_full(std::as_writable_bytes(std::span(back)));
          if (back == msg) ok.fetch_add(1);
        }
        clients.done();
      });
    }
    clients.wait();
    CHECK(ok.load() == conns * rounds);
    ln.close();
    server.wait();
  });
}

TEMPLATE_TEST_CASE("net: 64 MiB each way with checksums; half-close", "[net]", uring_traits,
                   uring_oneshot_traits, uring_poll_traits, epoll_traits) {
  for_procs<TestType>([](unsigned) {
    auto ln = gort::net::listen_tcp("[::1]:0");
    CHECK(ln.local_addr().family() == AF_INET6);
    gort::wait_group server;
    serve_echo(ln, server);
    const std::size_t total = 64u << 20;
    const auto data = pattern(1 << 20, 7);
    auto c = gort::net::dial_tcp(ln.local_addr().to_string());
    std::uint64_t sent_sum = 1469598103934665603ull, got_sum = sent_sum;
    gort::wait_group w;
    w.add(1);
    gort::go([&] {  // the writer, then half-close: the echo then ends
      for (std::size_t off = 0; off < total; off += data.size())
        sent_sum = fnv(data.data(), data.size(), sent_sum);
      for (std::size_t off = 0; off < total; off += data.size()) c.write(data);
      c.shutdown_write();
      w.done();
    });
    std::vector<std::byte> buf(1 << 16);
    std::size_t got = 0;
    for (;;) {
      const std::size_t n = c.read(buf);
      if (n == 0) break;  // the server saw our EOF and closed
      got_sum = fnv(buf.data(), n, got_sum);
      got += n;
    }
    w.wait();
    CHECK(got == total);
    CHECK(got_sum == sent_sum);
    ln.close();
    server.wait();
  });
}

TEMPLATE_TEST_CASE("net: errors are clear: refused, reset, bad addresses, closed", "[net]",
                   uring_traits, uring_oneshot_traits, uring_poll_traits, epoll_traits, epoll_pwait_traits) {
  for_procs<TestType>([](unsigned) {
    std::error_code ec;
    // A port nobody listens on: bind one, close it, dial it.
    std::string dead;
    {
      auto ln = gort::net::listen_tcp("127.0.0.1:0");
      dead = ln.local_addr().to_string();
    }
    gort::net::dial_tcp(dead, ec);
    CHECK(ec == std::errc::connection_refused);
    CHECK_THROWS_AS(gort::net::dial_tcp(dead), std::system_error);
    // Many at once, on every P: each is refused.
    {
      constexpr int dialers = 64;
      gort::chan<bool> refused(dialers);
      for (int i = 0; i < dialers; ++i)
        gort::go([&] {
          std::error_code e;
          gort::net::conn c = gort::net::dial_tcp(dead, e);
          refused.send(e == std::errc::connection_refused && !c.is_open());
        });
      int n = 0;
      for (int i = 0; i < dialers; ++i) n += *refused.recv() ? 1 : 0;
      CHECK(n == dialers);
    }

    for (const char* bad : {"127.0.0.1", "1.2.3.4:99999", "::1:80", "[::1:80", "host:", "x:y"}) {
      INFO(bad);
      gort::net::listen_tcp(bad, ec);
      CHECK(ec == gort::net::error::bad_address);
    }
    try {
      gort::net::listen_tcp("nonsense");
      FAIL("no throw");
    } catch (const std::system_error& e) {
      CHECK(std::string(e.what()).find("nonsense") != std::string::npos);
    }

    // Peer reset: the server closes with SO_LINGER 0.
    auto ln = gort::net::listen_tcp("127.0.0.1:0");
    auto c = gort::net::dial_tcp(ln.local_addr().to_string());
    {
      auto s = ln.accept();
      linger lg{1, 0};
      ::setsockopt(s.native_handle(), SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    }
    std::byte b[8];
    c.read(b, ec);
    CHECK(ec == std::errc::connection_reset);

    // A closed conn: every op fails with bad_file_descriptor; twice-close too.
    c.close();
    CHECK_FALSE(c.is_open());
    c.read(b, ec);
    CHECK(ec == std::errc::bad_file_descriptor);
    c.write(gort::net::as_bytes("x"), ec);
    CHECK(ec == std::errc::bad_file_descriptor);
    c.close(ec);
    CHECK(ec == std::errc::bad_file_descriptor);
    gort::net::conn none;
    none.read(b, ec);
    CHECK(ec == std::errc::bad_file_descriptor);

    // Names resolve through getaddrinfo (in gort::blocking).
    auto ln2 = gort::net::listen_tcp("localhost:0");
    auto c2 = gort::net::dial_tcp("localhost:" + std::to_string(ln2.local_addr().port()));
    auto s2 = ln2.accept();
    CHECK(s2.remote_addr() == c2.local_addr());
  });
}

TEMPLATE_TEST_CASE("net: deadlines fire mid-read and mid-accept, not when data comes first",
                   "[net]", uring_traits, uring_oneshot_traits, uring_poll_traits, epoll_traits, epoll_pwait_traits) {
  for_procs<TestType>([](unsigned) {
    auto ln = gort::net::listen_tcp("127.0.0.1:0");
    std::error_code ec;
    ln.set_deadline(gort::clock::now() + 20ms);
    ln.accept(ec);
    CHECK(ec == std::errc::timed_out);
    ln.set_deadline({});

    auto c = gort::net::dial_tcp(ln.local_addr().to_string());
    auto s = ln.accept();
    std::byte b[8];
    const auto t0 = gort::clock::now();
    c.set_read_deadline(t0 + 30ms);
    CHECK(c.read(b, ec) == 0);
    CHECK(ec == std::errc::timed_out);
    CHECK(gort::clock::now() - t0 >= 30ms);
    // The conn is still usable; data that comes first wins.
    c.set_read_deadline(gort::clock::now() + 10s);
    gort::wait_group writers;  // every G that uses s ends before s does
    writers.add(1);
    gort::go([&] {
      s.write(gort::net::as_bytes("ok"));
      writers.done();
    });
    CHECK(c.read(b) == 2);
    c.set_read_deadline(gort::clock::now() - 1s);  // in the past: at once
    c.read(b, ec);
    CHECK(ec == std::errc::timed_out);
    c.set_read_deadline({});
    // Many short deadlines racing completions: each op ends exactly once.
    int done = 0;
    for (int i = 0; i < 200; ++i) {
      c.set_read_deadline(gort::clock::now() + std::chrono::microseconds(i % 50));
      writers.add(1);
      gort::go([&s, &writers] {
        std::error_code we;  // the conn may be mid-deadline: ignore errors
        s.write(gort::net::as_bytes("z"), we);
        writers.done();
      });
      std::error_code e;
      const std::size_t n = c.read(b, e);
      if (!e) CHECK(n >= 1);
      else CHECK(e == std::errc::timed_out);
      ++done;
    }
    CHECK(done == 200);
    writers.wait();
  });
}

TEMPLATE_TEST_CASE("net: close wakes a G blocked reading; accept on a closed listener", "[net]",
                   uring_traits, uring_oneshot_traits, uring_poll_traits, epoll_traits) {
  for_procs<TestType>([](unsigned) {
    auto ln = gort::net::listen_tcp("127.0.0.1:0");
    auto c = gort::net::dial_tcp(ln.local_addr().to_string());
    auto s = ln.accept();
    gort::chan<std::error_code> result(1);
    gort::chan<int> started(1);
    gort::go([&] {
      std::byte b[8];
      std::error_code ec;
      started.send(1);
      c.read(b, ec);
      result.send(ec);
    });
    started.recv();
    gort::sleep_for(5ms);  // let it park (either order is correct)
    c.close();
    CHECK(*result.recv() == std::errc::bad_file_descriptor);

    gort::go([&] {
      std::error_code ec;
      ln.accept(ec);
      result.send(ec);
    });
    gort::sleep_for(5ms);
    ln.close();
    CHECK(*result.recv() == std::errc::bad_file_descriptor);
  });
}

// close() frees the fd number at once; a new socket may take it. Before,
// shutdown_write, set_nodelay, the addresses and native_handle still used
// the old number: a.shutdown_write() after a.close() half-closed b.
TEMPLATE_TEST_CASE("net: after close() no call touches the fd number, which may be another's",
                   "[net]", uring_traits, epoll_traits) {
  for_procs<TestType>([](unsigned) {
    auto ln = gort::net::listen_tcp("127.0.0.1:0");
    auto a = gort::net::dial_tcp(ln.local_addr().to_string());
    auto as = ln.accept();
    const int old_fd = a.native_handle();
    a.close();
    CHECK(a.native_handle() == -1);
    auto b = gort::net::dial_tcp(ln.local_addr().to_string());
    auto bs = ln.accept();
    CHECK((b.native_handle() == old_fd || bs.native_handle() == old_fd));  // the lowest free
    std::error_code ec;
    a.shutdown_write(ec);
    CHECK(ec == std::errc::bad_file_descriptor);
    a.set_nodelay(true, ec);
    CHECK(ec == std::errc::bad_file_descriptor);
    CHECK(a.local_addr().empty());
    CHECK(a.remote_addr().empty());
    CHECK_THROWS_AS(a.shutdown_write(), std::system_error);
    // b and its peer are untouched, both ways.
    std::byte got[1];
    b.write(gort::net::as_bytes("x"));
    REQUIRE(bs.read(got) == 1);
    CHECK(got[0] == std::byte{'x'});
    bs.write(gort::net::as_bytes("y"));
    REQUIRE(b.read(got) == 1);
    CHECK(got[0] == std::byte{'y'});
    CHECK_FALSE(b.local_addr().empty());
    CHECK(b.remote_addr().to_string() == ln.local_addr().to_string());
  });
}

TEMPLATE_TEST_CASE("net: UDP round trips", "[net]", uring_traits, epoll_traits) {
  for_procs<TestType>([](unsigned) {
    auto a = gort::net::listen_udp("127.0.0.1:0");
    auto b = gort::net::listen_udp("127.0.0.1:0");
    gort::wait_group echoer;
    echoer.add(1);
    gort::go([&] {
      std::byte buf[2048];
      for (int i = 0; i < 100; ++i) {
        auto [n, from] = b.recv_from(buf);
        b.send_to(std::span(buf, n), from);
      }
      echoer.done();
    });
    int ok = 0;
    for (int i = 0; i < 100; ++i) {
      const std::string msg = "datagram " + std::to_string(i);
      a.send_to(gort::net::as_bytes(msg), b.local_addr());
      std::byte buf[2048];
      auto [n, from] = a.recv_from(buf);
      if (from == b.local_addr() && std::string(reinterpret_cast<char*>(buf), n) == msg) ++ok;
    }
    CHECK(ok == 100);
    echoer.wait();
  });
}

TEMPLATE_TEST_CASE("fs: read/write/fsync at offsets with checksums; other Gs keep running",
                   "[fs]", uring_traits, epoll_traits) {
  for_procs<TestType>([](unsigned procs) {
    char path[] = "/tmp/gort_fs_test_XXXXXX";
    const int tmp = ::mkstemp(path);
    REQUIRE(tmp >= 0);
    ::close(tmp);
    {
      auto f = gort::fs::file::open(path, O_RDWR | O_TRUNC);
      constexpr int gs = 16;
      constexpr std::size_t chunk = 256 * 1024;
      std::atomic<int> ok{0};
      std::atomic<bool> stop{false};
      std::atomic<long> spins{0};
      gort::wait_group spinner;
      spinner.add(1);
      gort::go([&] {  // a G that keeps running meanwhile
        while (!stop.load()) {
          spins.fetch_add(1);
          gort::yield();
        }
        spinner.done();
      });
      gort::wait_group wg;
      for (int i = 0; i < gs; ++i) {
        wg.add(1);
        gort::go([&, i] {
          const auto data = pattern(chunk, static_cast<unsigned>(i));
          f.write_at(data, static_cast<std::uint64_t>(i) * chunk);
          f.fsync();
          std::vector<std::byte> back(chunk);
          std::size_t got = 0;
          while (got < chunk) {
            const std::size_t n =
                f.read_at(std::span(back).subspan(got), static_cast<std::uint64_t>(i) * chunk + got);
            if (n == 0) break;
            got += n;
          }
          if (got == chunk && fnv(back.data(), chunk) == fnv(data.data(), chunk)) ok.fetch_add(1);
          wg.done();
        });
      }
      wg.wait();
      stop.store(true);
      spinner.wait();
      CHECK(ok.load() == gs);
      CHECK(f.size() == gs * chunk);
      CHECK(spins.load() > 0);
      std::byte b[4];
      CHECK(f.read_at(b, f.size()) == 0);  // EOF
      f.close();
      std::error_code ec;
      f.read_at(b, 0, ec);
      CHECK(ec == std::errc::bad_file_descriptor);
    }
    std::error_code ec;
    gort::fs::file::open("/nonexistent/dir/file", O_RDONLY, 0, ec);
    CHECK(ec == std::errc::no_such_file_or_directory);
    ::unlink(path);
    (void)procs;
  });
}

TEMPLATE_TEST_CASE("net: Ms exit (locked Gs end) while other Gs' I/O is in flight", "[net]",
                   uring_traits, uring_oneshot_traits, uring_poll_traits, epoll_traits) {
  // With io_uring a request belongs to the thread that submitted it, and a
  // thread's exit cancels it. Readers park (their requests submitted by
  // whichever M ran them, on few Ps likely the same Ms), then Gs that end
  // locked to their threads make those Ms exit. Every read must still get
  // its data, not ECANCELED.
  for_procs<TestType>([](unsigned) {
    auto ln = gort::net::listen_tcp("127.0.0.1:0");
    constexpr int readers = 8;
    std::vector<gort::net::conn> cs, ss;
    for (int i = 0; i < readers; ++i) {
      cs.push_back(gort::net::dial_tcp(ln.local_addr().to_string()));
      ss.push_back(ln.accept());
    }
    gort::chan<int> parked(readers), got(readers);
    for (int i = 0; i < readers; ++i)
      gort::go([&, i] {
        std::byte b[4];
        parked.send(1);
        std::error_code ec;
        const std::size_t n = cs[static_cast<std::size_t>(i)].read_full(b, ec);
        got.send(ec ? -ec.value() : static_cast<int>(n));
      });
    for (int i = 0; i < readers; ++i) parked.recv();
    // And an accept (with multishot, armed by whichever M ran it).
    gort::chan<int> accepted(1);
    gort::go([&] {
      std::error_code ec;
      gort::net::conn a = ln.accept(ec);
      accepted.send(ec ? -ec.value() : 1);
    });
    gort::sleep_for(5ms);  // the reads and the accept are parked in the poller
    gort::wait_group wg;
    for (int i = 0; i < 8; ++i) {
      wg.add(1);
      gort::go([&] {
        gort::lock_os_thread();
        gort::yield();
        wg.done();  // ends locked: its M exits (Go's rule)
      });
    }
    wg.wait();
    gort::sleep_for(5ms);
    for (auto& s : ss) s.write(gort::net::as_bytes("late"));
    for (int i = 0; i < readers; ++i) CHECK(*got.recv() == 4);
    auto late = gort::net::dial_tcp(ln.local_addr().to_string());
    CHECK(*accepted.recv() == 1);
  });
}

TEMPLATE_TEST_CASE("net: the last P handed off while a G waits on I/O leaves an M polling",
                   "[net]", uring_traits, epoll_traits) {
  // Go's handoffp: "if this is the last running P and nobody is polling
  // network, need to wakeup another M to poll network". A G locked to its
  // thread parks on a read; its M stops with it and hands its P off
  // (stoplockedm). The other Ps are idle and no M polls. The data comes
  // from a thread outside the runtime once every P is idle, so only an M
  // in the netpoller can ever see it.
  for (unsigned procs : {2u, 4u}) {
    INFO("procs = " << procs);
    gort::basic_runtime<TestType> rt(gort::config{.procs = procs});
    std::atomic<std::uint16_t> port{0};
    std::atomic<bool> done{false};
    std::thread peer([&] {
      while (port.load() == 0) std::this_thread::yield();
      const int s = dial_loopback(port.load());
      // Every P idle: the reader is parked and its P handed off.
      auto deadline = std::chrono::steady_clock::now() + 10s;
      while (rt.stats().ps_idle != static_cast<int>(procs) &&
             std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(1ms);
      if (::write(s, "ping", 4) != 4) std::abort();
      deadline = std::chrono::steady_clock::now() + 20s;
      while (!done.load() && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(1ms);
      if (!done.load()) {  // the runtime cannot be unwound from here
        std::fprintf(stderr, "net_test: FAILED: the read was never completed: no M polls "
                             "(handoffp idled the last P)\n");
        std::abort();
      }
      ::close(s);
    });
    const std::size_t n = rt.run([&] {
      auto ln = gort::net::listen_tcp("127.0.0.1:0");
      port.store(ln.local_addr().port());
      gort::net::conn c = ln.accept();
      gort::lock_os_thread();
      std::byte b[4];
      const std::size_t got = c.read_full(b);
      gort::unlock_os_thread();
      return got;
    });
    done.store(true);
    peer.join();
    CHECK(n == 4);
  }
}

TEST_CASE("net: an armed multishot accept is capped with no G waiting on I/O", "[net]") {
  // The listener's cap (128 queued connections) applies as completions are
  // reaped. Here no G waits on I/O and no timer is pending, so only
  // sysmon's poll reaps (wants_reaping); without it every connection an
  // outside client makes would be accepted, up to the completion ring.
  gort::basic_runtime<uring_traits> rt(gort::config{.procs = 1});
  constexpr int clients = 400;
  std::atomic<std::uint16_t> port{0};
  std::atomic<bool> dialed{false};
  std::vector<int> socks;
  std::thread peer([&] {
    while (port.load() == 0) std::this_thread::yield();
    for (int i = 0; i < clients; ++i) {
      const int s = dial_loopback(port.load());
      socks.push_back(s);
      // Paced, so that the cap can act between arrivals (sysmon polls
      // every 10 ms at most while a P is busy).
      std::this_thread::sleep_for(2ms);
    }
    dialed.store(true);
  });
  const int accepted = rt.run([&] {
    auto ln = gort::net::listen_tcp("127.0.0.1:0");
    port.store(ln.local_addr().port());
    { auto first = ln.accept(); }  // arms the multishot accept; the peer's first
    const int base = count_fds();  // the peer's first socket is in it
    // Busy, so sysmon stays awake; no G waits on I/O, no timer pending.
    while (!dialed.load()) gort::yield();
    return count_fds() - base - (clients - 1);  // less the peer's own sockets
  });
  peer.join();
  for (int s : socks) ::close(s);
  INFO("accepted while nobody called accept(): " << accepted);
  CHECK(accepted >= 1);
  CHECK(accepted < 250);  // the cap (128) plus what came before it acted
}

TEMPLATE_TEST_CASE("net: many Gs accept on one listener; each connection exactly once",
                   "[net]", uring_traits, uring_oneshot_traits, uring_poll_traits, epoll_traits) {
  // With multishot accept, connections queue in the listener while fewer
  // Gs wait than connections arrive; every G must be woken for one, and
  // the queue's leftovers must be closed with the listener (for_procs
  // checks the fd count).
  for_procs<TestType>([](unsigned) {
    auto ln = gort::net::listen_tcp("127.0.0.1:0");
    const std::string addr = ln.local_addr().to_string();
    constexpr int acceptors = 4, dialers = 200;
    std::vector<std::atomic<int>> seen(dialers);
    std::atomic<int> bad{0};
    gort::wait_group wg;
    for (int a = 0; a < acceptors; ++a) {
      wg.add(1);
      gort::go([&] {
        for (;;) {
          std::error_code ec;
          gort::net::conn c = ln.accept(ec);
          if (ec) {
            if (ec != std::errc::bad_file_descriptor) bad.fetch_add(1);
            break;
          }
          std::uint32_t id = 0;
          c.read_full(std::as_writable_bytes(std::span(&id, 1)), ec);
          if (ec || id >= dialers) bad.fetch_add(1);
          else seen[id].fetch_add(1);
        }
        wg.done();
      });
    }
    gort::wait_group dials;
    for (std::uint32_t i = 0; i < dialers; ++i) {
      dials.add(1);
      gort::go([&, i] {
        auto c = gort::net::dial_tcp(addr);
        c.write(std::as_bytes(std::span(&i, 1)));
        std::byte b[1];
        std::error_code ec;
        c.read(b, ec);  // EOF once the server side is done with it
        dials.done();
      });
    }
    dials.wait();
    ln.close();
    wg.wait();
    CHECK(bad.load() == 0);
    for (int i = 0; i < dialers; ++i) CHECK(seen[static_cast<std::size_t>(i)].load() == 1);

    // More connections than a listener queues (128): the multishot
    // accept pauses, the rest wait in the kernel's backlog, and every one
    // is accepted once the queue is taken.
    auto ln3 = gort::net::listen_tcp("127.0.0.1:0");
    constexpr std::uint32_t many = 300;
    std::vector<gort::net::conn> dialed;
    for (std::uint32_t i = 0; i < many; ++i) {
      dialed.push_back(gort::net::dial_tcp(ln3.local_addr().to_string()));
      dialed.back().write(std::as_bytes(std::span(&i, 1)));
      if (i == 0) { auto first = ln3.accept(); }  // armed before the rest come
    }
    std::vector<int> ids(many, 0);
    for (std::uint32_t i = 1; i < many; ++i) {
      auto c = ln3.accept();
      std::uint32_t id = 0;
      c.read_full(std::as_writable_bytes(std::span(&id, 1)));
      if (id < many) ++ids[id];
    }
    CHECK(std::count(ids.begin() + 1, ids.end(), 1) == static_cast<long>(many - 1));
    ln3.close();
    dialed.clear();

    // Connections that reach a listener nobody accepts on any more stay
    // queued (multishot) or in the kernel's backlog: close() must close
    // both kinds (for_procs checks the fd count), and their peers see the
    // end, not a hang.
    auto ln2 = gort::net::listen_tcp("127.0.0.1:0");
    std::vector<gort::net::conn> extra;
    for (int i = 0; i < 8; ++i) extra.push_back(gort::net::dial_tcp(ln2.local_addr().to_string()));
    { auto one = ln2.accept(); }  // arms the multishot one; it may queue the rest
    gort::sleep_for(2ms);
    ln2.close();
    for (auto& c : extra) {
      c.set_read_deadline(gort::clock::now() + 10s);
      std::byte b[1];
      std::error_code ec;
      const std::size_t n = c.read(b, ec);
      CHECK(n == 0);
      CHECK(ec != std::errc::timed_out);
    }
  });
}

TEMPLATE_TEST_CASE("net: more data in flight than the receive buffers; every byte in order",
                   "[net]", uring_traits, uring_oneshot_traits, uring_poll_traits, epoll_traits) {
  // Multishot recv takes buffers from its P's ring (256 x 4 KiB); 64
  // connections with 32 KiB each waiting outrun them, so receives end
  // with ENOBUFS and fall back to one-shot reads until buffers return.
  for_procs<TestType>([](unsigned) {
    auto ln = gort::net::listen_tcp("127.0.0.1:0");
    const std::string addr = ln.local_addr().to_string();
    constexpr int conns = 64;
    constexpr std::size_t each = 32 * 1024;
    std::vector<gort::net::conn> cs, ss;
    for (int i = 0; i < conns; ++i) {
      cs.push_back(gort::net::dial_tcp(addr));
      ss.push_back(ln.accept());
    }
    // One byte each first: every server-side read is armed before the
    // bulk arrives.
    gort::wait_group armed, done;
    std::atomic<int> ok{0};
    for (int i = 0; i < conns; ++i) {
      armed.add(1);
      done.add(1);
      gort::go([&, i] {
        auto& s = ss[static_cast<std::size_t>(i)];
        std::byte first[1];
        s.read_full(first);
        armed.done();
        std::vector<std::byte> got(each);
        std::error_code ec;
        // Small reads: each drains part of a queued buffer.
        std::size_t n = 0;
        while (n < each && !ec)
          n += s.read(std::span(got).subspan(n, std::min<std::size_t>(1000, each - n)), ec);
        const auto want = pattern(each, static_cast<unsigned>(i));
        if (!ec && n == each && got == want) ok.fetch_add(1);
        done.done();
      });
    }
    for (auto& c : cs) c.write(gort::net::as_bytes("x"));
    armed.wait();
    for (int i = 0; i < conns; ++i) {
      done.add(1);
      gort::go([&, i] {
        cs[static_cast<std::size_t>(i)].write(pattern(each, static_cast<unsigned>(i)));
        done.done();
      });
    }
    done.wait();
    CHECK(ok.load() == conns);

    // One connection that stops reading while 1 MiB arrives: its queue
    // is capped (the request pauses and re-arms), and nothing is lost.
    constexpr std::size_t big = 1 << 20;
    std::byte first[1];
    cs[0].write(gort::net::as_bytes("y"));
    ss[0].read_full(first);  // armed
    gort::wait_group w;
    w.add(1);
    gort::go([&] {
      cs[0].write(pattern(big, 99));
      w.done();
    });
    gort::sleep_for(10ms);  // let it pile up
    std::vector<std::byte> got(big);
    ss[0].read_full(got);
    w.wait();
    CHECK((got == pattern(big, 99)));
  });
}

TEST_CASE("net: multishot is on for io_uring unless asked otherwise", "[net]") {
  const auto flags = [](const char* env) {
    if (env != nullptr) ::setenv("GORT_URING_MULTISHOT", env, 1);
    else ::unsetenv("GORT_URING_MULTISHOT");
    gort::basic_runtime<uring_traits> rt(gort::config{.procs = 1});
    return rt.run([] {
      auto* p = dynamic_cast<gort::detail::uring_poller*>(gort::detail::current_g()->sched->netpoller());
      REQUIRE(p != nullptr);
      return std::to_string(p->multishot_accept()) + std::to_string(p->multishot_recv()) +
             std::to_string(p->multishot_poll());
    });
  };
  CHECK(flags(nullptr) == "110");  // Linux 6.0+ (the poller's floor)
  CHECK(flags("none") == "000");
  CHECK(flags("accept") == "100");
  CHECK(flags("recv") == "010");
  CHECK(flags("all") == "110");
  CHECK(flags("accept,poll") == "101");
  CHECK(flags("all,poll") == "101");  // poll takes precedence over recv
  CHECK(flags("bogus") == "110");     // said once on stderr
  ::unsetenv("GORT_URING_MULTISHOT");
}

TEMPLATE_TEST_CASE("signal: a notifier wakes a parked G; close() releases it", "[signal]",
                   uring_traits, epoll_traits) {
  for_procs<TestType>([](unsigned) {
    gort::signal::notifier sig{SIGUSR1, SIGUSR2};
    gort::chan<int> got(1);
    gort::go([&] { got.send(sig.wait()); });
    gort::sleep_for(2ms);
    // raise(): to this thread, which runs the handler at once. (A signal
    // sent to the process may land on an idle M asleep in a raw futex
    // syscall; TSan defers handlers until an intercepted call, so under
    // TSan it could wait forever. servers_test.py covers SIGINT from
    // outside the process.)
    ::raise(SIGUSR2);
    CHECK(*got.recv() == SIGUSR2);
    gort::go([&] {
      std::error_code ec;
      sig.wait(ec);
      got.send(ec == std::errc::bad_file_descriptor ? 1 : 0);
    });
    gort::sleep_for(2ms);
    sig.close();
    CHECK(*got.recv() == 1);
    CHECK_THROWS_AS(gort::signal::notifier({SIGKILL}), std::invalid_argument);
  });
}

// A non-blocking poll (findrunnable's, sysmon's) must leave a wakeup meant
// for the M asleep in the poller: Go reads its break fd only when it would
// block. Before the fix, epoll's poll(0) drained the eventfd and the
// blocking poll after it slept its whole timeout.
TEST_CASE("net: a non-blocking poll leaves the wakeup for the blocking one", "[net]") {
  auto check = [](gort::detail::netpoller_base& p) {
    gort::detail::glist out;
    p.wakeup();
    p.poll(0, out);
    const auto t0 = std::chrono::steady_clock::now();
    p.poll(std::chrono::nanoseconds(5s).count(), out);  // must return at once
    CHECK(std::chrono::steady_clock::now() - t0 < 1s);
    CHECK(out.empty());
  };
  std::string why;
  SECTION("epoll_pwait2") {
    auto p = gort::detail::epoll_poller::create(why, true);
    REQUIRE(p);
    check(*p);
  }
  SECTION("epoll_pwait") {
    auto p = gort::detail::epoll_poller::create(why, false);
    REQUIRE(p);
    check(*p);
  }
  SECTION("io_uring") {
    auto p = gort::detail::uring_poller::create(1, why);
    if (p) check(*p);
    else WARN("io_uring unavailable here: " << why);
  }
}

// The error_code overloads never throw for a runtime error, even when the
// poller, made on first use, cannot be: here the process is out of fds.
TEST_CASE("net: out of fds for the poller itself: the error_code overloads set ec", "[net]") {
  // The sanitizers' runtimes need fds of their own (UBSan's vptr check
  // reads /proc/self/maps): out of fds they report errors of their own.
  if (GORT_ASAN || GORT_TSAN) return;
  // epoll, and the default (io_uring where it works): out of fds is not
  // "io_uring unavailable", which would fall back to epoll for good.
  std::string why;
  const bool have_uring = gort::detail::uring_poller::create(1, why) != nullptr;
  const char* poller = GENERATE("epoll", "");
  auto r = gort_test::run_in_child([poller, have_uring] {
    ::setenv("GORT_POLLER", poller, 1);
    gort::runtime rt(gort::config{.procs = 1});
    rt.run([poller, have_uring] {
      rlimit rl{};
      ::getrlimit(RLIMIT_NOFILE, &rl);
      rl.rlim_cur = 64;
      if (::setrlimit(RLIMIT_NOFILE, &rl) != 0) std::_Exit(10);
      std::vector<int> fds;
      for (int fd; (fd = ::dup(2)) >= 0;) fds.push_back(fd);
      std::error_code ec;
      try {
        auto ln = gort::net::listen_tcp("127.0.0.1:0", ec);
        auto c = gort::net::dial_tcp("127.0.0.1:1", ec);
        auto u = gort::net::listen_udp("127.0.0.1:0", ec);
        auto f = gort::fs::file::open("/dev/null", O_RDONLY, 0644, ec);
      } catch (const std::exception& e) {
        std::fprintf(stderr, "threw: %s\n", e.what());
        std::_Exit(11);
      }
      if (ec != std::errc::too_many_files_open) std::_Exit(12);
      for (int fd : fds) ::close(fd);
      // With fds again, the poller is made and the calls work.
      auto ln = gort::net::listen_tcp("127.0.0.1:0", ec);
      if (ec || !ln) std::_Exit(13);
      const std::string name = gort::detail::current_g()->sched->netpoller()->name();
      if (*poller == '\0' && have_uring && name != "io_uring") std::_Exit(14);
    });
    std::_Exit(0);
  });
  INFO("GORT_POLLER=" << poller << "\n" << r.output);
  CHECK(WIFEXITED(r.status));
  CHECK(WEXITSTATUS(r.status) == 0);
  CHECK(r.output.find("unavailable") == std::string::npos);
}

TEST_CASE("net: outside a G the calls say so", "[net]") {
  CHECK_THROWS_AS(gort::net::listen_tcp("127.0.0.1:0"), std::logic_error);
  CHECK_THROWS_AS(gort::net::dial_tcp("127.0.0.1:1"), std::logic_error);
}

TEST_CASE("net: GORT_POLLER picks the backend", "[net]") {
  for (const char* want : {"epoll", "uring"}) {
    ::setenv("GORT_POLLER", want, 1);
    gort::runtime rt(gort::config{.procs = 1});
    const std::string name =
        rt.run([] { return std::string(gort::detail::current_g()->sched->netpoller()->name()); });
    CHECK(name == (std::strcmp(want, "epoll") == 0 ? "epoll" : "io_uring"));
  }
  ::unsetenv("GORT_POLLER");
}

// ---- fs and signal input checks ----

namespace {

// A temp file holding "ABCDEFGH"; unlinked at scope exit.
struct temp_file {
  char path[32] = "/tmp/gort_fs_check_XXXXXX";
  temp_file() {
    const int fd = ::mkstemp(path);
    REQUIRE(fd >= 0);
    REQUIRE(::write(fd, "ABCDEFGH", 8) == 8);
    ::close(fd);
  }
  ~temp_file() { ::unlink(path); }
};

// The errc a throwing call failed with (or {} if it did not throw).
template <class F>
std::error_code thrown_code(F&& f) {
  try {
    f();
  } catch (const std::system_error& e) {
    return e.code();
  }
  return {};
}

}  // namespace

TEMPLATE_TEST_CASE("fs: offsets past INT64_MAX fail with invalid_argument and change nothing",
                   "[fs]", uring_traits, epoll_traits) {
  for_procs<TestType>([](unsigned) {
    temp_file t;
    auto f = gort::fs::file::open(t.path, O_RDWR);
    std::byte two[2];
    REQUIRE(f.read(two) == 2);  // the file position is now 2
    constexpr std::uint64_t i64max = INT64_MAX;
    std::byte b[4];
    const auto xy = gort::net::as_bytes("XY");
    std::error_code ec;
    for (const std::uint64_t off : {UINT64_MAX, UINT64_MAX - 1, i64max + 1}) {
      INFO("off = " << off);
      CHECK(f.read_at(b, off, ec) == 0);
      CHECK(ec == std::errc::invalid_argument);
      CHECK(f.write_at(xy, off, ec) == 0);
      CHECK(ec == std::errc::invalid_argument);
      CHECK(thrown_code([&] { f.read_at(b, off); }) == std::errc::invalid_argument);
      CHECK(thrown_code([&] { f.write_at(xy, off); }) == std::errc::invalid_argument);
    }
    // off fits but off + size does not.
    CHECK(f.read_at(b, i64max - 3, ec) == 0);
    CHECK(ec == std::errc::invalid_argument);
    CHECK(f.write_at(xy, i64max - 1, ec) == 0);
    CHECK(ec == std::errc::invalid_argument);
    CHECK(thrown_code([&] { f.read_at(b, i64max - 3); }) == std::errc::invalid_argument);
    // The largest valid range is not refused (past EOF: 0 bytes).
    CHECK(f.read_at(b, i64max - 4, ec) == 0);
    CHECK(!ec);
    // Nothing moved, nothing written.
    CHECK(::lseek(f.native_handle(), 0, SEEK_CUR) == 2);
    std::byte all[16];
    REQUIRE(f.read_at(all, 0) == 8);
    CHECK(std::memcmp(all, "ABCDEFGH", 8) == 0);
    CHECK(f.size() == 8);
  });
}

TEMPLATE_TEST_CASE("fs: open refuses FIFOs and devices and directories and leaks no fd", "[fs]",
                   uring_traits, epoll_traits) {
  char dir[] = "/tmp/gort_fs_fifo_XXXXXX";
  REQUIRE(::mkdtemp(dir) != nullptr);
  const std::string fifo = std::string(dir) + "/fifo";
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  for_procs<TestType>([&](unsigned) {  // (for_procs checks that no fd is left open)
    std::error_code ec;
    // O_RDWR: open(2) of a FIFO does not wait for a peer then.
    auto f = gort::fs::file::open(fifo, O_RDWR, 0, ec);
    CHECK(ec == std::errc::invalid_argument);
    CHECK(!f.is_open());
    try {
      gort::fs::file::open(fifo, O_RDWR);
      FAIL("open of a FIFO did not throw");
    } catch (const std::system_error& e) {
      CHECK(e.code() == std::errc::invalid_argument);
      CHECK_THAT(e.what(), Catch::Contains("not a regular file") && Catch::Contains("FIFO"));
    }
    gort::fs::file::open("/dev/null", O_RDWR, 0, ec);
    CHECK(ec == std::errc::invalid_argument);
    gort::fs::file::open(dir, O_RDONLY, 0, ec);
    CHECK(ec == std::errc::is_a_directory);
  });
  ::unlink(fifo.c_str());
  ::rmdir(dir);
}

TEMPLATE_TEST_CASE("fs: after close() every call fails with bad_file_descriptor", "[fs]",
                   uring_traits, epoll_traits) {
  for_procs<TestType>([](unsigned) {
    temp_file t;
    auto f = gort::fs::file::open(t.path, O_RDWR);
    const int old_fd = f.native_handle();
    f.close();
    // Most likely the number f had: a file of another size, which size()
    // must not report.
    char other[] = "/tmp/gort_fs_other_XXXXXX";
    const int o = ::mkstemp(other);
    REQUIRE(o >= 0);
    REQUIRE(::ftruncate(o, 100) == 0);
    INFO("old fd " << old_fd << ", new fd " << o);
    std::error_code ec;
    CHECK(f.size(ec) == 0);
    CHECK(ec == std::errc::bad_file_descriptor);
    CHECK(thrown_code([&] { f.size(); }) == std::errc::bad_file_descriptor);
    std::byte b[4];
    f.read_at(b, 0, ec);
    CHECK(ec == std::errc::bad_file_descriptor);
    f.read(b, ec);
    CHECK(ec == std::errc::bad_file_descriptor);
    f.write_at(gort::net::as_bytes("XY"), 0, ec);
    CHECK(ec == std::errc::bad_file_descriptor);
    f.write(gort::net::as_bytes("XY"), ec);
    CHECK(ec == std::errc::bad_file_descriptor);
    f.fsync(ec);
    CHECK(ec == std::errc::bad_file_descriptor);
    f.close(ec);
    CHECK(ec == std::errc::bad_file_descriptor);
    struct stat st{};
    REQUIRE(::fstat(o, &st) == 0);
    CHECK(st.st_size == 100);
    CHECK(::lseek(o, 0, SEEK_CUR) == 0);
    ::close(o);
    ::unlink(other);
  });
}

namespace {
std::atomic<int> usr1_seen{0};
void count_usr1(int) { usr1_seen.fetch_add(1); }
int fail_on_sigusr2(int s, const struct sigaction* sa, struct sigaction* old) {
  if (s == SIGUSR2 && sa != nullptr) {
    errno = EINVAL;
    return -1;
  }
  return ::sigaction(s, sa, old);
}
}  // namespace

TEMPLATE_TEST_CASE("signal: reserved or fault or out-of-range signals are refused; a failed "
                   "sigaction is undone", "[signal]", uring_traits, epoll_traits) {
  for_procs<TestType>([](unsigned) {
    for (const int s : {0, -1, 32, 33, SIGRTMAX + 1, 65, SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP,
                        SIGSYS, SIGKILL, SIGSTOP}) {
      INFO("signal " << s);
      CHECK_THROWS_AS(gort::signal::notifier({s}), std::invalid_argument);
      CHECK_THROWS_AS(gort::signal::notifier({SIGUSR1, s}), std::invalid_argument);
    }
    CHECK_THROWS_WITH(gort::signal::notifier({32}), Catch::Contains("C library"));
    CHECK_THROWS_WITH(gort::signal::notifier({SIGSEGV}), Catch::Contains("fault"));

    // sigaction fails for SIGUSR2 after SIGUSR1's handler went in: SIGUSR1
    // gets its old handler back, and slot and counts are freed (more
    // failures than there are slots).
    struct sigaction mine{};
    mine.sa_handler = &count_usr1;
    sigemptyset(&mine.sa_mask);
    struct sigaction before{};
    REQUIRE(::sigaction(SIGUSR1, &mine, &before) == 0);
    gort::signal::detail_sig::sigaction_fn = &fail_on_sigusr2;
    for (int i = 0; i < 70; ++i) {
      try {
        gort::signal::notifier n{SIGUSR1, SIGUSR2};
        FAIL("no error");
      } catch (const std::system_error& e) {
        CHECK(e.code() == std::errc::invalid_argument);
      }
      struct sigaction cur{};
      REQUIRE(::sigaction(SIGUSR1, nullptr, &cur) == 0);
      REQUIRE(cur.sa_handler == &count_usr1);
    }
    gort::signal::detail_sig::sigaction_fn = &::sigaction;

    {  // SIGUSR1 still works, on the M's alternate signal stack
      gort::signal::notifier sig{SIGUSR1};
      struct sigaction cur{};
      REQUIRE(::sigaction(SIGUSR1, nullptr, &cur) == 0);
      CHECK((cur.sa_flags & SA_ONSTACK) != 0);
      gort::chan<int> got(1);
      gort::go([&] { got.send(sig.wait()); });
      gort::sleep_for(2ms);
      ::raise(SIGUSR1);
      CHECK(*got.recv() == SIGUSR1);
      CHECK(usr1_seen.load() == 0);
    }
    {  // and so does the first real-time signal
      gort::signal::notifier sig{SIGRTMIN};
      ::raise(SIGRTMIN);
      CHECK(sig.wait() == SIGRTMIN);
    }
    ::raise(SIGUSR1);  // the handler from before is back
    CHECK(usr1_seen.exchange(0) == 1);
    ::sigaction(SIGUSR1, &before, nullptr);
  });
}
