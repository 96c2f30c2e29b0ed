// gort/signal.hpp: waiting for POSIX signals in a G (Go's signal.Notify).
//
//   gort::signal::notifier sig{SIGINT, SIGTERM};   // on a G
//   gort::go([&] { int s = sig.wait(); ...; listener.close(); });
//
// A notifier installs a handler for its signals that sends the signal's
// number over a socket pair; wait() reads the other end through the
// netpoller, so it parks only the G (a signal after close() is dropped,
// never a SIGPIPE). Several notifiers may watch the same signal; each receives
// it. When the last notifier of a signal is destroyed, the handler that was
// there before is put back. close() wakes a G blocked in wait() with
// bad_file_descriptor (so a runtime whose work is done is not kept alive by
// a G waiting for a signal that never comes). Up to 64 notifiers at once.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <initializer_list>
#include <mutex>
#include <stdexcept>
#include <string>
#include <system_error>

#include "detail/config.hpp"
#include "net.hpp"

GORT_BEGIN_NAMESPACE
namespace signal {

namespace detail_sig {

struct slot {
  std::atomic<int> wfd{-1};
  std::atomic<std::uint64_t> mask{0};  // bit s-1: signal s
};

struct registry {
  std::array<slot, 64> slots;
  std::mutex mu;  // install / uninstall
  std::array<struct sigaction, 65> saved{};
  std::array<int, 65> users{};
};
inline registry& reg() {
  static registry r;
  return r;
}

// sigaction(2) for installing the handler, through a pointer that tests
// replace to make it fail (set only while no notifier is being made).
inline int (*sigaction_fn)(int, const struct sigaction*, struct sigaction*) = &::sigaction;

// Linux's first real-time signal. The C library keeps the first few for
// itself (glibc 32 and 33, musl 32..34: sigaction refuses them) and SIGRTMIN
// is the first it leaves to programs.
inline constexpr int kernel_sigrtmin = 32;

// Why a notifier cannot take signal s, or null if it can.
inline const char* refusal(int s) {
  // (s > 64: the slot masks have 64 bits; SIGRTMAX is 64 on x86-64.)
  if (s < 1 || s > SIGRTMAX || s > 64) return "not a signal number (1..SIGRTMAX)";
  if (s == SIGKILL || s == SIGSTOP) return "SIGKILL and SIGSTOP cannot be caught";
  if (s >= kernel_sigrtmin && s < SIGRTMIN) return "reserved by the C library (below SIGRTMIN)";
  switch (s) {
    case SIGSEGV: case SIGBUS: case SIGFPE: case SIGILL: case SIGTRAP: case SIGSYS:
      // A handler that returns re-runs the faulting instruction: a fault
      // would become an endless loop. SIGSEGV is also gort's stack-overflow
      // handler's (detail/overflow.hpp).
      return "a synchronous fault signal (the faulting instruction would run again)";
    default:
      return nullptr;
  }
}

// Async-signal-safe: atomics and send(2) only.
inline void handler(int sig) {
  const int saved_errno = errno;
  const unsigned char b = static_cast<unsigned char>(sig);
  for (auto& s : reg().slots) {
    if ((s.mask.load(std::memory_order_acquire) >> (sig - 1) & 1) == 0) continue;
    const int fd = s.wfd.load(std::memory_order_acquire);
    // send, not write: once the notifier's reading end is closed (close()
    // before the destructor uninstalls the handler), a write would raise
    // SIGPIPE and kill the process; MSG_NOSIGNAL makes it EPIPE.
    if (fd >= 0) [[maybe_unused]] ssize_t n = ::send(fd, &b, 1, MSG_NOSIGNAL | MSG_DONTWAIT);
  }
  errno = saved_errno;
}

}  // namespace detail_sig

class notifier : public net::detail_net::socket_base {
 public:
  // Must run on a G. Throws std::invalid_argument, saying why, for a signal
  // outside 1..SIGRTMAX, one that cannot be caught (SIGKILL, SIGSTOP), one
  // the C library keeps (32 .. SIGRTMIN-1), or a synchronous fault (SIGSEGV,
  // SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGSYS); std::system_error if
  // sigaction fails, with every handler it had installed put back.
  notifier(std::initializer_list<int> sigs) {
    std::uint64_t mask = 0;
    for (int s : sigs) {
      if (const char* why = detail_sig::refusal(s))
        throw std::invalid_argument("gort::signal::notifier: cannot catch signal " +
                                    std::to_string(s) + ": " + why);
      mask |= std::uint64_t{1} << (s - 1);
    }
    auto* np = net::detail_net::poller("signal::notifier");
    int fds[2];  // a socket pair rather than a pipe: see handler()
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0)
      throw std::system_error(errno, std::system_category(), "gort::signal::notifier: socketpair");
    ::fcntl(fds[1], F_SETFL, O_NONBLOCK);  // the handler must never block
    if (np->wants_nonblocking()) ::fcntl(fds[0], F_SETFL, O_NONBLOCK);
    std::error_code ec;
    d_ = adopt(np, fds[0], ec);  // (from here the base's destructor closes it)
    if (d_ == nullptr) {
      ::close(fds[1]);
      throw std::system_error(ec, "gort::signal::notifier");
    }
    np_ = np;
    wfd_ = fds[1];
    auto& r = detail_sig::reg();
    std::lock_guard<std::mutex> lk(r.mu);
    for (auto& s : r.slots) {
      int none = -1;
      if (s.wfd.load(std::memory_order_relaxed) == -1 &&
          s.mask.load(std::memory_order_relaxed) == 0 &&
          s.wfd.compare_exchange_strong(none, wfd_, std::memory_order_acq_rel)) {
        slot_ = &s;
        break;
      }
    }
    if (slot_ == nullptr) {
      ::close(wfd_);
      throw std::runtime_error("gort::signal::notifier: more than 64 notifiers at once");
    }
    slot_->mask.store(mask, std::memory_order_release);  // pairs with handler()'s load-acquire
    mask_ = mask;
    for (int s = 1; s <= 64; ++s) {
      if ((mask >> (s - 1) & 1) == 0 || r.users[static_cast<std::size_t>(s)]++ != 0) continue;
      struct sigaction sa{};
      sa.sa_handler = &detail_sig::handler;
      sigemptyset(&sa.sa_mask);
      // SA_ONSTACK: on an M, the handler runs on the M's alternate signal
      // stack (detail/overflow.hpp's thread_altstack), not on a G's.
      sa.sa_flags = SA_RESTART | SA_ONSTACK;
      if (detail_sig::sigaction_fn(s, &sa, &r.saved[static_cast<std::size_t>(s)]) != 0) {
        const int e = errno;
        unhook(r, s, s);
        ::close(wfd_);
        throw std::system_error(e, std::system_category(),
                                "gort::signal::notifier: sigaction(" + std::to_string(s) + ")");
      }
    }
  }
  notifier(const notifier&) = delete;
  notifier& operator=(const notifier&) = delete;

  ~notifier() {
    auto& r = detail_sig::reg();
    {
      std::lock_guard<std::mutex> lk(r.mu);
      unhook(r, 64, 0);
    }
    ::close(wfd_);
  }

  // Parks until one of the signals arrives; returns its number.
  int wait(std::error_code& ec) {
    ec.clear();
    if (!check_open(ec)) return 0;
    unsigned char b = 0;
    net::detail_net::io_req r;
    r.kind = net::detail_net::op_kind::read;
    r.buf = &b;
    r.len = 1;
    for (;;) {
      const std::int64_t n = io(r, false);
      if (n == 1) return b;
      if (n == -EINTR) continue;
      ec = n < 0 ? net::detail_net::errno_code(n) : std::make_error_code(std::errc::io_error);
      return 0;
    }
  }
  int wait() {
    std::error_code ec;
    const int s = wait(ec);
    if (ec) net::detail_net::throw_error(ec, "gort::signal::notifier::wait");
    return s;
  }

 private:
  // r.mu held. Frees the slot and, for this notifier's signals up to last
  // that no other notifier watches now, puts back the handler that was there
  // before; failed: the one whose install failed (nothing to put back).
  void unhook(detail_sig::registry& r, int last, int failed) noexcept {
    slot_->mask.store(0, std::memory_order_release);  // pairs with handler()'s load-acquire
    for (int s = 1; s <= last; ++s)
      if ((mask_ >> (s - 1) & 1) != 0 && --r.users[static_cast<std::size_t>(s)] == 0 && s != failed)
        ::sigaction(s, &r.saved[static_cast<std::size_t>(s)], nullptr);
    slot_->wfd.store(-1, std::memory_order_release);
  }

  detail_sig::slot* slot_ = nullptr;
  std::uint64_t mask_ = 0;
  int wfd_ = -1;
};

}  // namespace signal
GORT_END_NAMESPACE
