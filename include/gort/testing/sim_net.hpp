// gort/testing/sim_net.hpp: the in-memory network of a deterministic
// runtime (gort::testing::sim_runtime), behind the gort::net API.
//
// In a sim_runtime, gort::net::listen_tcp, dial_tcp, listen_udp and every
// op on the objects they return go to the runtime's sim_network instead of
// the kernel, so server and client code runs unchanged:
//
//   gort::testing::sim_runtime rt({.seed = 7, .net = {.latency = 5ms, .max_read = 3}});
//   rt.run([] {
//     auto ln = gort::net::listen_tcp("127.0.0.1:7000");
//     gort::go([&] { auto c = ln.accept(); /* the server's handler */ });
//     auto c = gort::net::dial_tcp("127.0.0.1:7000");   // 5 ms of virtual time
//     c.write(gort::net::as_bytes("hello"));             // read back 1-3 bytes at a time
//   });
//
// The model, per connection: two byte streams, each a queue of segments
// (one per write) that become readable `latency` (+ a seeded draw in
// [0, jitter]) after the write, in write order. At most `window` bytes
// per direction are in flight or unread; a writer waits beyond that (flow
// control, so a peer that stops reading blocks the writer, as on a real
// socket). A read returns what has arrived, at most `max_read` bytes when
// set (a seeded draw in [1, max_read]: the partial reads real sockets give
// under load). Everything is driven by the runtime's virtual clock and
// seed, so the same seed gives the same bytes at the same virtual times.
//
// Errors are those of a kernel socket, as std::error_code (system
// category): dialing an address nobody listens on, or a listener whose
// backlog is full, is connection_refused; reset(c) makes both ends'
// pending and later ops fail with connection_reset (a peer that vanished);
// writing after the peer closed, or after shutdown_write, is broken_pipe;
// the peer's close or shutdown_write is EOF (0) once its data is read;
// deadlines give timed_out; an op on a closed object bad_file_descriptor.
// Stricter than TCP in one place: a write to a peer that has closed fails
// at once (TCP lets one write through and fails the next).
//
// Names: numeric addresses, "localhost" (127.0.0.1) and names added with
// add_host(); anything else fails as getaddrinfo does (EAI_NONAME).
// Listening on ":p" or "0.0.0.0:p" takes dials to any IPv4 address at
// port p ("[::]:p": any IPv6 address). Port 0 picks a free port.
//
// UDP: listen_udp binds an address; send_to delivers to the socket bound
// there after the latency, or drops the datagram (nobody bound, the
// receiver's window full, or a seeded draw below udp_loss).
//
// Not modelled: Nagle, the TCP handshake beyond one latency, RST on close
// with unread data, IPv4-mapped IPv6, fragmentation. gort::fs and
// gort::signal still use the kernel.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "../detail/config.hpp"
#include "../detail/runtime2.hpp"
#include "../detail/spinlock.hpp"
#include "../detail/timers.hpp"
#include "../net.hpp"
#include "../time.hpp"

GORT_BEGIN_NAMESPACE
namespace testing {

// The network's knobs (docs/testing.md has the table). Checked when set:
// negative durations or udp_loss outside [0, 1] are std::invalid_argument.
struct sim_net_options {
  std::chrono::nanoseconds latency{0};  // one way: per write, and per dial
  std::chrono::nanoseconds jitter{0};   // + a seeded draw in [0, jitter] per write (order kept)
  std::size_t max_read = 0;             // > 0: a read returns 1..max_read bytes (seeded)
  std::size_t window = 64 * 1024;       // bytes in flight or unread, per direction
  std::size_t backlog = 128;            // dials waiting for accept(); beyond: refused
  double udp_loss = 0;                  // the chance that a datagram is dropped (seeded)
};

namespace detail_simnet {

inline const sim_net_options& checked(const sim_net_options& o) {
  if (o.latency.count() < 0 || o.jitter.count() < 0)
    throw std::invalid_argument("gort::testing::sim_net_options: latency and jitter must be >= 0");
  if (!(o.udp_loss >= 0 && o.udp_loss <= 1))
    throw std::invalid_argument("gort::testing::sim_net_options: udp_loss must be in [0, 1]");
  return o;
}

using ::gort::detail::g_base;
using ::gort::detail::spinlock;
using ::gort::detail::timer_node;

struct waiter;

// Waiters of one kind on one socket (readers, writers, acceptors), FIFO.
struct wlist {
  waiter* head = nullptr;
  waiter* tail = nullptr;
};

// One parked G. On its stack. Exactly one party readies it: the timer's fn
// whenever it runs (the deadline came, or notify found it firing), else
// the notify that took it off its list (see core::notify).
struct waiter : timer_node {
  struct core* c = nullptr;
  wlist* list = nullptr;  // null once taken off
  g_base* g = nullptr;
  bool armed = false;     // the deadline timer was added
  waiter* prev = nullptr;
  waiter* next = nullptr;
};

inline void push(wlist& l, waiter* w) {
  w->list = &l;
  w->next = nullptr;
  w->prev = l.tail;
  if (l.tail != nullptr) l.tail->next = w;
  else l.head = w;
  l.tail = w;
}
inline void remove(waiter* w) {
  wlist& l = *w->list;
  if (w->prev != nullptr) w->prev->next = w->next;
  else l.head = w->next;
  if (w->next != nullptr) w->next->prev = w->prev;
  else l.tail = w->prev;
  w->list = nullptr;
  w->prev = w->next = nullptr;
}

inline std::uint64_t splitmix(std::uint64_t& x) {
  std::uint64_t z = (x += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// What the network's sockets share. mu guards everything in it and in the
// sockets; a G holds it only between parks (wait releases it while parked).
struct core {
  spinlock mu;
  sim_net_options opt;
  std::uint64_t rng;
  std::map<std::string, std::string> hosts;              // name -> numeric IP
  std::map<std::string, class listener_socket*> listeners;  // "ip:port" -> listener
  std::map<std::string, class udp_socket*> udps;            // "ip:port" -> bound socket
  std::map<std::string, int> client_ports;                  // "ip:port" of live dialers
  std::uint16_t next_port = 40000;
  // The runtime is gone (sim_network's destructor): the Gs still listed as
  // waiters were abandoned after a deadlock report, their stacks freed;
  // notify must not touch them (a conn destroyed later closes through here).
  bool dead = false;
  std::uint64_t conns = 0;  // stats: connections made
  std::uint64_t bytes = 0;  // stats: bytes read by the other end

  explicit core(std::uint64_t seed, const sim_net_options& o)
      : opt(checked(o)), rng(seed ^ 0x6e65747e6e6574ull) {}

  std::int64_t now() const noexcept { return ::gort::detail::sched_nanotime(); }
  std::uint64_t draw() noexcept { return splitmix(rng); }
  // When bytes written now arrive: latency + jitter, never before `after`
  // (earlier writes on the stream), so the stream keeps its order.
  std::int64_t arrival(std::int64_t after) {
    std::int64_t at = now() + opt.latency.count();
    if (opt.jitter.count() > 0)
      at += static_cast<std::int64_t>(draw() % (static_cast<std::uint64_t>(opt.jitter.count()) + 1));
    return std::max(at, after);
  }

  static void fire(timer_node* t) {  // the deadline: no notify came first
    auto* w = static_cast<waiter*>(t);
    g_base* gp;
    {
      std::lock_guard<spinlock> lk(w->c->mu);
      if (w->list != nullptr) remove(w);
      gp = w->g;
    }
    gp->sched->goready(gp, false);  // w may be gone from here on
  }
  static bool park_unlock(g_base* gp, void* arg) {
    auto* w = static_cast<waiter*>(arg);
    if (w->when != 0) {
      gp->sched->add_timer(w);
      w->armed = true;
    }
    w->c->mu.unlock();
    return true;
  }

  // mu held. Parks the calling G until notify(l) or the runtime's clock
  // reaches until (0: no deadline); mu is held again on return. The caller
  // re-checks its condition (a wakeup is a hint, not a promise).
  void wait(wlist& l, std::int64_t until, const char* reason) {
    waiter w;
    w.c = this;
    w.g = ::gort::detail::current_g();
    w.when = until;
    w.fn = &fire;
    push(l, &w);
    w.g->sched->set_wait_object(&l);  // the deadlock report names the list, not w
    w.g->sched->gopark(&park_unlock, &w, reason);
    mu.lock();
  }

  // mu held. Takes every waiter off l and readies it, unless its timer is
  // already firing (del_timer fails), in which case fire() readies it.
  void notify(wlist& l) {
    if (dead) {
      l.head = l.tail = nullptr;
      return;
    }
    while (waiter* w = l.head) {
      remove(w);
      g_base* gp = w->g;
      if (!w->armed || gp->sched->del_timer(w)) gp->sched->goready(gp);
    }
  }
};

inline std::string key(const net::address& a) { return a.to_string(); }

// Ops that may park need a G (as the kernel path: gort::net's calls must
// run on one).
inline void require_g(const char* what) {
  if (::gort::detail::current_g() == nullptr)
    throw std::logic_error(std::string("gort::testing::sim_network: ") + what +
                           " must be called from inside a G of the sim runtime");
}

inline net::address with_port(const net::address& a, std::uint16_t port) {
  net::address r = a;
  if (r.family() == AF_INET) reinterpret_cast<sockaddr_in*>(r.data())->sin_port = htons(port);
  else if (r.family() == AF_INET6) reinterpret_cast<sockaddr_in6*>(r.data())->sin6_port = htons(port);
  return r;
}
inline net::address any_of(const net::address& a) {  // 0.0.0.0 / [::], a's port
  net::address any;
  std::string ip = a.family() == AF_INET6 ? "::" : "0.0.0.0";
  ::gort::net::detail_net::parse_numeric(ip, a.port(), any);
  return any;
}
inline bool is_any(const net::address& a) { return key(a) == key(any_of(a)); }
inline net::address loopback_of(const net::address& a, std::uint16_t port) {
  net::address r;
  ::gort::net::detail_net::parse_numeric(a.family() == AF_INET6 ? "::1" : "127.0.0.1", port, r);
  return r;
}

// mu held: whether a bind of a (TCP: listeners and dialers; UDP: bound
// sockets) collides with one in use: the same address, or the same port
// and family where either side is the wildcard (as the kernel without
// SO_REUSEPORT).
template <class Map>
bool in_use(const Map& m, const net::address& a) {
  if (m.count(key(a)) != 0) return true;
  for (const auto& [k, v] : m) {
    (void)v;
    net::address b;
    std::string host;
    std::uint16_t port = 0;
    if (!::gort::net::detail_net::split_host_port(k, host, port) ||
        !::gort::net::detail_net::parse_numeric(host, port, b))
      continue;
    if (b.family() == a.family() && b.port() == a.port() && (is_any(a) || is_any(b))) return true;
  }
  return false;
}
inline bool tcp_in_use(core& c, const net::address& a) {
  return in_use(c.listeners, a) || in_use(c.client_ports, a);
}

// mu held: a port that no socket of the kind uses on a's IP; 0 if none.
inline std::uint16_t free_port(core& c, const net::address& a, bool udp) {
  for (int tries = 0; tries < 65536 - 40000; ++tries) {
    const std::uint16_t p = c.next_port;
    c.next_port = c.next_port == 65535 ? 40000 : static_cast<std::uint16_t>(c.next_port + 1);
    const net::address x = with_port(a, p);
    if (udp ? !in_use(c.udps, x) : !tcp_in_use(c, x)) return p;
  }
  return 0;
}

// One direction of a connection.
struct segment {
  std::int64_t at;  // readable from this time on
  std::string bytes;
  std::size_t off = 0;
};
struct stream {
  std::deque<segment> segs;
  std::size_t queued = 0;       // bytes in segs
  std::int64_t last_at = 0;     // arrival of the last segment
  bool fin = false;             // the writer is done: EOF after segs
  std::int64_t fin_at = 0;
  bool reset = false;           // RST: every op fails with ECONNRESET
  wlist readers, writers;
};

// A connection's state, shared by its two ends: dir[s] carries what side s
// writes.
struct connection {
  stream dir[2];
  bool closed[2] = {false, false};
};

// What the three kinds of socket share: their network, their local
// address, and the closed flag (c_->mu).
class sim_socket : public ::gort::detail::vsocket {
 public:
  bool is_closed() const noexcept override {
    std::lock_guard<spinlock> lk(c_->mu);
    return closed_;
  }
  net::address local_addr() const override { return local_; }

 protected:
  sim_socket(std::shared_ptr<core> c, net::address local) : c_(std::move(c)), local_(local) {}
  std::shared_ptr<core> c_;
  const net::address local_;
  bool closed_ = false;  // c_->mu
};

class stream_socket final : public sim_socket {
 public:
  stream_socket(std::shared_ptr<core> c, std::shared_ptr<connection> st, int side, net::address local,
                net::address remote)
      : sim_socket(std::move(c), local), st_(std::move(st)), side_(side), remote_(remote) {}
  const core* owner() const noexcept { return c_.get(); }

  std::int64_t read(std::byte* buf, std::size_t len, std::int64_t deadline) override {
    require_g("read");
    std::unique_lock<spinlock> lk(c_->mu);
    for (;;) {
      if (closed_) return -EBADF;
      stream& in = st_->dir[1 - side_];
      if (in.reset) return -ECONNRESET;
      const std::int64_t now = c_->now();
      if (deadline != 0 && now >= deadline) return -ETIMEDOUT;  // first, as the kernel backends
      if (!in.segs.empty() && in.segs.front().at <= now) {
        std::size_t cap = len;
        if (c_->opt.max_read != 0)
          cap = std::min(cap, static_cast<std::size_t>(1 + c_->draw() % c_->opt.max_read));
        std::size_t n = 0;
        while (n < cap && !in.segs.empty() && in.segs.front().at <= now) {
          segment& s = in.segs.front();
          const std::size_t k = std::min(cap - n, s.bytes.size() - s.off);
          std::memcpy(buf + n, s.bytes.data() + s.off, k);
          n += k;
          s.off += k;
          if (s.off == s.bytes.size()) in.segs.pop_front();
        }
        in.queued -= n;
        c_->bytes += n;
        c_->notify(in.writers);  // room in the window
        return static_cast<std::int64_t>(n);
      }
      if (in.segs.empty() && in.fin && in.fin_at <= now) return 0;  // EOF
      std::int64_t until = deadline;
      const std::int64_t next = !in.segs.empty() ? in.segs.front().at : in.fin ? in.fin_at : 0;
      if (next != 0 && (until == 0 || next < until)) until = next;
      c_->wait(in.readers, until, "IO wait");
    }
  }

  std::int64_t write(const std::byte* buf, std::size_t len, std::int64_t deadline) override {
    require_g("write");
    std::unique_lock<spinlock> lk(c_->mu);
    for (;;) {
      if (closed_) return -EBADF;
      stream& out = st_->dir[side_];
      if (out.reset) return -ECONNRESET;
      if (out.fin || st_->closed[1 - side_]) return -EPIPE;
      if (deadline != 0 && c_->now() >= deadline) return -ETIMEDOUT;
      const std::size_t window = std::max<std::size_t>(c_->opt.window, 1);
      if (out.queued < window) {
        const std::size_t n = std::min(len, window - out.queued);
        const std::int64_t at = c_->arrival(out.last_at);
        out.segs.push_back({at, std::string(reinterpret_cast<const char*>(buf), n)});
        out.queued += n;
        out.last_at = at;
        c_->notify(out.readers);
        return static_cast<std::int64_t>(n);
      }
      c_->wait(out.writers, deadline, "IO wait");
    }
  }

  int shutdown_write() override {
    std::lock_guard<spinlock> lk(c_->mu);
    if (closed_) return -EBADF;
    finish_locked();
    return 0;
  }

  int close() override {
    std::lock_guard<spinlock> lk(c_->mu);
    if (closed_) return -EBADF;
    closed_ = true;
    st_->closed[side_] = true;
    if (side_ == 0) {  // the dialer's port is free again
      auto it = c_->client_ports.find(key(local_));
      if (it != c_->client_ports.end() && --it->second == 0) c_->client_ports.erase(it);
    }
    finish_locked();
    stream& in = st_->dir[1 - side_];
    in.segs.clear();  // never read now
    in.queued = 0;
    c_->notify(in.readers);  // ours: they see closed_
    c_->notify(in.writers);  // the peer's: broken pipe
    c_->notify(st_->dir[side_].writers);
    return 0;
  }
  net::address remote_addr() const override { return remote_; }

  // mu held: RST (sim_network::reset).
  void reset_locked() {
    for (stream& s : st_->dir) {
      s.reset = true;
      s.segs.clear();
      s.queued = 0;
      c_->notify(s.readers);
      c_->notify(s.writers);
    }
  }

 private:
  void finish_locked() {  // FIN after what was written
    stream& out = st_->dir[side_];
    if (out.fin) return;
    out.fin = true;
    out.fin_at = c_->arrival(out.last_at);
    c_->notify(out.readers);
  }

  std::shared_ptr<connection> st_;
  const int side_;
  const net::address remote_;
};

class listener_socket final : public sim_socket {
 public:
  listener_socket(std::shared_ptr<core> c, net::address local) : sim_socket(std::move(c), local) {}

  std::int64_t accept(std::shared_ptr<vsocket>& out, std::int64_t deadline) override {
    require_g("accept");
    std::unique_lock<spinlock> lk(c_->mu);
    for (;;) {
      if (closed_) return -EBADF;
      if (deadline != 0 && c_->now() >= deadline) return -ETIMEDOUT;
      if (!backlog_.empty()) {
        out = std::move(backlog_.front());
        backlog_.pop_front();
        return 0;
      }
      c_->wait(acceptors_, deadline, "IO wait");
    }
  }
  // mu held: a dial's server end, or false if the backlog is full.
  bool enqueue_locked(std::shared_ptr<stream_socket> s) {
    if (backlog_.size() >= c_->opt.backlog) return false;
    backlog_.push_back(std::move(s));
    c_->notify(acceptors_);
    return true;
  }

  int close() override {
    std::lock_guard<spinlock> lk(c_->mu);
    if (closed_) return -EBADF;
    closed_ = true;
    c_->listeners.erase(key(local_));
    for (auto& s : backlog_) static_cast<stream_socket*>(s.get())->reset_locked();
    backlog_.clear();  // their dialers see connection_reset
    c_->notify(acceptors_);
    return 0;
  }

 private:
  std::deque<std::shared_ptr<vsocket>> backlog_;  // c_->mu
  wlist acceptors_;
};

class udp_socket final : public sim_socket {
 public:
  static constexpr std::size_t max_datagram = 65507;  // IPv4 UDP payload limit
  udp_socket(std::shared_ptr<core> c, net::address local) : sim_socket(std::move(c), local) {}

  std::int64_t send_to(const std::byte* buf, std::size_t len, const net::address& to) override {
    std::lock_guard<spinlock> lk(c_->mu);
    if (closed_) return -EBADF;
    if (to.family() != AF_INET && to.family() != AF_INET6) return -EDESTADDRREQ;
    if (to.family() != local_.family()) return -EAFNOSUPPORT;
    if (len > max_datagram) return -EMSGSIZE;
    auto it = c_->udps.find(key(to));
    if (it == c_->udps.end()) it = c_->udps.find(key(any_of(to)));
    const bool lost = c_->opt.udp_loss > 0 &&
                      static_cast<double>(c_->draw() >> 11) * 0x1.0p-53 < c_->opt.udp_loss;
    // A socket bound to the wildcard sends from the loopback address.
    const net::address from = is_any(local_) ? loopback_of(local_, local_.port()) : local_;
    if (it != c_->udps.end() && !lost) it->second->deliver_locked(buf, len, from);
    return static_cast<std::int64_t>(len);  // sent; maybe dropped on the way, as UDP does
  }

  std::int64_t recv_from(std::byte* buf, std::size_t len, net::address& from,
                         std::int64_t deadline) override {
    require_g("recv_from");
    std::unique_lock<spinlock> lk(c_->mu);
    for (;;) {
      if (closed_) return -EBADF;
      const std::int64_t now = c_->now();
      if (deadline != 0 && now >= deadline) return -ETIMEDOUT;
      if (!q_.empty() && q_.front().at <= now) {
        const datagram& d = q_.front();
        const std::size_t n = std::min(len, d.bytes.size());  // truncated, as recvfrom(2)
        std::memcpy(buf, d.bytes.data(), n);
        from = d.from;
        queued_ -= d.bytes.size();
        c_->bytes += n;
        q_.pop_front();
        return static_cast<std::int64_t>(n);
      }
      std::int64_t until = deadline;
      if (!q_.empty() && (until == 0 || q_.front().at < until)) until = q_.front().at;
      c_->wait(readers_, until, "IO wait");
    }
  }

  // mu held.
  void deliver_locked(const std::byte* buf, std::size_t len, const net::address& from) {
    if (closed_ || queued_ + len > c_->opt.window) return;  // the receive buffer is full: dropped
    const std::int64_t at = c_->arrival(q_.empty() ? 0 : q_.back().at);
    q_.push_back({at, std::string(reinterpret_cast<const char*>(buf), len), from});
    queued_ += len;
    c_->notify(readers_);
  }

  int close() override {
    std::lock_guard<spinlock> lk(c_->mu);
    if (closed_) return -EBADF;
    closed_ = true;
    c_->udps.erase(key(local_));
    q_.clear();
    c_->notify(readers_);
    return 0;
  }

 private:
  struct datagram {
    std::int64_t at;
    std::string bytes;
    net::address from;
  };
  std::deque<datagram> q_;  // c_->mu
  std::size_t queued_ = 0;  // c_->mu
  wlist readers_;
};

}  // namespace detail_simnet

// The network of one sim_runtime (sim_runtime::net()). Its controls may be
// called from the runtime's Gs, or from the test before run().
class sim_network final : public ::gort::detail::vnet_base {
 public:
  sim_network(std::uint64_t seed, const sim_net_options& o)
      : c_(std::make_shared<detail_simnet::core>(seed, o)) {}
  // After the runtime (see detail_sim::net_holder): sockets that outlive
  // it still close cleanly, and wake nobody.
  ~sim_network() override {
    std::lock_guard<detail::spinlock> lk(c_->mu);
    c_->dead = true;
  }
  sim_network(const sim_network&) = delete;
  sim_network& operator=(const sim_network&) = delete;

  const sim_net_options& options() const noexcept { return c_->opt; }
  // New values apply to writes, reads and dials from now on (a writer
  // already waiting for room in the old window waits for the reader).
  void set_options(const sim_net_options& o) {
    detail_simnet::checked(o);
    std::lock_guard<detail::spinlock> lk(c_->mu);
    c_->opt = o;
  }

  // dial_tcp("name:port") and the other calls resolve name to ip.
  void add_host(std::string name, std::string ip) {
    net::address probe;
    if (!net::detail_net::parse_numeric(ip, 0, probe) || ip.empty())
      throw std::invalid_argument("gort::testing::sim_network::add_host(\"" + name + "\", \"" + ip +
                                  "\"): not a numeric IPv4 or IPv6 address");
    std::lock_guard<detail::spinlock> lk(c_->mu);
    c_->hosts[std::move(name)] = std::move(ip);
  }

  // A reset (RST) of the connection c is one end of: both ends' blocked and
  // later reads and writes fail with connection_reset; unread data is lost.
  void reset(const net::conn& c) {
    auto* s = dynamic_cast<detail_simnet::stream_socket*>(c.in_memory_socket());
    if (s == nullptr || s->owner() != c_.get())
      throw std::invalid_argument("gort::testing::sim_network::reset: not a connection of this network");
    std::lock_guard<detail::spinlock> lk(c_->mu);
    s->reset_locked();
  }

  // Connections made, and bytes received by the other end (TCP and UDP),
  // since the network was made.
  std::uint64_t connections() const {
    std::lock_guard<detail::spinlock> lk(c_->mu);
    return c_->conns;
  }
  std::uint64_t bytes_delivered() const {
    std::lock_guard<detail::spinlock> lk(c_->mu);
    return c_->bytes;
  }

  // ---- vnet_base (gort::net calls these) ----
  std::vector<net::address> lookup(const std::string& host, std::uint16_t port,
                                   std::error_code& ec) override {
    std::string ip;
    {
      std::lock_guard<detail::spinlock> lk(c_->mu);
      auto it = c_->hosts.find(host);
      if (it != c_->hosts.end()) ip = it->second;
      else if (host == "localhost") ip = "127.0.0.1";
    }
    net::address a;
    if (ip.empty() || !net::detail_net::parse_numeric(ip, port, a)) {
      ec = std::error_code(EAI_NONAME, net::resolver_category());
      return {};
    }
    return {a};
  }

  int listen_tcp(const net::address& a, std::shared_ptr<detail::vsocket>& out) override {
    using namespace detail_simnet;
    std::lock_guard<detail::spinlock> lk(c_->mu);
    net::address local = a;
    if (a.port() == 0) {
      const std::uint16_t p = free_port(*c_, a, false);
      if (p == 0) return -EADDRINUSE;
      local = with_port(a, p);
    }
    if (tcp_in_use(*c_, local)) return -EADDRINUSE;
    auto l = std::make_shared<listener_socket>(c_, local);
    c_->listeners[key(local)] = l.get();
    out = std::move(l);
    return 0;
  }

  int dial_tcp(const net::address& a, std::shared_ptr<detail::vsocket>& out) override {
    using namespace detail_simnet;
    require_g("dial_tcp");
    std::shared_ptr<stream_socket> client;
    std::int64_t latency;
    {
      std::lock_guard<detail::spinlock> lk(c_->mu);
      auto it = c_->listeners.find(key(a));
      if (it == c_->listeners.end()) it = c_->listeners.find(key(any_of(a)));
      if (it == c_->listeners.end()) return -ECONNREFUSED;
      const std::uint16_t port = free_port(*c_, loopback_of(a, 0), false);
      if (port == 0) return -EADDRNOTAVAIL;  // every ephemeral port in use
      const net::address server_local = is_any(a) ? loopback_of(a, a.port()) : a;
      const net::address client_local = loopback_of(a, port);
      auto st = std::make_shared<connection>();
      auto server = std::make_shared<stream_socket>(c_, st, 1, server_local, client_local);
      client = std::make_shared<stream_socket>(c_, st, 0, client_local, server_local);
      if (!it->second->enqueue_locked(std::move(server))) return -ECONNREFUSED;
      ++c_->client_ports[key(client_local)];
      ++c_->conns;
      latency = c_->opt.latency.count();
    }
    if (latency > 0) {  // the handshake: one latency, virtual
      detail::sleep_until_ns(c_->now() + latency, nullptr);
    }
    out = std::move(client);
    return 0;
  }

  int listen_udp(const net::address& a, std::shared_ptr<detail::vsocket>& out) override {
    using namespace detail_simnet;
    std::lock_guard<detail::spinlock> lk(c_->mu);
    net::address local = a;
    if (a.port() == 0) {
      const std::uint16_t p = free_port(*c_, a, true);
      if (p == 0) return -EADDRINUSE;
      local = with_port(a, p);
    }
    if (in_use(c_->udps, local)) return -EADDRINUSE;
    auto u = std::make_shared<udp_socket>(c_, local);
    c_->udps[key(local)] = u.get();
    out = std::move(u);
    return 0;
  }

 private:
  std::shared_ptr<detail_simnet::core> c_;
};

}  // namespace testing
GORT_END_NAMESPACE
