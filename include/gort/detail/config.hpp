// gort/detail/config.hpp: version, namespaces, fatal errors, sanitizer
// detection. Included first by every gort header; not part of the public API.
#pragma once

#include <cstdarg>
#include <cstddef>
#include <cstdio>
#include <cstdlib>

#define GORT_VERSION_MAJOR 0
#define GORT_VERSION_MINOR 1
#define GORT_VERSION_PATCH 0
#define GORT_VERSION_STRING "0.1.0"

// The versioned inline namespace: an ABI break bumps v0, so two gort
// versions linked into one program never collide silently.
#define GORT_BEGIN_NAMESPACE \
  namespace gort {           \
  inline namespace v0 {
#define GORT_END_NAMESPACE \
  }                        \
  }

#if !defined(__linux__)
#error "gort: only Linux is supported (it needs futex, mmap and io_uring)"
#endif

#if defined(__SANITIZE_ADDRESS__)
#define GORT_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define GORT_ASAN 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define GORT_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define GORT_TSAN 1
#endif
#endif
#ifndef GORT_ASAN
#define GORT_ASAN 0
#endif
#ifndef GORT_TSAN
#define GORT_TSAN 0
#endif

// Debug checks (assertions of "owner P only", status transitions, ...) are on
// unless NDEBUG is defined; GORT_DEBUG_CHECKS=0/1 overrides.
#ifndef GORT_DEBUG_CHECKS
#ifdef NDEBUG
#define GORT_DEBUG_CHECKS 0
#else
#define GORT_DEBUG_CHECKS 1
#endif
#endif

#define GORT_LIKELY(x) __builtin_expect(!!(x), 1)
#define GORT_UNLIKELY(x) __builtin_expect(!!(x), 0)

GORT_BEGIN_NAMESPACE
namespace detail {

// Prints "gort: fatal: <message>" and aborts. For broken invariants and
// unrecoverable states only; everything a caller can handle is an exception
// or an error_code. Not async-signal-safe (it uses stdio): the signal
// handler in detail/overflow.hpp writes its own message with write(2).
[[noreturn, gnu::cold, gnu::format(printf, 1, 2)]] inline void fatalf(
    const char* fmt, ...) noexcept {
  char buf[1024];
  int n = std::snprintf(buf, sizeof buf, "gort: fatal: ");
  std::va_list ap;
  va_start(ap, fmt);
  int m = std::vsnprintf(buf + n, sizeof buf - static_cast<unsigned>(n) - 1,
                         fmt, ap);
  va_end(ap);
  if (m < 0) m = 0;
  std::size_t len = static_cast<std::size_t>(n + m);
  if (len > sizeof buf - 2) len = sizeof buf - 2;
  buf[len++] = '\n';
  std::fwrite(buf, 1, len, stderr);
  std::fflush(stderr);
  std::abort();
}

// Prefetches the first `bytes` bytes at p, one 64-byte line at a time;
// Write: the lines are about to be written. A hint: wrong or stale
// addresses cost nothing but the wasted fetch (prefetch never faults).
template <bool Write = false>
inline void prefetch_lines(const void* p, std::size_t bytes) noexcept {
  const char* c = static_cast<const char*>(p);
  for (std::size_t off = 0; off < bytes; off += 64) __builtin_prefetch(c + off, Write ? 1 : 0);
}

}  // namespace detail
GORT_END_NAMESPACE

// GORT_FATAL("where: what %d", x): a broken invariant; never returns.
#define GORT_FATAL(...) ::gort::detail::fatalf(__VA_ARGS__)

// GORT_ASSERT(cond, "where: what"): checked in debug builds only.
#if GORT_DEBUG_CHECKS
#define GORT_ASSERT(cond, ...)                           \
  do {                                                   \
    if (GORT_UNLIKELY(!(cond))) GORT_FATAL(__VA_ARGS__); \
  } while (0)
#else
#define GORT_ASSERT(cond, ...) \
  do {                         \
  } while (0)
#endif
