// gort/detail/runtime2.hpp: the scheduler's data structures (Go's
// runtime2.go): G, P, M and the non-template base that the type-erased
// public API (gort::go, gort::yield, the sync primitives) works through.
// The functions that move them around are in proc.hpp.
#pragma once

#include <pthread.h>
#include <sched.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "../stack.hpp"
#include "config.hpp"
#include "context.hpp"
#include "debug.hpp"
#include "gslab.hpp"
#include "note.hpp"
#include "runq.hpp"
#include "spinlock.hpp"
#include "task.hpp"
#include "timers.hpp"

GORT_BEGIN_NAMESPACE
namespace detail {

// G status (Go's _Gidle ... _Gdead). Every change goes through
// casgstatus(), which dies loudly on a transition from an unexpected state.
enum class gstatus : std::uint32_t {
  idle,      // just allocated, not yet initialised
  runnable,  // on a run queue, not running
  running,   // owns an M and a P, executing user code
  syscall,   // in gort::blocking(): owns an M, not a P
  waiting,   // parked (gopark); on some wait queue
  dead,      // finished, on a free list
};

inline const char* to_string(gstatus s) noexcept {
  switch (s) {
    case gstatus::idle: return "idle";
    case gstatus::runnable: return "runnable";
    case gstatus::running: return "running";
    case gstatus::syscall: return "syscall";
    case gstatus::waiting: return "waiting";
    case gstatus::dead: return "dead";
  }
  return "?";
}

// P status (Go's _Pidle, _Prunning, _Psyscall).
enum class pstatus : std::uint32_t { idle, running, syscall };

class sched_base;
struct g_base;
class netpoller_base;

// What a G asks of its M's g0 when it switches there (Go's mcall(fn)).
// Lives on the G's stack: g0 copies what it needs before making the G
// visible to anybody else.
struct mcall_rec {
  enum kind_t : std::uint8_t { none, park, gosched, goexit, exitsyscall } kind;
  bool (*unlockf)(g_base*, void*) = nullptr;  // park: runs on g0 after the switch
  void* arg = nullptr;
};

// The part of a G that does not depend on the traits.
//
// With the traits' g_in_stack, a G struct lives at the top of its own
// stack (malg): a parked G then costs one page of RAM (its struct and its
// frames share the stack's top page) instead of a page plus the struct. G
// and stack are made together, stay together while the G waits on a free
// list (as in Go), and are freed together (gfree_one); `stk` is the whole
// allocation and si.stk.hi, where the usable stack ends, lies just below
// the struct. Without it, `stk` is empty until the G first runs and goes
// back to the P's stack cache when it exits.
struct g_base {
  context ctx;            // saved registers while not running
  stack_info si;          // kind "G", goid, the usable stack's bounds
  gort::stack stk;        // see above
  std::atomic<gstatus> atomicstatus{gstatus::idle};
  // The one intrusive link: a G is on at most one list at a time (a free
  // list, a netpoller's ready list; the global run queue holds pointers).
  g_base* schedlink = nullptr;
  std::uint64_t goid = 0;
  const char* waitreason = "";  // why it is waiting, for deadlock reports
  // Set by sysmon when the G has run too long; checked at yield points.
  std::atomic<bool> preempt{false};
  std::atomic<bool> hog_reported{false};  // sysmon reported it once
  bool slab = false;  // the struct lives in a P's gslab (else operator new or its stack)
  sched_base* sched = nullptr;  // the runtime that owns this G
  void* m = nullptr;            // the M running it (an M of `sched`), or null
  void* lockedm = nullptr;      // lock_os_thread: the M it is wired to
  std::uint32_t locked_count = 0;
  // Gs spawned by this G (owner only): every Traits::spawn_yield_every-th
  // spawn is a yield point (newproc).
  std::uint32_t nspawn = 0;
  void* param = nullptr;        // passed by a waker (Go's gp.param)
  task fn;                      // the body; reset when it returns
  allg_node allg;               // on debug_allgs while the struct lives (debug.hpp)
  // On its runtime's allgs list while the struct lives (allglock): an
  // intrusive list, so keeping track of a G costs no memory outside it.
  g_base* allnext = nullptr;
  g_base* allprev = nullptr;
  gstatus status() const noexcept {
    return atomicstatus.load(std::memory_order_acquire);
  }
};

// The G running on this thread, or null on g0 / a thread that is not an M.
// Out of line, and read fresh after every park: a G may resume on another
// thread, whose TLS is elsewhere.
inline thread_local g_base* tls_g = nullptr;
// The part of an M that does not depend on the traits: what the netpoller
// needs of the thread it runs on.
struct m_base {
  // The id of the P it holds, -1 for none (owner: acquirep / releasep). The
  // io_uring poller submits to that P's ring.
  int pid = -1;
  // io_uring requests this thread submitted that have not completed. A
  // thread's exit cancels them, so an M with any must not exit (mexit
  // waits until the count is zero).
  spinlock io_mu;
  std::int64_t io_inflight = 0;  // io_mu
  bool io_exiting = false;       // io_mu: mexit waits on io_exitnote
  note io_exitnote;

  // Reaper, any thread: one request of this M completed.
  void io_done() noexcept {
    std::lock_guard<spinlock> lk(io_mu);  // mexit may free us once it sees 0
    if (--io_inflight == 0 && io_exiting) io_exitnote.wakeup();
  }
  void io_submitted() noexcept {
    std::lock_guard<spinlock> lk(io_mu);
    ++io_inflight;
  }
  // This M's thread, before it exits: waits for its requests.
  void io_wait_before_exit() noexcept {
    {
      std::lock_guard<spinlock> lk(io_mu);
      if (io_inflight == 0) return;
      io_exiting = true;
    }
    io_exitnote.sleep();
    // io_done woke us under io_mu: take it once so it has left.
    std::lock_guard<spinlock> lk(io_mu);
    io_exiting = false;
  }
};

// The M whose thread this is (set once in mstart; g0 code never migrates).
inline thread_local m_base* tls_m = nullptr;
[[gnu::noinline]] inline g_base* current_g() noexcept {
  __asm__ volatile("" ::: "memory");
  return tls_g;
}
[[gnu::noinline]] inline void set_current_g(g_base* gp) noexcept { tls_g = gp; }

// casgstatus: the one choke point for G status changes. Dies with both
// states on a transition from anything but `from`.
//
// At any moment exactly one party may change a G's status: the M running it
// (running -> waiting/runnable/dead/syscall), the M that dequeued it
// (runnable -> running), or its single waker (waiting -> runnable, after the
// park completed). Ownership passes through the run queues and wait queues,
// whose release/acquire pairs order the status writes. So release builds
// check with a load and publish with a store-release (no locked
// instruction: two fewer per context switch); debug builds use a CAS, which
// also catches two parties racing for the same G.
inline void casgstatus(g_base* gp, gstatus from, gstatus to) noexcept {
#if GORT_DEBUG_CHECKS
  gstatus old = from;
  const bool ok = gp->atomicstatus.compare_exchange_strong(
      old, to, std::memory_order_acq_rel, std::memory_order_acquire);
#else
  const gstatus old = gp->atomicstatus.load(std::memory_order_relaxed);
  const bool ok = old == from;
  if (GORT_LIKELY(ok)) gp->atomicstatus.store(to, std::memory_order_release);
#endif
  if (GORT_UNLIKELY(!ok))
    GORT_FATAL("casgstatus: G %llu: bad transition %s -> %s (status is %s)",
               static_cast<unsigned long long>(gp->goid), to_string(from),
               to_string(to), to_string(old));
}

// The type-erased scheduler interface. Everything the public, non-template
// API needs to do on "the runtime of the current G".
class vnet_base;  // gort/net.hpp

class sched_base {
 public:
  // Current G only: park it. After the switch to g0, unlockf(gp, arg) runs
  // there; if it returns false the G is resumed at once. A waker can never
  // see the G before it is parked (its registers are saved first).
  virtual void gopark(bool (*unlockf)(g_base*, void*), void* arg,
                      const char* reason) = 0;
  // Any thread: make a waiting G runnable. next: it runs next on this P
  // (runnext, the waker's time slice), else it queues at the tail (timers
  // use that, so that Gs woken together run in firing order).
  virtual void goready(g_base* gp, bool next = true) = 0;
  // Current G only: yield its P (runtime.Gosched).
  virtual void gosched() = 0;
  // Any G of this runtime: start a G running f.
  virtual std::uint64_t spawn_task(task&& f) = 0;
  // Current G only: around a blocking call.
  virtual void entersyscall() = 0;
  virtual void exitsyscall() = 0;
  virtual void lock_os_thread() = 0;
  virtual void unlock_os_thread() = 0;
  // Any thread: start a timer (t->when, t->fn set; t not pending). Never
  // throws: it runs in park hooks, and out of memory is fatal there.
  virtual void add_timer(timer_node* t) = 0;
  // Any thread: stop t if pending; returns whether it was (false: it has
  // fired or is firing, and its fn runs or ran).
  virtual bool del_timer(timer_node* t) = 0;
  // Any thread: if t is pending, move it to deadline `when` where it is
  // and return true; else (fired or firing) return false, t untouched.
  // Never concurrent with add_timer or del_timer on the same t.
  virtual bool mod_timer(timer_node* t, std::int64_t when) = 0;
  // Current G, in a sync primitive's slow path, before its next brief
  // active spin: whether spinning can pay off at all (Go's
  // sync_runtime_canSpin without the count, which detail::can_spin checks).
  virtual bool can_spin() const noexcept { return true; }
  // Current G: a random number for a G's own choices (select's poll
  // order). The M's fast PRNG, or in a deterministic runtime a stream of
  // its own seeded from config.seed, so that a seed replays a run's
  // choices too, in any process.
  virtual std::uint32_t rand32() noexcept = 0;
  // Any thread: the runtime's clock in nanoseconds (CLOCK_MONOTONIC, or a
  // deterministic runtime's virtual clock). Timers and deadlines use it.
  virtual std::int64_t now() const noexcept { return nanotime(); }
  // Any G of this runtime: its netpoller, made on first use (netpoll.hpp).
  // Throws std::system_error if no backend can be set up.
  virtual netpoller_base* netpoller() = 0;
  // The in-memory network that stands in for the kernel's in this runtime
  // (gort::testing::sim_network), or null: gort::net goes to it when set.
  // Set before the first G runs, by the runtime's owner.
  vnet_base* vnet() const noexcept { return vnet_; }
  // Current G, right before gopark: the object it is about to wait on,
  // when the park's arg is not that object (a deterministic runtime's
  // deadlock report names it; others ignore it).
  virtual void set_wait_object(const void* /*obj*/) noexcept {}
  void set_vnet(vnet_base* v) noexcept { vnet_ = v; }
  // Expires when the runtime ends (its destructor, once every M is
  // joined): an object that may outlive the runtime (gort::timer) keeps
  // the weak pointer and checks it before using the runtime again.
  std::weak_ptr<const void> liveness() const noexcept { return alive_; }
  virtual ~sched_base() = default;

 protected:
  void end_liveness() noexcept { alive_.reset(); }

 private:
  vnet_base* vnet_ = nullptr;
  std::shared_ptr<const void> alive_ = std::make_shared<char>(0);
};

// The calling G's runtime clock (sched_base::now(): a deterministic
// runtime's is virtual), or CLOCK_MONOTONIC outside a G.
inline std::int64_t sched_nanotime() noexcept {
  g_base* gp = current_g();
  return gp != nullptr ? gp->sched->now() : nanotime();
}

// Go's active_spin and active_spin_cnt: a sync primitive that finds its
// lock taken spins at most this many rounds of this many PAUSEs before it
// parks, and only while can_spin says the holder may be running.
inline constexpr int active_spin = 4;
inline constexpr int active_spin_cnt = 30;

// A sync primitive's slow path, before its `i`th spin round (from 0):
// whether to spin once more or park now (Go's sync_runtime_canSpin). A
// thread outside any G has nothing better to do and spins its rounds.
inline bool can_spin(int i) noexcept {
  if (i >= active_spin) return false;
  g_base* gp = current_g();
  return gp == nullptr || gp->sched->can_spin();
}

// Any thread: lets others run. The current G goes to the back of its P's
// queue (gosched); a thread outside any G yields its CPU.
inline void yield_any() {
  if (g_base* gp = current_g()) gp->sched->gosched();
  else ::sched_yield();
}

template <class Traits>
struct basic_m;
template <class Traits>
class basic_sched;

template <class Traits>
struct basic_g : g_base {
  typename Traits::g_payload payload{};
};

// Per-P timestamps kept by sysmon (Go's sysmontick).
struct sysmontick {
  std::uint32_t schedtick = 0;
  std::int64_t schedwhen = 0;
  std::uint32_t syscalltick = 0;
  std::int64_t syscallwhen = 0;
};

template <class Traits>
struct basic_p {
  using g = basic_g<Traits>;
  using m = basic_m<Traits>;

  int id = 0;
  std::atomic<pstatus> status{pstatus::idle};
  m* mp = nullptr;         // the M holding it (owner); null when idle/syscall
  basic_p* link = nullptr; // on sched.pidle; guarded by sched.lock
  // Incremented on every schedule (owner) and on every syscall exit; sysmon
  // reads them to see whether the P made progress.
  std::atomic<std::uint32_t> schedtick{0};
  std::atomic<std::uint32_t> syscalltick{0};
  std::uint32_t timer_looks = 0;  // owner: direct switches, for gogo_next's timer look
  sysmontick sysmon;  // sysmon's thread only

  // Local run queue (the traits' run_queue, by default the lock-free
  // runq.hpp; the contract is in gort/policy.hpp) and runnext: a G readied
  // by the running G, run next, inheriting the time slice.
  using run_queue_type = typename Traits::template run_queue<g_base, Traits::run_queue_capacity>;
  run_queue_type runq;
  std::atomic<g_base*> runnext{nullptr};

  // Owner only: batches of Gs on their way to or from the global queue,
  // here rather than on the caller's stack (a G's, for runqputslow), whose
  // size has nothing to do with run_queue_capacity. Two: globrunqrest
  // puts a taken batch into the local queue, which may overflow it.
  g_base* overflowbuf[Traits::run_queue_capacity / 2 + 1];
  g_base* takebuf[Traits::run_queue_capacity / 2];

  // Owner only: free Gs (with g_in_stack, each with its stack) and a
  // stack cache (without).
  g_base* gfree = nullptr;
  std::uint32_t gfree_n = 0;
  std::vector<gort::stack> stackcache;
  // Owner only: where malg carves new G structs (g_in_stack false).
  gslab<sizeof(g), alignof(g)> gmem;

  // What it runs now, for sysmon (written by the owner in execute/dropg).
  std::atomic<g_base*> curg{nullptr};

  // Per-P counters, so that spawning and exiting touch no shared cache
  // line (a global counter bounced between 16 cores capped skynet's
  // speedup at ~2x). Owner writes (relaxed: stats() and the debugger
  // read them).
  //   goidcache..goidcacheend: G ids taken from the global counter in
  //     batches (Go's goidcache).
  //   gcredit: live-G credits (see basic_sched::gcount_): the global count
  //     over-counts by the sum of every P's credits, never under-counts,
  //     and a P returns its credits when it goes idle (pidleput).
  std::uint64_t goidcache = 0;
  std::uint64_t goidcacheend = 0;
  std::atomic<std::int64_t> gcredit{0};
  std::atomic<std::uint64_t> ncreated{0};
  std::atomic<std::uint64_t> nsteals{0};
  // Deterministic runtimes: Gs in the scheduler's draw bag (basic_sched::
  // simq_), so that runq_empty() sees them. Always 0 otherwise.
  std::atomic<std::uint32_t> sim_n{0};

  // Timers started on this P (Go 1.14+'s per-P heaps; timers.hpp). Any M
  // takes timers_mu to add, stop, reset or run one: the owner runs its
  // own at every findrunnable, any M about to idle runs every P's expired
  // ones. timer0when mirrors the top's deadline (INT64_MAX: no timer),
  // written under timers_mu after every change (timers_changed) and read
  // without it by whoever decides whether a look under the lock is due.
  alignas(64) spinlock timers_mu;
  timer_heap timers;                                  // timers_mu
  std::atomic<std::int64_t> timer0when{INT64_MAX};    // written under timers_mu

  void timers_changed() noexcept {  // timers_mu held
    timer0when.store(timers.empty() ? INT64_MAX : timers.top()->when, std::memory_order_release);
  }

  // Any thread: no G queued (local queue and runnext). runnext is loaded
  // seq_cst (a plain move on x86): a spinner's re-check after its seq_cst
  // decrement of nmspinning pairs with runqput's seq_cst exchange and
  // wakep's seq_cst loads (invariants 1 and 2, with no fence on either
  // side). And it is loaded before the queue: runqput's exchange may push
  // the old runnext to the queue's tail after wakep has read nmspinning;
  // if we then find runnext empty, its owner took the new G with a CAS
  // (acq_rel) after that push, so the queue load below sees the push.
  bool runq_empty() const noexcept {
    return runnext.load(std::memory_order_seq_cst) == nullptr && runq.empty() &&
           sim_n.load(std::memory_order_acquire) == 0;
  }
};

template <class Traits>
struct basic_m : m_base {
  using p = basic_p<Traits>;

  basic_sched<Traits>* owner = nullptr;
  context g0;             // the thread's own stack; schedule() runs here
  // A direct G-to-G switch (gogo_next) leaves here what the resumed side
  // must do for the G that switched out: it may be published (queued,
  // handed to its waker) only once its registers are saved.
  mcall_rec pending{mcall_rec::none};
  g_base* pending_g = nullptr;
  g_base* curg = nullptr; // the G it runs, or null on g0
  p* pp = nullptr;        // the attached P (owner)
  p* nextp = nullptr;     // the P handed to it before a wakeup (invariant 8)
  p* oldp = nullptr;      // the P it had before entering a syscall
  bool spinning = false;  // looking for work (counted in sched.nmspinning)
  note park;              // sleeps here when idle
  basic_m* schedlink = nullptr;  // on sched.midle; guarded by sched.lock
  g_base* lockedg = nullptr;     // lock_os_thread
  eh_globals* eh = nullptr;      // this thread's C++ exception state
  std::int64_t id = 0;
  pthread_t thread{};
  bool thread_started = false;     // guarded by sched.lock
  std::atomic<bool> exited{false};  // its thread has left mstart
  bool spinning_start = false;      // mstartfn = mspinning
  std::uint64_t fastrand = 0;

  std::uint32_t next_rand() noexcept {  // xorshift64*, per M
    fastrand ^= fastrand >> 12;
    fastrand ^= fastrand << 25;
    fastrand ^= fastrand >> 27;
    return static_cast<std::uint32_t>((fastrand * 0x2545F4914F6CDD1Dull) >> 32);
  }
};

}  // namespace detail
GORT_END_NAMESPACE
