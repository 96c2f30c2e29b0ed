// gort/stack.hpp: coroutine stacks.
//
// Every G runs on a stack of its own from a stack_allocator. A stack is
// mmap'd, committed lazily by the kernel (a 256 KiB stack that uses 4 KiB
// costs 4 KiB of RAM), and reused: a freed stack goes back to the allocator's
// pool with its pages still committed, so the next G does not pay the
// first-touch page faults (~3 us each on small VMs).
//
// Every stack_allocator makes sure gort's SIGSEGV handler is installed
// (chained to the program's own; see detail/overflow.hpp).
//
// Protection. A guard page (PROT_NONE) below a stack splits its mapping in
// two VMAs, and Linux caps VMAs per process at vm.max_map_count (65530 by
// default): about 32,750 guarded stacks exhaust it. So an allocator hands out
// guarded stacks while a process-wide budget lasts (by default a quarter of
// vm.max_map_count, leaving the rest to malloc, threads and libraries; the
// environment variable GORT_GUARDED_STACKS=N overrides it), and beyond it
// carves stacks from shared 8 MiB regions; the lowest 64 bytes of each such
// stack are a canary that must stay zero (nothing writes it, so it costs no
// RAM: an untouched page reads as the kernel's shared zero page):
//   guard_page: an overflow faults in the guard page at once; the SIGSEGV
//               handler (detail/overflow.hpp) reports the G and aborts.
//   canary:     an overflow is found when the G next switches out (the canary
//               or the stack pointer is checked at every switch) and is
//               reported the same way; until then it may have written into
//               the neighbouring stack. The process aborts either way.
// See docs/stacks.md for the measurements behind these choices.
#pragma once

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <new>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

#include "detail/config.hpp"
#include "detail/futex_mutex.hpp"
#include "detail/overflow.hpp"

#if GORT_ASAN
extern "C" void __asan_unpoison_memory_region(const volatile void* addr, std::size_t size);
#endif

GORT_BEGIN_NAMESPACE

// One coroutine stack: usable memory [lo, hi), growing down from hi.
struct stack {
  enum class protection : std::uint8_t { none, guard_page, canary };

  char* lo = nullptr;  // lowest usable byte (just above the guard or canary)
  char* hi = nullptr;  // one past the highest usable byte
  protection prot = protection::none;

  std::size_t size() const noexcept { return static_cast<std::size_t>(hi - lo); }
  // The size it was allocated with: size() plus the canary, if any (a guard
  // page is not counted).
  std::size_t allocated_size() const noexcept {
    return prot == protection::canary ? size() + detail::canary_bytes : size();
  }
  explicit operator bool() const noexcept { return lo != nullptr; }

  // The lowest byte that still belongs to this stack: the guard page, the
  // canary, or lo.
  char* limit() const noexcept;

  // What the overflow checks need to know about this stack.
  detail::stack_bounds bounds() const noexcept {
    return {limit(), lo, hi, prot == protection::canary};
  }
};

// What every word below a canary-protected stack holds (zero: the slot's
// untouched memory; nothing is written); checked at every switch-out.
inline constexpr std::uint64_t stack_canary_value = detail::canary_value;
inline constexpr std::size_t stack_canary_bytes = detail::canary_bytes;

namespace detail {

// Process-wide guarded-stack budget (VMAs are a per-process resource).
inline std::atomic<std::size_t> guarded_stacks_in_use{0};

inline std::size_t default_guarded_budget() noexcept {
  static const std::size_t budget = [] {
    if (const char* env = std::getenv("GORT_GUARDED_STACKS")) {
      char* end = nullptr;
      unsigned long long v = std::strtoull(env, &end, 10);
      if (end != env && *end == '\0') return static_cast<std::size_t>(v);
      std::fprintf(stderr,
                   "gort: ignoring GORT_GUARDED_STACKS=%s (not a number)\n", env);
    }
    std::size_t max_map_count = 65530;
    if (std::FILE* f = std::fopen("/proc/sys/vm/max_map_count", "r")) {
      unsigned long long v = 0;
      if (std::fscanf(f, "%llu", &v) == 1 && v > 0) max_map_count = v;
      std::fclose(f);
    }
    return max_map_count / 4;  // two VMAs per guarded stack: half the map
  }();
  return budget;
}

}  // namespace detail

inline char* stack::limit() const noexcept {
  switch (prot) {
    case protection::guard_page: return lo - detail::page_size();
    case protection::canary: return lo - stack_canary_bytes;  // in the slot
    case protection::none: break;
  }
  return lo;
}

// Allocates, pools and frees stacks. Thread-safe (one mutex; the scheduler
// keeps per-P caches in front of it, so the mutex is off the hot path).
// Every stack must be returned with deallocate() before the allocator is
// destroyed.
class stack_allocator {
 public:
  struct options {
    // Largest number of guarded stacks this allocator may hold at once, on
    // top of the process-wide budget. Default: no limit of its own.
    std::size_t max_guarded = static_cast<std::size_t>(-1);
    // Freed stacks kept for reuse per size, with their pages committed.
    // Beyond it a guarded stack is unmapped and a carved one has its pages
    // released (MADV_DONTNEED): at once, or with deferred_release, once
    // scavenge() finds it unused.
    std::size_t pool_limit = 1024;
    // Keep freed stacks beyond pool_limit pooled as well, until a call to
    // scavenge() finds that no allocate() needed them since the call
    // before. For a program whose number of live stacks swings (a burst of
    // Gs, all dead, another burst), each swing then reuses committed
    // stacks instead of an mmap, an mprotect, a munmap and fresh zeroed
    // pages per stack. The caller must call scavenge() now and then (gort's
    // runtime does, from sysmon, about once a second), or the pool stays at
    // its high-water mark.
    bool deferred_release = false;
  };

  static constexpr std::size_t min_size = 16 * 1024;
  static constexpr std::size_t max_size = std::size_t{1} << 30;  // 1 GiB
  static constexpr std::size_t region_bytes = std::size_t{8} << 20;

  stack_allocator() : stack_allocator(options{}) {}
  explicit stack_allocator(options o) : opts_(o) {
    detail::install_overflow_handler();
  }
  stack_allocator(const stack_allocator&) = delete;
  stack_allocator& operator=(const stack_allocator&) = delete;

  ~stack_allocator() {
    if (in_use_ != 0)
      GORT_FATAL("stack_allocator destroyed with %zu stacks still in use "
                 "(deallocate() each one first)",
                 in_use_);
    for (auto& [size, pool] : pools_)
      for (const stack& s : pool.stacks) release(s);
    for (const auto& r : regions_) {
#if GORT_ASAN
      __asan_unpoison_memory_region(r.base, r.bytes);  // as in release()
#endif
      ::munmap(r.base, r.bytes);
    }
  }

  // Throws std::invalid_argument when size is 0, not a multiple of the page
  // size, below min_size or above max_size; std::bad_alloc when the kernel
  // refuses the memory.
  stack allocate(std::size_t size) {
    check_size(size);
    std::lock_guard<detail::futex_mutex> lk(mu_);
    if (auto* pool = find(pools_, size); pool && !pool->stacks.empty()) {
      stack s = pool->stacks.back();
      pool->stacks.pop_back();
      pool->low = std::min(pool->low, pool->stacks.size());
      ++in_use_;
      return s;
    }
    stack s = guarded_budget_left() ? map_guarded(size) : carve(size);
    ++in_use_;
    return s;
  }

  // Returns a stack to the pool. Never throws.
  void deallocate(const stack& s) noexcept {
    if (!s) return;
    std::lock_guard<detail::futex_mutex> lk(mu_);
    --in_use_;
    try {  // (slot() allocates the first time a size is freed)
      auto& pool = slot(pools_, s.allocated_size());
      if (pool.stacks.size() < opts_.pool_limit || opts_.deferred_release) {
        pool.stacks.push_back(s);
        return;
      }
    } catch (const std::bad_alloc&) {  // not pooled: released below
    }
    if (s.prot == stack::protection::canary) {
      ::madvise(s.limit(), static_cast<std::size_t>(s.hi - s.limit()),
                MADV_DONTNEED);  // the pages go; the canary reads zero again
      try {
        slot(carved_free_, s.allocated_size()).push_back(s);
      } catch (const std::bad_alloc&) {  // the slot stays mapped, unused
      }
      return;
    }
    release(s);
  }

  // Returns to the kernel the pooled stacks beyond pool_limit that no
  // allocate() needed since the previous call (per size: the pool's lowest
  // size in between, less pool_limit), oldest first; returns how many.
  // Meant for options::deferred_release (otherwise the pools never exceed
  // pool_limit). At most `max` per call: each is a system call, and a
  // caller that must stay responsive (sysmon) calls again soon when the
  // cap was reached. The system calls run outside the allocator's lock.
  // Never throws (if the bookkeeping cannot be allocated, nothing is
  // released).
  std::size_t scavenge(std::size_t max = static_cast<std::size_t>(-1)) noexcept {
    std::vector<stack> victims;
    std::size_t want = 0;
    {
      std::lock_guard<detail::futex_mutex> lk(mu_);
      for (auto& [size, pool] : pools_) want += unused_excess(pool);
    }
    want = std::min(want, max);
    if (want != 0) {
      try {
        victims.reserve(want);
      } catch (const std::bad_alloc&) {
        return 0;
      }
    }
    {
      std::lock_guard<detail::futex_mutex> lk(mu_);
      for (auto& [size, pool] : pools_) {
        // Recomputed: allocate() may have drawn on the pool meanwhile.
        const std::size_t n = std::min(unused_excess(pool), want - victims.size());
        const auto first = pool.stacks.begin();
        victims.insert(victims.end(), first, first + static_cast<std::ptrdiff_t>(n));
        pool.stacks.erase(first, first + static_cast<std::ptrdiff_t>(n));
        pool.low = pool.stacks.size();  // the next interval starts now
      }
    }
    for (const stack& s : victims) {
      if (s.prot == stack::protection::canary)
        ::madvise(s.limit(), static_cast<std::size_t>(s.hi - s.limit()), MADV_DONTNEED);
      else
        unmap_guarded(s);
    }
    std::lock_guard<detail::futex_mutex> lk(mu_);
    for (const stack& s : victims) {
      if (s.prot != stack::protection::canary) {
        --guarded_;
        continue;
      }
      try {
        slot(carved_free_, s.allocated_size()).push_back(s);
      } catch (const std::bad_alloc&) {  // the slot stays mapped, unused
      }
    }
    return victims.size();
  }

  // Stacks pooled beyond pool_limit (what scavenge() may release).
  std::size_t excess() const {
    std::lock_guard<detail::futex_mutex> lk(mu_);
    std::size_t n = 0;
    for (const auto& [size, pool] : pools_)
      if (pool.stacks.size() > opts_.pool_limit) n += pool.stacks.size() - opts_.pool_limit;
    return n;
  }

  // Stacks handed out and not yet returned.
  std::size_t in_use() const {
    std::lock_guard<detail::futex_mutex> lk(mu_);
    return in_use_;
  }
  std::size_t guarded_in_use() const {
    std::lock_guard<detail::futex_mutex> lk(mu_);
    return guarded_;
  }

  static void check_size(std::size_t size) {
    const std::size_t ps = detail::page_size();
    if (size == 0) throw std::invalid_argument("gort: stack size must not be 0");
    if (size % ps != 0)
      throw std::invalid_argument("gort: stack size " + std::to_string(size) +
                                  " is not a multiple of the page size (" +
                                  std::to_string(ps) + ")");
    if (size < min_size)
      throw std::invalid_argument("gort: stack size " + std::to_string(size) +
                                  " is below the minimum of " +
                                  std::to_string(min_size) + " bytes");
    if (size > max_size)
      throw std::invalid_argument("gort: stack size " + std::to_string(size) +
                                  " is above the maximum of " +
                                  std::to_string(max_size) + " bytes");
  }

 private:
  struct region {
    char* base;
    std::size_t bytes;
  };
  // Freed stacks of one size, newest at the back, and the fewest it held
  // since the last scavenge(): what stayed below that mark was not needed.
  struct pool {
    std::vector<stack> stacks;
    std::size_t low = 0;
  };
  template <class T>
  using by_size = std::vector<std::pair<std::size_t, T>>;

  template <class T>
  static T* find(by_size<T>& l, std::size_t size) {
    for (auto& [sz, v] : l)
      if (sz == size) return &v;
    return nullptr;
  }
  template <class T>
  static T& slot(by_size<T>& l, std::size_t size) {
    if (auto* p = find(l, size)) return *p;
    l.emplace_back(size, T{});
    return l.back().second;
  }

  std::size_t unused_excess(const pool& p) const noexcept {  // mu_ held
    const std::size_t keep = std::max(opts_.pool_limit, p.stacks.size() - std::min(p.low, p.stacks.size()));
    return p.stacks.size() > keep ? p.stacks.size() - keep : 0;
  }

  bool guarded_budget_left() const noexcept {
    return guarded_ < opts_.max_guarded &&
           detail::guarded_stacks_in_use.load(std::memory_order_relaxed) <
               detail::default_guarded_budget();
  }

  // One mapping: a PROT_NONE guard page, then `size` usable bytes.
  stack map_guarded(std::size_t size) {
    const std::size_t ps = detail::page_size();
    void* p = ::mmap(nullptr, size + ps, PROT_NONE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) {
      if (errno == ENOMEM) return carve(size);  // out of VMAs: try a region
      throw std::bad_alloc();
    }
    char* base = static_cast<char*>(p);
    if (::mprotect(base + ps, size, PROT_READ | PROT_WRITE) != 0) {
      ::munmap(base, size + ps);
      return carve(size);  // ENOMEM here means the VMA split failed
    }
    ++guarded_;
    detail::guarded_stacks_in_use.fetch_add(1, std::memory_order_relaxed);
    return stack{base + ps, base + ps + size, stack::protection::guard_page};
  }

  // A canary-protected slot of a shared region.
  stack carve(std::size_t size) {
    if (auto* list = find(carved_free_, size); list && !list->empty()) {
      stack s = list->back();
      list->pop_back();
      return s;
    }
    // Slot i is [base + i*size, base + (i+1)*size): the canary, then the
    // usable stack; the slot below is the neighbour an overflow reaches.
    const std::size_t n = std::max<std::size_t>(1, region_bytes / size);
    const std::size_t bytes = n * size;
    void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) throw std::bad_alloc();
    // With transparent huge pages set to "always", one touched byte would
    // commit 2 MiB (8 stacks' worth at 256 KiB): stacks use a page or two.
    ::madvise(p, bytes, MADV_NOHUGEPAGE);
    regions_.push_back(region{static_cast<char*>(p), bytes});
    auto& free_list = slot(carved_free_, size);
    free_list.reserve(free_list.size() + n);
    for (std::size_t i = n; i-- > 1;) {
      char* base = static_cast<char*>(p) + i * size;
      free_list.push_back(
          stack{base + stack_canary_bytes, base + size, stack::protection::canary});
    }
    char* base = static_cast<char*>(p);
    // No canary to write: a fresh slot reads zero (detail::canary_value).
    return stack{base + stack_canary_bytes, base + size, stack::protection::canary};
  }

  void release(const stack& s) noexcept {  // mu_ held
    if (s.prot == stack::protection::guard_page) {
      unmap_guarded(s);
      --guarded_;
    }
    // canary slots live until their region is unmapped by the destructor
  }

  // A guarded stack's mapping goes; the caller adjusts guarded_ under mu_.
  static void unmap_guarded(const stack& s) noexcept {
    const std::size_t ps = detail::page_size();
#if GORT_ASAN
    // ASan keeps a dead stack's frame redzones in its shadow after munmap;
    // the next mapping there (an io_uring ring, a heap arena) would read
    // as poisoned.
    __asan_unpoison_memory_region(s.lo, s.size());
#endif
    ::munmap(s.lo - ps, s.size() + ps);
    detail::guarded_stacks_in_use.fetch_sub(1, std::memory_order_relaxed);
  }

  options opts_;
  mutable detail::futex_mutex mu_;
  std::size_t in_use_ = 0;   // guarded by mu_
  std::size_t guarded_ = 0;  // guarded by mu_
  by_size<pool> pools_;      // guarded by mu_
  by_size<std::vector<stack>> carved_free_;  // guarded by mu_: never-used or released slots
  std::vector<region> regions_;  // guarded by mu_
};

GORT_END_NAMESPACE
