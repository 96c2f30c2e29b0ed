// bench/echo_load.cpp: a closed-loop TCP echo load generator.
//
//   ./build/bench/echo_load --addr 127.0.0.1:7000 --conns 64 --duration 5 --warmup 1
//   -> RESULT workload=echo conns=64 threads=2 msg_bytes=64 duration_s=5.000
//      msgs=... msgs_per_s=... p50_us=... p99_us=... p999_us=... max_us=...
//      all_msgs=... check=ok
//
// What it measures. --conns TCP connections (TCP_NODELAY), spread round
// robin over --threads threads. Each connection keeps exactly one message
// of --msg-bytes (default 64) outstanding: it writes the message, waits for
// every byte of the echo, checks it, and writes the next one at once
// (closed loop, like wrk). A message's latency is write() to the read()
// that completes its echo, on CLOCK_MONOTONIC. The first --warmup seconds
// are not counted; then, for --duration seconds, every completed echo
// counts towards msgs_per_s and its latency towards the percentiles
// (exact: every sample is kept and sorted, no histogram buckets).
//
// What it checks. Every message carries its connection number, its
// sequence number and a pattern derived from both; every echoed byte is
// compared with what was sent. A wrong byte, a byte too many, an EOF or a
// reset fails the run: it prints check=FAIL reason=... with no figures and
// exits 1. So a server that drops, reorders or mixes up connections cannot
// post a number.
//
// Why it does not use gort. It is the yardstick for gort's servers and for
// Go's, so it is plain C++20 on epoll (level-triggered, one epoll and one
// thread per --threads), with no code shared with either side. One thread
// can drive a few hundred thousand echoes a second; on a small machine it
// shares the CPUs with the server under test, which bench/net_bench says
// in its output.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>
#include <thread>
#include <vector>

namespace {

std::int64_t now_ns() {
  timespec ts;
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

struct options {
  std::string addr = "127.0.0.1:7000";
  int conns = 64;
  int threads = 2;
  int msg_bytes = 64;
  double duration_s = 5;
  double warmup_s = 1;
};

[[noreturn]] void usage(const char* argv0) {
  std::fprintf(stderr,
               "usage: %s [--addr host:port] [--conns N] [--threads T] [--duration S]\n"
               "          [--warmup S] [--msg-bytes B]\n",
               argv0);
  std::exit(2);
}

options parse(int argc, char** argv) {
  options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (i + 1 >= argc) usage(argv[0]);
    const char* v = argv[++i];
    if (a == "--addr") o.addr = v;
    else if (a == "--conns") o.conns = std::atoi(v);
    else if (a == "--threads") o.threads = std::atoi(v);
    else if (a == "--duration") o.duration_s = std::atof(v);
    else if (a == "--warmup") o.warmup_s = std::atof(v);
    else if (a == "--msg-bytes") o.msg_bytes = std::atoi(v);
    else usage(argv[0]);
  }
  if (o.conns < 1 || o.threads < 1 || o.duration_s <= 0 || o.warmup_s < 0 || o.msg_bytes < 16 ||
      o.msg_bytes > 65536)
    usage(argv[0]);
  o.threads = std::min(o.threads, o.conns);
  return o;
}

// "host:port" or "[v6]:port" -> a sockaddr (getaddrinfo, so names work).
bool resolve(const std::string& s, sockaddr_storage& out, socklen_t& len) {
  std::string host, port;
  if (!s.empty() && s[0] == '[') {
    const auto close = s.find(']');
    if (close == std::string::npos || close + 1 >= s.size() || s[close + 1] != ':') return false;
    host = s.substr(1, close - 1);
    port = s.substr(close + 2);
  } else {
    const auto colon = s.rfind(':');
    if (colon == std::string::npos) return false;
    host = s.substr(0, colon);
    port = s.substr(colon + 1);
  }
  if (host.empty()) host = "127.0.0.1";
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (::getaddrinfo(host.c_str(), port.c_str(), &hints, &res) != 0 || res == nullptr) return false;
  std::memcpy(&out, res->ai_addr, res->ai_addrlen);
  len = res->ai_addrlen;
  ::freeaddrinfo(res);
  return true;
}

// The bytes of message `seq` on connection `id`: id and seq in the first
// 16 bytes, then a pattern of both, so that a byte from another message or
// another connection is caught.
void fill_message(std::uint8_t* p, int n, std::uint64_t id, std::uint64_t seq) {
  std::memcpy(p, &id, 8);
  std::memcpy(p + 8, &seq, 8);
  std::uint64_t x = (id * 0x9E3779B97F4A7C15ull) ^ (seq * 0xBF58476D1CE4E5B9ull) ^ 0x94D049BB133111EBull;
  for (int i = 16; i < n; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    p[i] = static_cast<std::uint8_t>(x);
  }
}

struct connection {
  int fd = -1;
  std::uint64_t id = 0;
  std::uint64_t seq = 0;
  std::int64_t sent_at = 0;
  int written = 0;  // bytes of the current message written so far
  int got = 0;      // bytes of its echo read so far
  bool want_out = false;
  std::vector<std::uint8_t> msg, in;
};

struct worker_result {
  std::vector<std::uint32_t> lat_ns;  // measured window only; saturates at ~4.29 s
  std::uint64_t msgs = 0;             // echoes completed in the window
  std::uint64_t all_msgs = 0;         // including warmup
  std::string fail;                   // empty: ok
};

std::atomic<bool> g_failed{false};

// One thread: its connections on its own epoll, until `end_ns`.
void worker(const options& o, std::vector<connection>& cs, std::int64_t start_ns,
            std::int64_t end_ns, worker_result& r) {
  const int ep = ::epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) {
    r.fail = std::string("epoll_create1: ") + std::strerror(errno);
    g_failed = true;
    return;
  }
  const auto fail = [&](const connection& c, const char* what, int err) {
    char b[256];
    std::snprintf(b, sizeof b, "conn %llu seq %llu: %s%s%s", static_cast<unsigned long long>(c.id),
                  static_cast<unsigned long long>(c.seq), what, err ? ": " : "",
                  err ? std::strerror(err) : "");
    r.fail = b;
    g_failed.store(true, std::memory_order_relaxed);
  };
  // Writes what is left of c's message; arms EPOLLOUT if the socket is full.
  const auto push = [&](connection& c) -> bool {
    while (c.written < o.msg_bytes) {
      const ssize_t n = ::send(c.fd, c.msg.data() + c.written, o.msg_bytes - c.written, MSG_NOSIGNAL);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno != EAGAIN) {
          fail(c, "send", errno);
          return false;
        }
        if (!c.want_out) {
          epoll_event ev{};
          ev.events = EPOLLIN | EPOLLOUT;
          ev.data.ptr = &c;
          ::epoll_ctl(ep, EPOLL_CTL_MOD, c.fd, &ev);
          c.want_out = true;
        }
        return true;
      }
      c.written += static_cast<int>(n);
    }
    if (c.want_out) {
      epoll_event ev{};
      ev.events = EPOLLIN;
      ev.data.ptr = &c;
      ::epoll_ctl(ep, EPOLL_CTL_MOD, c.fd, &ev);
      c.want_out = false;
    }
    return true;
  };
  const auto next = [&](connection& c) -> bool {
    ++c.seq;
    fill_message(c.msg.data(), o.msg_bytes, c.id, c.seq);
    c.written = c.got = 0;
    c.sent_at = now_ns();
    return push(c);
  };
  for (auto& c : cs) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.ptr = &c;
    if (::epoll_ctl(ep, EPOLL_CTL_ADD, c.fd, &ev) != 0) {
      fail(c, "epoll_ctl", errno);
      ::close(ep);
      return;
    }
  }
  for (auto& c : cs)
    if (!next(c)) {
      ::close(ep);
      return;
    }
  r.lat_ns.reserve(1 << 20);
  std::vector<epoll_event> evs(std::max<std::size_t>(cs.size(), 1));
  while (r.fail.empty() && !g_failed.load(std::memory_order_relaxed)) {
    std::int64_t t = now_ns();
    if (t >= end_ns) break;
    const int timeout_ms = static_cast<int>(std::min<std::int64_t>((end_ns - t) / 1'000'000 + 1, 100));
    const int n = ::epoll_wait(ep, evs.data(), static_cast<int>(evs.size()), timeout_ms);
    if (n < 0) {
      if (errno == EINTR) continue;
      r.fail = std::string("epoll_wait: ") + std::strerror(errno);
      break;
    }
    for (int i = 0; i < n && r.fail.empty(); ++i) {
      connection& c = *static_cast<connection*>(evs[i].data.ptr);
      if ((evs[i].events & EPOLLOUT) && !push(c)) break;
      if (!(evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))) continue;
      // Read one byte more than the echo needs: a surplus byte is an error.
      const ssize_t m = ::recv(c.fd, c.in.data() + c.got, o.msg_bytes + 1 - c.got, 0);
      if (m < 0) {
        if (errno == EAGAIN || errno == EINTR) continue;
        fail(c, "recv", errno);
        break;
      }
      if (m == 0) {
        fail(c, "EOF from the server", 0);
        break;
      }
      if (c.got + m > c.written) {
        fail(c, "the server sent bytes that were never sent to it", 0);
        break;
      }
      if (std::memcmp(c.in.data() + c.got, c.msg.data() + c.got, static_cast<std::size_t>(m)) != 0) {
        fail(c, "echoed bytes differ from the message", 0);
        break;
      }
      c.got += static_cast<int>(m);
      if (c.got < o.msg_bytes) continue;
      t = now_ns();
      ++r.all_msgs;
      if (t >= start_ns && t < end_ns) {
        ++r.msgs;
        const std::int64_t lat = t - c.sent_at;
        r.lat_ns.push_back(lat > 0xFFFFFFFFll ? 0xFFFFFFFFu : static_cast<std::uint32_t>(lat));
      }
      if (!next(c)) break;
    }
  }
  ::close(ep);
}

double percentile_us(const std::vector<std::uint32_t>& sorted, double q) {
  if (sorted.empty()) return 0;
  std::size_t i = static_cast<std::size_t>(q * static_cast<double>(sorted.size()));
  if (i >= sorted.size()) i = sorted.size() - 1;
  return sorted[i] / 1000.0;
}

}  // namespace

int main(int argc, char** argv) {
  const options o = parse(argc, argv);
  sockaddr_storage sa{};
  socklen_t salen = 0;
  if (!resolve(o.addr, sa, salen)) {
    std::printf("RESULT workload=echo check=FAIL reason=bad_address addr=%s\n", o.addr.c_str());
    return 1;
  }
  // Connect every connection up front (blocking), then go non-blocking.
  std::vector<std::vector<connection>> per(static_cast<std::size_t>(o.threads));
  for (int i = 0; i < o.conns; ++i) {
    connection c;
    c.id = static_cast<std::uint64_t>(i);
    c.msg.resize(static_cast<std::size_t>(o.msg_bytes));
    c.in.resize(static_cast<std::size_t>(o.msg_bytes) + 1);
    c.fd = ::socket(sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c.fd < 0 || ::connect(c.fd, reinterpret_cast<sockaddr*>(&sa), salen) != 0) {
      std::printf("RESULT workload=echo check=FAIL reason=connect conn=%d error=\"%s\"\n", i,
                  std::strerror(errno));
      return 1;
    }
    const int one = 1;
    ::setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    const int fl = ::fcntl(c.fd, F_GETFL);
    ::fcntl(c.fd, F_SETFL, fl | O_NONBLOCK);
    per[static_cast<std::size_t>(i % o.threads)].push_back(std::move(c));
  }
  const std::int64_t t0 = now_ns();
  const std::int64_t start_ns = t0 + static_cast<std::int64_t>(o.warmup_s * 1e9);
  const std::int64_t end_ns = start_ns + static_cast<std::int64_t>(o.duration_s * 1e9);
  std::vector<worker_result> res(static_cast<std::size_t>(o.threads));
  {
    std::vector<std::jthread> ts;
    for (int t = 0; t < o.threads; ++t)
      ts.emplace_back([&, t] { worker(o, per[static_cast<std::size_t>(t)], start_ns, end_ns, res[static_cast<std::size_t>(t)]); });
  }
  for (auto& v : per)
    for (auto& c : v) ::close(c.fd);

  std::vector<std::uint32_t> lat;
  std::uint64_t msgs = 0, all_msgs = 0;
  for (auto& r : res) {
    if (!r.fail.empty()) {
      std::printf("RESULT workload=echo conns=%d check=FAIL reason=\"%s\"\n", o.conns, r.fail.c_str());
      return 1;
    }
    msgs += r.msgs;
    all_msgs += r.all_msgs;
    lat.insert(lat.end(), r.lat_ns.begin(), r.lat_ns.end());
  }
  if (msgs == 0) {
    std::printf("RESULT workload=echo conns=%d check=FAIL reason=\"no echo completed in the window\"\n",
                o.conns);
    return 1;
  }
  std::sort(lat.begin(), lat.end());
  std::printf(
      "RESULT workload=echo conns=%d threads=%d msg_bytes=%d duration_s=%.3f msgs=%llu "
      "msgs_per_s=%.1f p50_us=%.1f p99_us=%.1f p999_us=%.1f max_us=%.1f all_msgs=%llu check=ok\n",
      o.conns, o.threads, o.msg_bytes, o.duration_s, static_cast<unsigned long long>(msgs),
      static_cast<double>(msgs) / o.duration_s, percentile_us(lat, 0.50), percentile_us(lat, 0.99),
      percentile_us(lat, 0.999), lat.back() / 1000.0, static_cast<unsigned long long>(all_msgs));
  return 0;
}
