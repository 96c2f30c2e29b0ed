// gort/net.hpp: TCP and UDP on the netpoller.
//
//   auto ln = gort::net::listen_tcp("127.0.0.1:0");      // port 0: ephemeral
//   gort::go([&] { auto c = gort::net::dial_tcp(ln.local_addr().to_string());
//                  c.write(gort::net::as_bytes("hi")); });
//   gort::net::conn c = ln.accept();                      // parks the G
//   std::byte buf[64];
//   std::size_t n = c.read(buf);                          // 0 = EOF
//
// Every call parks the calling G, never the M, and must run on a G (outside
// one it throws std::logic_error). Errors are reported asio-style: each
// call throws std::system_error, or, given a std::error_code&, sets it and
// returns. Deadlines are absolute (steady clock) and apply to the ops that
// start after they are set; an op whose deadline passes fails with
// std::errc::timed_out (the connection stays usable). An op on a closed
// connection fails with std::errc::bad_file_descriptor; close() wakes the
// Gs blocked on the connection with that error.
//
// Addresses are "host:port": "127.0.0.1:8080", "[::1]:0", ":8080" (all
// interfaces), "localhost:80". Names are resolved with getaddrinfo inside
// gort::blocking (Go does the same with its cgo resolver).
//
// Objects are move-only; destroying one closes it. A conn is not
// synchronised: one G may read while another writes, and any G may
// close(), but two concurrent reads (or writes) on one conn interleave.
// Destroy every conn inside the runtime that made it (its poller owns the
// fd's state), and never while a G is blocked in one of its calls: close()
// it first, and let that G return.
#pragma once

#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "detail/config.hpp"
#include "detail/netpoll.hpp"
#include "detail/runtime2.hpp"
#include "time.hpp"

GORT_BEGIN_NAMESPACE
namespace net {

// Errors of gort::net that are not errno values.
enum class error {
  eof = 1,              // read_full: the peer closed before the buffer was full
  bad_address,          // malformed "host:port"
  no_address,           // the name resolved to no usable address
};

class error_category_impl final : public std::error_category {
 public:
  const char* name() const noexcept override { return "gort.net"; }
  std::string message(int ev) const override {
    switch (static_cast<error>(ev)) {
      case error::eof: return "end of stream before the buffer was full";
      case error::bad_address: return "malformed address (want host:port, [v6]:port or :port)";
      case error::no_address: return "the name has no usable address";
    }
    return "unknown gort.net error";
  }
};
inline const std::error_category& error_category() noexcept {
  static const error_category_impl c;
  return c;
}
inline std::error_code make_error_code(error e) noexcept {
  return {static_cast<int>(e), error_category()};
}

// getaddrinfo's EAI_* codes.
class resolver_category_impl final : public std::error_category {
 public:
  const char* name() const noexcept override { return "gort.resolver"; }
  std::string message(int ev) const override { return ::gai_strerror(ev); }
};
inline const std::error_category& resolver_category() noexcept {
  static const resolver_category_impl c;
  return c;
}

// Views for write(): as_bytes("text"), as_bytes(std::string).
inline std::span<const std::byte> as_bytes(std::string_view s) noexcept {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

// An IPv4 or IPv6 endpoint.
class address {
 public:
  address() noexcept = default;
  address(const sockaddr* sa, socklen_t len) noexcept {
    len_ = len > sizeof ss_ ? static_cast<socklen_t>(sizeof ss_) : len;
    std::memcpy(&ss_, sa, len_);
  }
  // Numeric only ("1.2.3.4:80", "[::1]:0", ":80"); names need resolve().
  static address parse(std::string_view s, std::error_code& ec);
  static address parse(std::string_view s) {
    std::error_code ec;
    address a = parse(s, ec);
    if (ec) throw std::system_error(ec, "gort::net::address::parse(\"" + std::string(s) + "\")");
    return a;
  }
  int family() const noexcept { return ss_.ss_family; }
  std::uint16_t port() const noexcept {
    if (family() == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in*>(&ss_)->sin_port);
    if (family() == AF_INET6) return ntohs(reinterpret_cast<const sockaddr_in6*>(&ss_)->sin6_port);
    return 0;
  }
  // "127.0.0.1:8080", "[::1]:8080".
  std::string to_string() const {
    char host[INET6_ADDRSTRLEN] = "?";
    if (family() == AF_INET) {
      ::inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(&ss_)->sin_addr, host, sizeof host);
      return std::string(host) + ":" + std::to_string(port());
    }
    if (family() == AF_INET6) {
      ::inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(&ss_)->sin6_addr, host, sizeof host);
      return "[" + std::string(host) + "]:" + std::to_string(port());
    }
    return "<no address>";
  }
  const sockaddr* data() const noexcept { return reinterpret_cast<const sockaddr*>(&ss_); }
  sockaddr* data() noexcept { return reinterpret_cast<sockaddr*>(&ss_); }
  socklen_t size() const noexcept { return len_; }
  socklen_t capacity() const noexcept { return sizeof ss_; }
  void resize(socklen_t n) noexcept { len_ = n; }
  bool empty() const noexcept { return len_ == 0; }
  friend bool operator==(const address& a, const address& b) noexcept {
    return a.len_ == b.len_ && std::memcmp(&a.ss_, &b.ss_, a.len_) == 0;
  }

 private:
  sockaddr_storage ss_{};
  socklen_t len_ = 0;
};

}  // namespace net

namespace detail {
// An in-memory network behind gort::net, in place of the kernel's: a
// runtime that has one (sched_base::vnet(); gort::testing::sim_network)
// sends every listen, dial and socket op here. Results as the pollers':
// >= 0 done, < 0 a negated errno. Deadlines are on the runtime's clock
// (nanotime or virtual), 0 = none. Called from Gs of that runtime only.
// A kind of socket overrides the ops it has; the others fail as the
// kernel's would on the wrong kind of socket.
class vsocket {
 public:
  virtual ~vsocket() = default;
  // Stream ops (a connection).
  virtual std::int64_t read(std::byte*, std::size_t, std::int64_t /*deadline*/) { return -ENOTCONN; }
  // May write less than len (the peer's window is full); the caller loops.
  virtual std::int64_t write(const std::byte*, std::size_t, std::int64_t /*deadline*/) {
    return -ENOTCONN;
  }
  virtual int shutdown_write() { return -ENOTCONN; }
  virtual net::address remote_addr() const { return {}; }
  // A listener's.
  virtual std::int64_t accept(std::shared_ptr<vsocket>& /*out*/, std::int64_t /*deadline*/) {
    return -EINVAL;
  }
  // A datagram socket's.
  virtual std::int64_t send_to(const std::byte*, std::size_t, const net::address& /*to*/) {
    return -EINVAL;
  }
  virtual std::int64_t recv_from(std::byte*, std::size_t, net::address& /*from*/,
                                 std::int64_t /*deadline*/) {
    return -EINVAL;
  }
  // Every kind. close wakes the socket's blocked ops (bad_file_descriptor);
  // a second close returns -EBADF.
  virtual int close() = 0;
  virtual bool is_closed() const noexcept = 0;
  virtual net::address local_addr() const = 0;
  std::atomic<std::int64_t> rdeadline{0};
  std::atomic<std::int64_t> wdeadline{0};
};

class vnet_base {
 public:
  virtual ~vnet_base() = default;
  // A name that is not a numeric address ("localhost", a name the test
  // registered); ec set (resolver_category) when unknown.
  virtual std::vector<net::address> lookup(const std::string& host, std::uint16_t port,
                                           std::error_code& ec) = 0;
  virtual int listen_tcp(const net::address& a, std::shared_ptr<vsocket>& out) = 0;
  virtual int dial_tcp(const net::address& a, std::shared_ptr<vsocket>& out) = 0;
  virtual int listen_udp(const net::address& a, std::shared_ptr<vsocket>& out) = 0;
};
}  // namespace detail

namespace net {
namespace detail_net {

using ::gort::detail::fd_desc;
using ::gort::detail::io_req;
using ::gort::detail::netpoller_base;
using ::gort::detail::op_kind;

using ::gort::detail::vnet_base;
using ::gort::detail::vsocket;

inline ::gort::detail::sched_base* require_g(const char* what) {
  ::gort::detail::g_base* gp = ::gort::detail::current_g();
  if (gp == nullptr)
    throw std::logic_error(std::string("gort::net: ") + what +
                           " must be called from inside a G (it parks the G)");
  return gp->sched;
}
inline netpoller_base* poller(const char* what) { return require_g(what)->netpoller(); }
// For the error_code overloads: a poller that cannot be made (no io_uring
// and no epoll, or out of fds for the first one) sets ec instead of
// throwing. Outside a G still throws (a misuse, not a runtime error).
inline netpoller_base* poller(const char* what, std::error_code& ec) {
  ::gort::detail::sched_base* s = require_g(what);
  try {
    return s->netpoller();
  } catch (const std::system_error& e) {
    ec = e.code();
  } catch (const std::bad_alloc&) {
    ec = std::make_error_code(std::errc::not_enough_memory);
  }
  return nullptr;
}

inline std::error_code errno_code(std::int64_t neg) noexcept {
  return {static_cast<int>(-neg), std::system_category()};
}

[[noreturn]] inline void throw_error(const std::error_code& ec, const std::string& what) {
  throw std::system_error(ec, what);
}

// Splits "host:port" / "[v6]:port" / ":port". Port must be 0..65535.
inline bool split_host_port(std::string_view s, std::string& host, std::uint16_t& port) {
  std::string_view h, p;
  if (!s.empty() && s.front() == '[') {
    const auto close = s.find(']');
    if (close == std::string_view::npos || close + 1 >= s.size() || s[close + 1] != ':') return false;
    h = s.substr(1, close - 1);
    p = s.substr(close + 2);
  } else {
    const auto colon = s.rfind(':');
    if (colon == std::string_view::npos) return false;
    h = s.substr(0, colon);
    if (h.find(':') != std::string_view::npos) return false;  // bare IPv6 needs brackets
    p = s.substr(colon + 1);
  }
  if (p.empty() || p.size() > 5) return false;
  unsigned v = 0;
  for (char c : p) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<unsigned>(c - '0');
  }
  if (v > 65535) return false;
  host.assign(h);
  port = static_cast<std::uint16_t>(v);
  return true;
}

inline bool parse_numeric(const std::string& host, std::uint16_t port, address& out) {
  if (host.empty()) {  // ":port": every IPv4 interface
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_ANY);
    out = address(reinterpret_cast<sockaddr*>(&a), sizeof a);
    return true;
  }
  sockaddr_in a4{};
  if (::inet_pton(AF_INET, host.c_str(), &a4.sin_addr) == 1) {
    a4.sin_family = AF_INET;
    a4.sin_port = htons(port);
    out = address(reinterpret_cast<sockaddr*>(&a4), sizeof a4);
    return true;
  }
  sockaddr_in6 a6{};
  if (::inet_pton(AF_INET6, host.c_str(), &a6.sin6_addr) == 1) {
    a6.sin6_family = AF_INET6;
    a6.sin6_port = htons(port);
    out = address(reinterpret_cast<sockaddr*>(&a6), sizeof a6);
    return true;
  }
  return false;
}

}  // namespace detail_net

inline address address::parse(std::string_view s, std::error_code& ec) {
  ec.clear();
  std::string host;
  std::uint16_t port = 0;
  address a;
  if (!detail_net::split_host_port(s, host, port) || !detail_net::parse_numeric(host, port, a)) {
    ec = make_error_code(error::bad_address);
    return {};
  }
  return a;
}

namespace detail_net {

// Resolves "host:port" to candidates (numeric fast path; names through
// getaddrinfo in gort::blocking, so the P goes on without this M).
inline std::vector<address> resolve(std::string_view s, int socktype, std::error_code& ec) {
  ec.clear();
  std::string host;
  std::uint16_t port = 0;
  if (!split_host_port(s, host, port)) {
    ec = make_error_code(error::bad_address);
    return {};
  }
  address a;
  if (parse_numeric(host, port, a)) return {a};
  if (vnet_base* vn = ::gort::detail::current_g()->sched->vnet()) return vn->lookup(host, port, ec);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = socktype;
  hints.ai_flags = AI_ADDRCONFIG;
  addrinfo* res = nullptr;
  int rc;
  int err;  // read before exitsyscall, which may move the G to another thread
  {
    ::gort::detail::sched_base* sched = ::gort::detail::current_g()->sched;
    sched->entersyscall();
    rc = ::getaddrinfo(host.c_str(), nullptr, &hints, &res);
    err = errno;
    sched->exitsyscall();
  }
  if (rc != 0) {
    if (rc != EAI_SYSTEM) ec = std::error_code(rc, resolver_category());
    else if (err != 0) ec = std::error_code(err, std::system_category());
    else ec = std::make_error_code(std::errc::io_error);  // never an error that reads as success
    return {};
  }
  std::vector<address> out;
  for (addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
    if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6) continue;
    address x(ai->ai_addr, ai->ai_addrlen);
    if (ai->ai_family == AF_INET) reinterpret_cast<sockaddr_in*>(x.data())->sin_port = htons(port);
    else reinterpret_cast<sockaddr_in6*>(x.data())->sin6_port = htons(port);
    out.push_back(x);
  }
  ::freeaddrinfo(res);
  if (out.empty()) ec = make_error_code(error::no_address);
  return out;
}

inline std::int64_t to_deadline(clock::time_point tp) noexcept {
  if (tp == clock::time_point{} || tp == clock::time_point::max()) return 0;
  const std::int64_t ns = ::gort::detail::to_nanotime(tp);
  return ns <= 0 ? 1 : ns;  // 0 means "none"; any past time expires
}

inline int make_socket(netpoller_base* np, int family, int type, std::error_code& ec) {
  const int fd = ::socket(family, type | SOCK_CLOEXEC | (np->wants_nonblocking() ? SOCK_NONBLOCK : 0), 0);
  if (fd < 0) ec = {errno, std::system_category()};
  return fd;
}

// What conn, listener and udp_conn share: the fd's state in the poller.
class socket_base {
 public:
  socket_base() noexcept = default;
  socket_base(socket_base&& o) noexcept
      : np_(std::exchange(o.np_, nullptr)), d_(std::exchange(o.d_, nullptr)), v_(std::move(o.v_)) {}
  socket_base& operator=(socket_base&& o) noexcept {
    if (this != &o) {
      release();
      np_ = std::exchange(o.np_, nullptr);
      d_ = std::exchange(o.d_, nullptr);
      v_ = std::move(o.v_);
    }
    return *this;
  }
  ~socket_base() { release(); }

  bool is_open() const noexcept {
    if (v_) return !v_->is_closed();
    return d_ != nullptr && !d_->closing.load(std::memory_order_acquire);
  }
  explicit operator bool() const noexcept { return is_open(); }
  // -1 once closed: the number may already belong to another file.
  int native_handle() const noexcept {
    return d_ != nullptr && !d_->closing.load(std::memory_order_acquire) ? d_->fd : -1;
  }
  // The in-memory socket this object is (gort::testing::sim_network), or
  // null for a kernel socket.
  detail_net::vsocket* in_memory_socket() const noexcept { return v_.get(); }

  // Closes it; Gs blocked on it wake with bad_file_descriptor. Closing
  // twice is an error (as Go's "use of closed network connection").
  void close(std::error_code& ec) {
    ec.clear();
    if (v_) {
      if (const int r = v_->close(); r < 0) ec = errno_code(r);
      return;
    }
    if (d_ == nullptr) {
      ec = std::make_error_code(std::errc::bad_file_descriptor);
      return;
    }
    if (const int r = np_->close_fd(d_); r < 0) ec = errno_code(r);
  }
  void close() {
    std::error_code ec;
    close(ec);
    if (ec) throw_error(ec, "gort::net: close");
  }

  // Deadlines (see the file comment). time_point{} clears one.
  void set_deadline(clock::time_point tp) noexcept {
    set_read_deadline(tp);
    set_write_deadline(tp);
  }
  void set_read_deadline(clock::time_point tp) noexcept {
    if (v_) v_->rdeadline.store(to_deadline(tp), std::memory_order_relaxed);
    if (d_ != nullptr) d_->rdeadline.store(to_deadline(tp), std::memory_order_relaxed);
  }
  void set_write_deadline(clock::time_point tp) noexcept {
    if (v_) v_->wdeadline.store(to_deadline(tp), std::memory_order_relaxed);
    if (d_ != nullptr) d_->wdeadline.store(to_deadline(tp), std::memory_order_relaxed);
  }

  // Empty once closed.
  address local_addr() const {
    if (v_) return v_->local_addr();
    address a;
    socklen_t len = a.capacity();
    int r = -1;
    std::error_code ec;
    with_fd(ec, [&](int fd) { r = ::getsockname(fd, a.data(), &len); });
    if (r != 0) return {};
    a.resize(len);
    return a;
  }

 protected:
  socket_base(netpoller_base* np, fd_desc* d) noexcept : np_(np), d_(d) {}
  explicit socket_base(std::shared_ptr<vsocket> v) noexcept : v_(std::move(v)) {}
  bool check_open(std::error_code& ec) const noexcept {
    if (d_ != nullptr || v_) return true;
    ec = std::make_error_code(std::errc::bad_file_descriptor);
    return false;
  }
  // Runs f(fd) with the fd held open (Go's fdMutex incref: close() waits
  // for it). After close() began: bad_file_descriptor and no call, because
  // the number may already belong to another socket or file.
  template <class F>
  bool with_fd(std::error_code& ec, F&& f) const {
    if (d_ == nullptr || !np_->op_begin(d_)) {
      ec = std::make_error_code(std::errc::bad_file_descriptor);
      return false;
    }
    f(d_->fd);
    np_->op_end(d_);
    return true;
  }
  std::int64_t io(const io_req& r, bool write) {
    return np_->io(d_, r, (write ? d_->wdeadline : d_->rdeadline).load(std::memory_order_relaxed));
  }
  void release() noexcept {
    if (d_ != nullptr) np_->release_fd(d_);
    d_ = nullptr;
    np_ = nullptr;
    if (v_ && !v_->is_closed()) v_->close();
    v_.reset();
  }
  std::int64_t rdeadline() const noexcept { return v_->rdeadline.load(std::memory_order_relaxed); }
  std::int64_t wdeadline() const noexcept { return v_->wdeadline.load(std::memory_order_relaxed); }

 public:
  // Internal: wraps fd in the poller (closes it on failure).
  static fd_desc* adopt(netpoller_base* np, int fd, std::error_code& ec) {
    int err = 0;
    fd_desc* d = np->open_fd(fd, false, &err);
    if (d == nullptr) {
      ::close(fd);
      ec = errno_code(err);
    }
    return d;
  }

 protected:
  netpoller_base* np_ = nullptr;
  fd_desc* d_ = nullptr;
  std::shared_ptr<vsocket> v_;  // an in-memory socket instead (np_, d_ null)
};

}  // namespace detail_net

// A TCP connection.
class conn : public detail_net::socket_base {
 public:
  conn() noexcept = default;

  // Reads what is available, at least one byte; 0 means EOF (or an empty
  // buffer). May block the calling G, never the M.
  std::size_t read(std::span<std::byte> buf, std::error_code& ec) {
    ec.clear();
    if (!check_open(ec) || buf.empty()) return 0;
    detail_net::io_req r;
    r.kind = detail_net::op_kind::recv;
    r.buf = buf.data();
    r.len = buf.size();
    // (As for a kernel socket, the object must outlive its ops: no copy of
    // v_ is held across the park, which would leak from the stack of a G a
    // deterministic runtime abandons after a deadlock.)
    const std::int64_t n = v_ ? v_->read(buf.data(), buf.size(), rdeadline()) : io(r, false);
    if (n < 0) {
      ec = detail_net::errno_code(n);
      return 0;
    }
    return static_cast<std::size_t>(n);
  }
  std::size_t read(std::span<std::byte> buf) {
    std::error_code ec;
    const std::size_t n = read(buf, ec);
    if (ec) detail_net::throw_error(ec, "gort::net::conn::read");
    return n;
  }

  // Reads exactly buf.size() bytes; error::eof if the stream ends first.
  // Returns the bytes read (all of them unless ec is set).
  std::size_t read_full(std::span<std::byte> buf, std::error_code& ec) {
    std::size_t got = 0;
    while (got < buf.size()) {
      const std::size_t n = read(buf.subspan(got), ec);
      if (ec) return got;
      if (n == 0) {
        ec = make_error_code(error::eof);
        return got;
      }
      got += n;
    }
    return got;
  }
  std::size_t read_full(std::span<std::byte> buf) {
    std::error_code ec;
    const std::size_t n = read_full(buf, ec);
    if (ec) detail_net::throw_error(ec, "gort::net::conn::read_full");
    return n;
  }

  // Writes all of buf (or fails); returns the bytes written, all of them
  // unless ec is set. A peer that is gone: broken_pipe / connection_reset.
  std::size_t write(std::span<const std::byte> buf, std::error_code& ec) {
    ec.clear();
    if (!check_open(ec)) return 0;
    std::size_t done = 0;
    while (done < buf.size()) {
      detail_net::io_req r;
      r.kind = detail_net::op_kind::send;
      r.buf = const_cast<std::byte*>(buf.data() + done);
      r.len = buf.size() - done;
      const std::int64_t n =
          v_ ? v_->write(buf.data() + done, buf.size() - done, wdeadline()) : io(r, true);
      if (n < 0) {
        ec = detail_net::errno_code(n);
        return done;
      }
      done += static_cast<std::size_t>(n);
    }
    return done;
  }
  std::size_t write(std::span<const std::byte> buf) {
    std::error_code ec;
    const std::size_t n = write(buf, ec);
    if (ec) detail_net::throw_error(ec, "gort::net::conn::write");
    return n;
  }

  // Half-close: the peer reads EOF; we can still read.
  void shutdown_write(std::error_code& ec) {
    ec.clear();
    if (!check_open(ec)) return;
    if (v_) {
      if (const int r = v_->shutdown_write(); r < 0) ec = detail_net::errno_code(r);
      return;
    }
    with_fd(ec, [&](int fd) {
      if (::shutdown(fd, SHUT_WR) != 0) ec = {errno, std::system_category()};
    });
  }
  void shutdown_write() {
    std::error_code ec;
    shutdown_write(ec);
    if (ec) detail_net::throw_error(ec, "gort::net::conn::shutdown_write");
  }

  void set_nodelay(bool on, std::error_code& ec) {
    ec.clear();
    if (!check_open(ec) || v_) return;  // in memory: nothing to delay
    const int v = on ? 1 : 0;
    with_fd(ec, [&](int fd) {
      if (::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &v, sizeof v) != 0)
        ec = {errno, std::system_category()};
    });
  }
  void set_nodelay(bool on) {
    std::error_code ec;
    set_nodelay(on, ec);
    if (ec) detail_net::throw_error(ec, "gort::net::conn::set_nodelay");
  }

  // Empty once closed.
  address remote_addr() const {
    if (v_) return v_->remote_addr();
    address a;
    socklen_t len = a.capacity();
    int r = -1;
    std::error_code ec;
    with_fd(ec, [&](int fd) { r = ::getpeername(fd, a.data(), &len); });
    if (r != 0) return {};
    a.resize(len);
    return a;
  }

 private:
  friend class listener;
  friend conn dial_tcp(std::string_view, std::error_code&);
  conn(detail_net::netpoller_base* np, detail_net::fd_desc* d) noexcept : socket_base(np, d) {}
  explicit conn(std::shared_ptr<detail_net::vsocket> v) noexcept : socket_base(std::move(v)) {}
};

// A TCP listening socket.
class listener : public detail_net::socket_base {
 public:
  listener() noexcept = default;

  // Waits for a connection (the read deadline applies).
  conn accept(std::error_code& ec) {
    ec.clear();
    if (!check_open(ec)) return {};
    if (v_) {
      std::shared_ptr<detail_net::vsocket> c;
      if (const std::int64_t r = v_->accept(c, rdeadline()); r < 0) {
        ec = detail_net::errno_code(r);
        return {};
      }
      return conn(std::move(c));
    }
    detail_net::io_req r;
    r.kind = detail_net::op_kind::accept;  // (the peer: conn::remote_addr())
    for (;;) {
      const std::int64_t fd = io(r, false);
      if (fd >= 0) {
        detail_net::fd_desc* d = adopt(np_, static_cast<int>(fd), ec);
        if (d == nullptr) return {};
        return conn(np_, d);
      }
      // A connection that died in the backlog is not the listener's error.
      if (fd == -ECONNABORTED || fd == -EINTR) continue;
      ec = detail_net::errno_code(fd);
      return {};
    }
  }
  conn accept() {
    std::error_code ec;
    conn c = accept(ec);
    if (ec) detail_net::throw_error(ec, "gort::net::listener::accept");
    return c;
  }

 private:
  friend listener listen_tcp(std::string_view, std::error_code&);
  listener(detail_net::netpoller_base* np, detail_net::fd_desc* d) noexcept : socket_base(np, d) {}
  explicit listener(std::shared_ptr<detail_net::vsocket> v) noexcept : socket_base(std::move(v)) {}
};

namespace detail_net {
// A socket of `type` bound to the first address addr resolves to that
// works (listening, for a stream), adopted by the current G's poller.
inline std::pair<netpoller_base*, fd_desc*> bind_socket(const char* what, std::string_view addr,
                                                        int type, std::error_code& ec) {
  auto* np = poller(what, ec);
  if (np == nullptr) return {nullptr, nullptr};
  auto addrs = resolve(addr, type, ec);
  if (ec) return {np, nullptr};
  for (const address& a : addrs) {
    ec.clear();
    const int fd = make_socket(np, a.family(), type, ec);
    if (fd < 0) continue;
    if (type == SOCK_STREAM) {
      const int one = 1;
      ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    }
    if (::bind(fd, a.data(), a.size()) != 0 ||
        (type == SOCK_STREAM && ::listen(fd, SOMAXCONN) != 0)) {
      ec = {errno, std::system_category()};
      ::close(fd);
      continue;
    }
    if (fd_desc* d = socket_base::adopt(np, fd, ec)) return {np, d};
  }
  return {np, nullptr};
}

// The in-memory network's bind_socket: (vn->*op)(a, ...) for each
// address addr resolves to until one succeeds (op returns 0 or a negated
// errno); the socket it made, or null with ec set.
inline std::shared_ptr<vsocket> vopen(vnet_base* vn,
                                      int (vnet_base::*op)(const address&, std::shared_ptr<vsocket>&),
                                      std::string_view addr, std::error_code& ec) {
  auto addrs = resolve(addr, SOCK_STREAM, ec);
  if (ec) return nullptr;
  std::shared_ptr<vsocket> v;
  for (const address& a : addrs) {
    const int r = (vn->*op)(a, v);
    if (r == 0) {
      ec.clear();
      return v;
    }
    ec = errno_code(r);
  }
  return nullptr;
}
}  // namespace detail_net

// Listens on addr ("127.0.0.1:8080", "[::1]:0", ":0"); port 0 picks a free
// port (see local_addr()).
inline listener listen_tcp(std::string_view addr, std::error_code& ec) {
  if (detail_net::vnet_base* vn = detail_net::require_g("listen_tcp")->vnet()) {
    auto v = detail_net::vopen(vn, &detail_net::vnet_base::listen_tcp, addr, ec);
    return v ? listener(std::move(v)) : listener();
  }
  auto [np, d] = detail_net::bind_socket("listen_tcp", addr, SOCK_STREAM, ec);
  return d != nullptr ? listener(np, d) : listener();
}
inline listener listen_tcp(std::string_view addr) {
  std::error_code ec;
  listener l = listen_tcp(addr, ec);
  if (ec) detail_net::throw_error(ec, "gort::net::listen_tcp(\"" + std::string(addr) + "\")");
  return l;
}

// Connects to addr, trying each resolved address in turn.
inline conn dial_tcp(std::string_view addr, std::error_code& ec) {
  if (detail_net::vnet_base* vn = detail_net::require_g("dial_tcp")->vnet()) {
    auto v = detail_net::vopen(vn, &detail_net::vnet_base::dial_tcp, addr, ec);
    return v ? conn(std::move(v)) : conn();
  }
  auto* np = detail_net::poller("dial_tcp", ec);
  if (np == nullptr) return {};
  auto addrs = detail_net::resolve(addr, SOCK_STREAM, ec);
  if (ec) return {};
  for (const address& a : addrs) {
    ec.clear();
    const int fd = detail_net::make_socket(np, a.family(), SOCK_STREAM, ec);
    if (fd < 0) continue;
    detail_net::fd_desc* d = detail_net::socket_base::adopt(np, fd, ec);
    if (d == nullptr) continue;
    conn c(np, d);
    detail_net::io_req r;
    r.kind = detail_net::op_kind::connect;
    r.addr = const_cast<sockaddr*>(a.data());
    r.addrlen_in = a.size();
    const std::int64_t res = np->io(d, r, 0);
    if (res == 0) return c;
    ec = detail_net::errno_code(res);
  }
  return {};
}
inline conn dial_tcp(std::string_view addr) {
  std::error_code ec;
  conn c = dial_tcp(addr, ec);
  if (ec) detail_net::throw_error(ec, "gort::net::dial_tcp(\"" + std::string(addr) + "\")");
  return c;
}

// A UDP socket bound to a local address.
class udp_conn : public detail_net::socket_base {
 public:
  udp_conn() noexcept = default;

  // Sends one datagram; returns its size.
  std::size_t send_to(std::span<const std::byte> buf, const address& to, std::error_code& ec) {
    ec.clear();
    if (!check_open(ec)) return 0;
    if (v_) {
      const std::int64_t n = v_->send_to(buf.data(), buf.size(), to);
      if (n < 0) ec = detail_net::errno_code(n);
      return n < 0 ? 0 : static_cast<std::size_t>(n);
    }
    iovec iov{const_cast<std::byte*>(buf.data()), buf.size()};
    msghdr msg{};
    msg.msg_name = const_cast<sockaddr*>(to.data());
    msg.msg_namelen = to.size();
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    detail_net::io_req r;
    r.kind = detail_net::op_kind::sendmsg;
    r.msg = &msg;
    const std::int64_t n = io(r, true);
    if (n < 0) {
      ec = detail_net::errno_code(n);
      return 0;
    }
    return static_cast<std::size_t>(n);
  }
  std::size_t send_to(std::span<const std::byte> buf, const address& to) {
    std::error_code ec;
    const std::size_t n = send_to(buf, to, ec);
    if (ec) detail_net::throw_error(ec, "gort::net::udp_conn::send_to");
    return n;
  }

  // Receives one datagram into buf; returns its size and sender. A longer
  // datagram is truncated to buf's size with no error, as Go's ReadFrom
  // (docs/api/net.md: pass a buffer one byte larger than the largest
  // datagram you accept, and treat a full one as too long).
  std::pair<std::size_t, address> recv_from(std::span<std::byte> buf, std::error_code& ec) {
    ec.clear();
    if (!check_open(ec)) return {0, {}};
    address from;
    if (v_) {
      const std::int64_t n = v_->recv_from(buf.data(), buf.size(), from, rdeadline());
      if (n < 0) {
        ec = detail_net::errno_code(n);
        return {0, {}};
      }
      return {static_cast<std::size_t>(n), from};
    }
    iovec iov{buf.data(), buf.size()};
    msghdr msg{};
    msg.msg_name = from.data();
    msg.msg_namelen = from.capacity();
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    detail_net::io_req r;
    r.kind = detail_net::op_kind::recvmsg;
    r.msg = &msg;
    const std::int64_t n = io(r, false);
    if (n < 0) {
      ec = detail_net::errno_code(n);
      return {0, {}};
    }
    from.resize(msg.msg_namelen);
    return {static_cast<std::size_t>(n), from};
  }
  std::pair<std::size_t, address> recv_from(std::span<std::byte> buf) {
    std::error_code ec;
    auto r = recv_from(buf, ec);
    if (ec) detail_net::throw_error(ec, "gort::net::udp_conn::recv_from");
    return r;
  }

 private:
  friend udp_conn listen_udp(std::string_view, std::error_code&);
  udp_conn(detail_net::netpoller_base* np, detail_net::fd_desc* d) noexcept : socket_base(np, d) {}
  explicit udp_conn(std::shared_ptr<detail_net::vsocket> v) noexcept : socket_base(std::move(v)) {}
};

// A UDP socket bound to addr (port 0: ephemeral).
inline udp_conn listen_udp(std::string_view addr, std::error_code& ec) {
  if (detail_net::vnet_base* vn = detail_net::require_g("listen_udp")->vnet()) {
    auto v = detail_net::vopen(vn, &detail_net::vnet_base::listen_udp, addr, ec);
    return v ? udp_conn(std::move(v)) : udp_conn();
  }
  auto [np, d] = detail_net::bind_socket("listen_udp", addr, SOCK_DGRAM, ec);
  return d != nullptr ? udp_conn(np, d) : udp_conn();
}
inline udp_conn listen_udp(std::string_view addr) {
  std::error_code ec;
  udp_conn u = listen_udp(addr, ec);
  if (ec) detail_net::throw_error(ec, "gort::net::listen_udp(\"" + std::string(addr) + "\")");
  return u;
}

}  // namespace net
GORT_END_NAMESPACE

template <>
struct std::is_error_code_enum<gort::net::error> : std::true_type {};
