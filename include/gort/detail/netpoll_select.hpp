// gort/detail/netpoll_select.hpp: which netpoller a runtime gets.
//
// default_traits::poller is default_poller: io_uring, or epoll when
// io_uring is missing or refused (said once on stderr), or what
// GORT_POLLER=uring|epoll asks for. A traits type may name its own poller
// type instead: anything with
//   static std::unique_ptr<detail::netpoller_base> create(unsigned procs);
// (tests use that to force a backend or to wrap one).
#pragma once

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <system_error>

#include "config.hpp"
#include "netpoll.hpp"
#include "netpoll_epoll.hpp"
#include "netpoll_uring.hpp"

GORT_BEGIN_NAMESPACE
namespace detail {

// Out of fds right now is not "no io_uring": it is reported as itself (an
// error_code caller sees EMFILE and may try again later). ENOMEM is not:
// before Linux 5.12 it is RLIMIT_MEMLOCK, for good.
inline bool uring_out_of_fds(int err) noexcept { return err == EMFILE || err == ENFILE; }

// io_uring (ms: its multishot use; null: GORT_URING_MULTISHOT's) or a
// system_error saying why not.
inline std::unique_ptr<netpoller_base> uring_or_throw(unsigned procs, const uring_multishot* ms) {
  std::string why;
  int err = 0;
  auto p = ms != nullptr ? uring_poller::create(procs, why, *ms, &err)
                         : uring_poller::create(procs, why, &err);
  if (p) return p;
  if (uring_out_of_fds(err))
    throw std::system_error(err, std::system_category(), "gort: cannot set up io_uring (" + why + ")");
  throw std::system_error(std::make_error_code(std::errc::function_not_supported),
                          "gort: io_uring unavailable (" + why + ")");
}

struct uring_only_poller {
  static std::unique_ptr<netpoller_base> create(unsigned procs) {
    return uring_or_throw(procs, nullptr);
  }
};

// io_uring with one-shot requests only (no multishot accept / recv),
// whatever GORT_URING_MULTISHOT says.
struct uring_oneshot_poller {
  static std::unique_ptr<netpoller_base> create(unsigned procs) {
    constexpr uring_multishot none = uring_multishot::none;
    return uring_or_throw(procs, &none);
  }
};

struct epoll_only_poller {
  static std::unique_ptr<netpoller_base> create(unsigned) {
    std::string why;
    auto p = epoll_poller::create(why);
    if (!p) {
      // Out of fds or memory is that, not a missing epoll: say so, so that
      // an error_code caller sees EMFILE (and may try again later).
      const int e = errno;  // create() leaves the failed call's errno
      if (e == EMFILE || e == ENFILE || e == ENOMEM)
        throw std::system_error(e, std::system_category(), "gort: cannot set up epoll (" + why + ")");
      throw std::system_error(std::make_error_code(std::errc::function_not_supported),
                              "gort: epoll unavailable (" + why + ")");
    }
    return p;
  }
};

struct default_poller {
  static std::unique_ptr<netpoller_base> create(unsigned procs) {
    const char* env = std::getenv("GORT_POLLER");
    const bool force_epoll = env != nullptr && std::strcmp(env, "epoll") == 0;
    const bool force_uring = env != nullptr && std::strcmp(env, "uring") == 0;
    if (env != nullptr && *env != '\0' && !force_epoll && !force_uring) {
      static std::once_flag bad;
      std::call_once(bad, [env] {
        std::fprintf(stderr, "gort: ignoring GORT_POLLER=%s (want uring or epoll)\n", env);
      });
    }
    if (force_epoll) return epoll_only_poller::create(procs);
    std::string why;
    int err = 0;
    if (auto p = uring_poller::create(procs, why, &err)) return p;
    // Out of fds: no fallback, which would keep this runtime on epoll for
    // good (and epoll needs an fd too).
    if (uring_out_of_fds(err))
      throw std::system_error(err, std::system_category(),
                              "gort: cannot set up io_uring (" + why + ")");
    if (force_uring)
      throw std::system_error(std::make_error_code(std::errc::function_not_supported),
                              "gort: GORT_POLLER=uring, but io_uring is unavailable (" + why + ")");
    static std::once_flag said;
    std::call_once(said, [&why] {
      std::fprintf(stderr, "gort: io_uring unavailable (%s); using epoll\n", why.c_str());
    });
    return epoll_only_poller::create(procs);
  }
};

}  // namespace detail
GORT_END_NAMESPACE
