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
  // Must run on a G. Throws std::invalid_argument for a signal outside
  // 1..64 or one that cannot be caught (SIGKILL, SIGSTOP).
  notifier(std::initializer_list<int> sigs) {
    std::uint64_t mask = 0;
    for (int s : sigs) {
      if (s < 1 || s > 64 || s == SIGKILL || s == SIGSTOP)
        throw std::invalid_argument("gort::signal::notifier: cannot catch signal " + std::to_string(s));
      mask |= std::uint64_t{1} << (s - 1);
    }
    auto* np = net::detail_net::poller("signal::notifier");
    int fds[2];  // a socket pair rather than a pipe: see handler()
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0)
      throw std::system_error(errno, std::system_category(), "gort::signal::notifier: socketpair");
    ::fcntl(fds[1], F_SETFL, O_NONBLOCK);  // the handler must never block
    if (np->wants_nonblocking()) ::fcntl(fds[0], F_SETFL, O_NONBLOCK);
    std::error_code ec;
    d_ = adopt(np, fds[0], ec);
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
    slot_->mask.store(mask, std::memory_order_release);
    mask_ = mask;
    for (int s = 1; s <= 64; ++s) {
      if ((mask >> (s - 1) & 1) == 0 || r.users[static_cast<std::size_t>(s)]++ != 0) continue;
      struct sigaction sa{};
      sa.sa_handler = &detail_sig::handler;
      sigemptyset(&sa.sa_mask);
      sa.sa_flags = SA_RESTART;
      ::sigaction(s, &sa, &r.saved[static_cast<std::size_t>(s)]);
    }
  }
  notifier(const notifier&) = delete;
  notifier& operator=(const notifier&) = delete;

  ~notifier() {
    auto& r = detail_sig::reg();
    {
      std::lock_guard<std::mutex> lk(r.mu);
      slot_->mask.store(0, std::memory_order_release);
      for (int s = 1; s <= 64; ++s)
        if ((mask_ >> (s - 1) & 1) != 0 && --r.users[static_cast<std::size_t>(s)] == 0)
          ::sigaction(s, &r.saved[static_cast<std::size_t>(s)], nullptr);
      slot_->wfd.store(-1, std::memory_order_release);
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
  detail_sig::slot* slot_ = nullptr;
  std::uint64_t mask_ = 0;
  int wfd_ = -1;
};

}  // namespace signal
GORT_END_NAMESPACE
