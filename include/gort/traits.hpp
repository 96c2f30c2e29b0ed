// gort/traits.hpp: compile-time configuration of a runtime.
//
// basic_runtime<Traits> builds its G, P and M types from a traits struct.
// Inherit from default_traits and override what you need:
//
//   struct my_traits : gort::default_traits {
//     struct g_payload { int priority = 0; };     // per-G user data
//     static constexpr std::size_t stack_size = 64 * 1024;
//   };
//   gort::basic_runtime<my_traits> rt;
//
// Each member documents its trade-off; basic_runtime checks each with a
// static_assert whose message says what to change.
#pragma once

#include <cstddef>
#include <cstdint>

#include "detail/config.hpp"
#include "detail/runq.hpp"
#include "policy.hpp"

GORT_BEGIN_NAMESPACE

namespace detail {
struct default_poller;  // detail/netpoll_select.hpp
}

// Run-time configuration (what may differ between two runtimes of the same
// type). Zero means "the default".
struct config {
  // Number of Ps: how many Gs run in parallel. Default: the GORT_PROCS
  // environment variable if set (like GOMAXPROCS), else the number of CPUs
  // this process may run on.
  unsigned procs = 0;
  // Go's checkdead: abort with a report when every G is blocked forever.
  // Turn off for programs that outside threads feed later.
  bool deadlock_detection = true;
  // A G that keeps its P this long without reaching a yield point is
  // reported once on stderr (a debug aid, not a crash). 0: the default (1 s).
  std::int64_t hog_report_ms = 0;
  // Deterministic runtimes only (traits::deterministic, gort::testing::
  // sim_runtime): the seed of the PRNG that picks the next G to run.
  std::uint64_t seed = 0;
};

struct default_traits {
  // Per-G user data, default-constructed when a G is created and reset
  // (assigned a fresh value) when a G struct is reused. Keep it small: it
  // lives in every G.
  struct g_payload {};

  // Stack size of a G, in bytes: a multiple of the page size, at least
  // 16 KiB. Virtual memory is cheap (pages are committed on first touch);
  // what a G really uses is what it touches. Deep recursion or large locals
  // need more; 100k+ parked Gs want smaller. With g_in_stack (below) the G
  // struct itself lives at the top of this allocation.
  static constexpr std::size_t stack_size = 256 * 1024;

  // A deterministic runtime (gort::testing::sim_runtime): one P, the next
  // G to run picked among all runnable ones by a PRNG seeded from
  // config.seed, a virtual clock that jumps to the next timer when every G
  // is blocked, no sysmon, and a deadlock reported to run()'s caller
  // instead of aborting. Same seed, same interleaving. For tests only.
  static constexpr bool deterministic = false;

  // Shuffle the scheduling order on the real, multi-threaded runtime, as Go
  // does under its race detector: a readied G goes to the run queue's tail
  // instead of runnext half of the time, and a P sometimes takes from its
  // queue before runnext. Exposes code that assumes an order gort does not
  // promise; costs a little speed. gort::testing::shuffle_traits sets it.
  static constexpr bool shuffle_order = false;

  // Capacity of each P's local run queue (a power of two). Larger queues
  // spill to the global queue less often but make stealing coarser.
  static constexpr std::uint32_t run_queue_capacity = 256;

  // Each P's local run queue, instantiated as run_queue<G, run_queue_capacity>
  // with G the runtime's G base type. It must model gort::run_queue_policy
  // (gort/policy.hpp: which members run on the owner, which on thieves,
  // and what each must guarantee); gort::testing::check_run_queue tests
  // a replacement (gort/testing/run_queue.hpp, docs/testing.md).
  // The default is Go's runq: a lock-free FIFO ring, one owner, many
  // thieves; put and get cost a few plain loads and one release store or
  // CAS, a steal takes half with one CAS. What it trades away: order is
  // strictly first in, first out (no priorities, the newest G runs last
  // unless it took runnext), and thieves take the older half.
  template <class G, std::uint32_t N>
  using run_queue = detail::runq<G, N>;

  // Steal rounds over all Ps before a spinning M gives up (Go: 4).
  static constexpr int steal_tries = 4;

  // Every this-many schedules a P takes a G from the global queue first, so
  // that it cannot starve (Go: 61, a prime, to avoid lockstep patterns).
  static constexpr std::uint32_t global_queue_fairness = 61;

  // Keep the MXCSR and x87 control words per G (the ABI's promise: a G that
  // calls fesetround() does not change another G's rounding). false gives
  // Go's behaviour, the FP control state belongs to the thread, and saves
  // ~0.9 ns per switch; a G that changes the rounding mode then changes it
  // for whatever runs next on its thread.
  static constexpr bool preserve_fp_control = true;

  // Where a G struct lives.
  //   false: apart (new), ~300 bytes plus g_payload; the G gets a stack
  //          from a per-P cache when it first runs and gives it back when
  //          it exits. A queued G costs its struct only, and a G that runs
  //          and exits reuses a warm stack: best for many short Gs and deep
  //          run queues (skynet: 4-5x faster than true, docs/stacks.md).
  //   true:  at the top of its own stack, made with it at spawn and kept
  //          with it while dead. A parked G costs exactly one page (struct
  //          and frames share the stack's top page; false costs that page
  //          plus the struct): best for 100k+ mostly parked Gs, 4.0 KiB
  //          per parked G instead of 4.3. But every queued G then owns a
  //          stack page, so a large backlog of runnable Gs is slow.
  static constexpr bool g_in_stack = false;
  // Dead Gs kept per P for reuse (with g_in_stack, each with its stack),
  // and how many move to or from the global list at once.
  static constexpr std::uint32_t gfree_local_max = 64;
  static constexpr std::uint32_t gfree_batch = 32;
  // Dead Gs kept on the global list. Beyond it a G is freed (with
  // g_in_stack, its stack goes back to the stack allocator, which pools
  // some with their pages committed and releases the rest). Larger: fewer
  // Gs made and freed when their number swings; smaller: less memory kept
  // after a burst.
  static constexpr std::uint32_t gfree_global_max = 1024;
  // Stacks cached per P (g_in_stack false); half spills to the shared
  // allocator beyond it.
  static constexpr std::uint32_t stack_cache_max = 64;
  // Every spawn_yield_every-th gort::go of a G is a yield point: the spawner
  // goes behind the Gs queued so far, so they run (and their G structs and
  // stacks return to the free lists, still in cache) before it spawns more.
  // A G that spawns a million in a row then keeps ~this many alive instead
  // of a million (measured: 5x less CPU per spawn, docs/stacks.md). A G
  // also yields here when sysmon asked it to (10 ms on its P); a G locked
  // to its thread yields only then. So gort::go is a yield point: a caller
  // must not hold a thread_local's address, or a std::mutex that other Gs
  // take, across it. 0: gort::go never switches (a burst of spawns then
  // keeps every G, and its stack page, alive until the spawner yields).
  static constexpr std::uint32_t spawn_yield_every = 64;

  // The netpoller: a type with
  //   static std::unique_ptr<detail::netpoller_base> create(unsigned procs);
  // made on the runtime's first I/O. The default is io_uring with an epoll
  // fallback (GORT_POLLER=uring|epoll forces one); detail::uring_only_poller
  // and detail::epoll_only_poller force one in code; tests may wrap either.
  using poller = detail::default_poller;
};

GORT_END_NAMESPACE
