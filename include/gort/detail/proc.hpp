// gort/detail/proc.hpp: the scheduler (Go's proc.go).
//
// Goroutine scheduler
//
// The scheduler's job is to distribute ready-to-run goroutines over OS
// threads. The three actors are Go's:
//   G - a goroutine: a function, a stack and its saved registers.
//   M - an OS thread that runs Gs. It runs scheduling code on g0, the
//       thread's own stack.
//   P - a processor: what an M must hold to run Gs. It owns a local run
//       queue, a cache of free Gs and of stacks. There are exactly `procs`
//       Ps; Ms are created on demand and may outnumber them (an M blocked in
//       gort::blocking() has given its P to another M).
//
// Rejected designs (as in Go): a single global run queue (every spawn and
// every wakeup would take one lock); direct M-to-M handoff of Gs (threads
// park and unpark constantly); one M per P with no spinning (a G readied on
// a busy P waits while other Ps sleep).
//
// Worker thread parking/unparking. We must keep enough Ms running to use all
// Ps, yet park excess ones to save CPU. Work is submitted (a G readied or
// spawned) at arbitrary times, so parking and unparking race. gort does what
// Go does: an M that found no local work first *spins*, looking at the global
// queue and stealing from other Ps; an M is unparked only if no M spins and
// a P is idle (wakep). A spinner that finds work unparks another spinner
// before running it (invariant 3), so one spinner remains while work may
// remain. The race between a submitter and a spinner that is giving up is
// closed by a StoreLoad pair on both sides:
//   submitter: publish the G (run queue), seq_cst fence, read nmspinning /
//              npidle (wakep); or publish it by a seq_cst RMW (the
//              exchange on runnext), which is that fence -- invariant 1
//   spinner:   decrement nmspinning (seq_cst RMW), re-check every run queue
//              and the global queue                    -- invariant 2
// Either the submitter sees the spinner still counted (and relies on it), or
// the spinner sees the work.
//
// Invariants (numbered as in docs/design.md, asserted where kept):
//   1. publish work, full fence (or publish by a seq_cst RMW), then check
//      nmspinning/npidle (wakep).
//   2. a spinner that stops spinning re-checks all queues after the
//      decrement.
//   3. a spinner that found work calls wakep() before running it
//      (resetspinning).
//   4. at most about half of the busy Ps have spinners (findrunnable).
//   5. handoffp starts an M for a P whenever findrunnable would find work on
//      it.
//   8. notes are one-shot: nextp is set before notewakeup; only the sleeper
//      clears the note.
//   6. at most one M blocks in the netpoller (the timer sleeper); an earlier
//      timer or a shutdown breaks it out (wake_timer_sleeper).
//   7. Gs returned by a poll are never dropped: with no P they go to the
//      global queue and Ms are started for idle Ps (injectglist).
//
// Where things run: functions marked "g0" run on an M's scheduler stack,
// never on a G; "G" on the current G's stack; "lock" means sched.lock must be
// held; "owner" means by the M that holds the P.
#pragma once

#include <cxxabi.h>
#include <pthread.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <new>
#include <stdexcept>
#include <string>
#include <system_error>
#include <type_traits>
#include <typeinfo>
#include <unordered_map>
#include <utility>
#include <vector>

#include "../stack.hpp"
#include "../traits.hpp"
#include "config.hpp"
#include "context.hpp"
#include "futex_mutex.hpp"
#include "note.hpp"
#include "overflow.hpp"
#include "netpoll.hpp"
#include "netpoll_select.hpp"
#include "runtime2.hpp"
#include "trace_event.hpp"
#include "../trace.hpp"

GORT_BEGIN_NAMESPACE

// Counters returned by basic_runtime::stats(). A snapshot: each field is read
// atomically, the set is not.
struct runtime_stats {
  std::uint64_t gs_created = 0;  // Gs ever spawned
  std::int64_t gs_live = 0;      // spawned and not yet finished
  int ms_total = 0;              // Ms (threads) alive, sysmon not counted
  int ms_idle = 0;               // parked on the idle list
  int ms_spinning = 0;           // looking for work
  int ps = 0;                    // number of Ps
  int ps_idle = 0;
  std::uint64_t steals = 0;      // successful steals from another P
  std::uint64_t handoffs = 0;    // Ps taken from a blocking() call by sysmon
  std::int64_t global_queue = 0; // Gs on the global run queue
};

namespace detail {

// The CPUs this process may run on (its affinity mask), at least 1 (Go's
// ncpu).
inline unsigned online_cpus() noexcept {
  cpu_set_t set;
  if (::sched_getaffinity(0, sizeof set, &set) == 0) {
    const int n = CPU_COUNT(&set);
    if (n > 0) return static_cast<unsigned>(n);
  }
  const long n = ::sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? static_cast<unsigned>(n) : 1u;
}

inline unsigned default_procs() {
  if (const char* env = std::getenv("GORT_PROCS")) {
    char* end = nullptr;
    const long v = std::strtol(env, &end, 10);
    if (end != env && *end == '\0' && v > 0 && v <= 4096) return static_cast<unsigned>(v);
    std::fprintf(stderr, "gort: ignoring GORT_PROCS=%s (want an integer in 1..4096)\n", env);
  }
  return online_cpus();
}

// GORT_DEBUG=schedtrace=<ms>[,...]
inline std::int64_t schedtrace_ms_from_env() {
  const char* env = std::getenv("GORT_DEBUG");
  if (env == nullptr) return 0;
  const char* k = std::strstr(env, "schedtrace=");
  if (k == nullptr) return 0;
  char* end = nullptr;
  errno = 0;
  const long long v = std::strtoll(k + 11, &end, 10);
  // 1 ms .. one day (sysmon multiplies it into nanoseconds).
  if (end != k + 11 && (*end == '\0' || *end == ',') && errno == 0 && v > 0 && v <= 86'400'000)
    return v;
  std::fprintf(stderr, "gort: ignoring GORT_DEBUG=schedtrace=%.*s (want milliseconds, 1..86400000)\n",
               static_cast<int>(std::strcspn(k + 11, ",")), k + 11);
  return 0;
}

inline std::atomic<std::uint64_t> next_goid{1};

// The global run queue's storage (under sched.lock): a ring of G pointers
// that grows by doubling and never shrinks. Go threads its global queue
// through g.schedlink; taking a batch from such a list is a chain of
// dependent cache misses, one per G (skynet spent about a quarter of its
// time in globrunqget walking it). Here a batch is a run of contiguous
// pointers, and the Gs' own misses, when they run, overlap.
class gring {
 public:
  gring() { buf_.resize(1024); }
  std::size_t size() const noexcept { return n_; }
  bool empty() const noexcept { return n_ == 0; }
  void push(g_base* gp) {
    if (n_ == buf_.size()) grow();
    buf_[(head_ + n_) & (buf_.size() - 1)] = gp;
    ++n_;
  }
  g_base* pop() noexcept {
    g_base* gp = buf_[head_];
    head_ = (head_ + 1) & (buf_.size() - 1);
    --n_;
    return gp;
  }
  // A batch in or out: at most two copies of contiguous pointers, so that
  // sched.lock is held for about as long as a memcpy of the batch.
  void push_n(g_base* const* src, std::size_t k) {
    while (n_ + k > buf_.size()) grow();
    const std::size_t mask = buf_.size() - 1;
    const std::size_t at = (head_ + n_) & mask;
    const std::size_t first = std::min(k, buf_.size() - at);
    std::copy_n(src, first, buf_.data() + at);
    std::copy_n(src + first, k - first, buf_.data());
    n_ += k;
  }
  void pop_n(g_base** dst, std::size_t k) noexcept {  // k <= size()
    const std::size_t first = std::min(k, buf_.size() - head_);
    std::copy_n(buf_.data() + head_, first, dst);
    std::copy_n(buf_.data(), k - first, dst + first);
    head_ = (head_ + k) & (buf_.size() - 1);
    n_ -= k;
  }

 private:
  // Out of memory here is fatal, loudly: its callers have already taken
  // the Gs off a local queue, or counted a new G as live, so a throw would
  // lose runnable Gs and leave the runtime waiting for them forever.
  void grow() {
    std::vector<g_base*> nb;
    try {
      nb.resize(buf_.size() * 2);
    } catch (const std::bad_alloc&) {
      GORT_FATAL("global run queue: out of memory growing it past %zu queued Gs", buf_.size());
    }
    for (std::size_t i = 0; i < n_; ++i) nb[i] = buf_[(head_ + i) & (buf_.size() - 1)];
    buf_.swap(nb);
    head_ = 0;
  }
  std::vector<g_base*> buf_;  // a power of two in size
  std::size_t head_ = 0;
  std::size_t n_ = 0;
};

// How a deterministic runtime picks the next G (gort::testing::
// sim_schedule re-exports it; docs/testing.md compares them).
enum class sim_schedule : std::uint8_t {
  random,     // uniformly among all runnable Gs, from the seeded PRNG
  pct,        // PCT: seeded random priorities, the highest runs, demoted at
              // pct_depth - 1 seeded change points (Burckhardt et al. 2010)
  run_queue,  // the traits' run queue and runnext, as the real runtime with
              // one P (no draw: tests a policy's order, reproducibly)
};

struct sim_schedule_options {
  sim_schedule kind = sim_schedule::random;
  unsigned pct_depth = 3;          // bugs of depth d need d - 1 change points
  std::uint64_t pct_steps = 1000;  // the change points fall in [1, pct_steps]
};

template <class Traits>
class basic_sched final : public sched_base {
  static_assert(Traits::stack_size % 4096 == 0 && Traits::stack_size >= 16 * 1024,
                "gort traits: stack_size must be a multiple of 4096 and at least 16 KiB");
  static_assert(Traits::stack_size <= (std::size_t{1} << 30),
                "gort traits: stack_size must be at most 1 GiB");
  static_assert(Traits::run_queue_capacity >= 2 &&
                    (Traits::run_queue_capacity & (Traits::run_queue_capacity - 1)) == 0,
                "gort traits: run_queue_capacity must be a power of two >= 2");
  static_assert(Traits::run_queue_capacity <= (std::uint32_t{1} << 20),
                "gort traits: run_queue_capacity must be at most 2^20 (each P keeps a "
                "buffer of that many G pointers for moves to and from the global queue)");
  // The traits' run_queue: one static_assert per member (gort/policy.hpp).
  static_assert(check_run_queue_policy<typename Traits::template run_queue<
                                           g_base, Traits::run_queue_capacity>,
                                       g_base, Traits::run_queue_capacity>(),
                "gort traits: run_queue<G, N> must model gort::run_queue_policy "
                "(see gort/policy.hpp and docs/api/policy.md)");
  static_assert(Traits::steal_tries >= 1, "gort traits: steal_tries must be >= 1");
  static_assert(Traits::global_queue_fairness >= 1,
                "gort traits: global_queue_fairness must be >= 1");
  static_assert(Traits::gfree_batch >= 1 && Traits::gfree_local_max > Traits::gfree_batch,
                "gort traits: need gfree_local_max > gfree_batch >= 1");
  static_assert(std::is_convertible_v<decltype(Traits::poller::create(1u)),
                                      std::unique_ptr<netpoller_base>>,
                "gort traits: poller must have static std::unique_ptr<detail::netpoller_base> "
                "create(unsigned procs) (see detail/netpoll_select.hpp)");
  static_assert(std::is_default_constructible_v<typename Traits::g_payload> &&
                    std::is_move_assignable_v<typename Traits::g_payload>,
                "gort traits: g_payload must be default-constructible and move-assignable");

 public:
  using g = basic_g<Traits>;
  using p = basic_p<Traits>;
  using m = basic_m<Traits>;
  static constexpr bool fp = Traits::preserve_fp_control;
  // With g_in_stack: the top of every G's stack that holds its struct
  // (malg), in whole cache lines so the usable stack stays 64-byte aligned.
  static constexpr bool g_in_stack = Traits::g_in_stack;
  static constexpr std::size_t g_header_bytes =
      g_in_stack ? (sizeof(g) + 63) & ~std::size_t{63} : 0;
  static_assert(g_header_bytes <= Traits::stack_size / 4,
                "gort traits: the G struct (g_payload included) lives at the top of its "
                "stack and must take at most a quarter of stack_size: shrink g_payload "
                "or raise stack_size");

  explicit basic_sched(const config& cfg);
  ~basic_sched() override;
  basic_sched(const basic_sched&) = delete;
  basic_sched& operator=(const basic_sched&) = delete;

  // ---- sched_base ----
  void gopark(bool (*unlockf)(g_base*, void*), void* arg, const char* reason) override;
  void endslice(g_base* gp);  // G: sysmon asked it to yield; demote runnext
  void goready(g_base* gp, bool next = true) override;
  void gosched() override;
  std::uint64_t spawn_task(task&& f) override { return newproc(std::move(f)); }
  void entersyscall() override;
  void exitsyscall() override;
  void lock_os_thread() override;
  void unlock_os_thread() override;
  void add_timer(timer_node* t) override;
  bool del_timer(timer_node* t) override;
  bool mod_timer(timer_node* t, std::int64_t when) override;
  void drop_timers();
  std::int64_t now() const noexcept override {
    if constexpr (det) return vclock_.load(std::memory_order_acquire);
    else return nanotime();
  }
  bool can_spin() const noexcept override;
  // Deterministic runtimes: what to do instead of aborting on a deadlock
  // (called with the report, on g0, under sched.lock) and with an
  // exception that escapes a G. Set before the first G runs.
  void set_sim_hooks(std::function<void(std::string)> on_deadlock,
                     std::function<void(std::exception_ptr)> on_failure) {
    std::lock_guard<futex_mutex> lk(lock_);
    sim_deadlock_ = std::move(on_deadlock);
    sim_failure_ = std::move(on_failure);
  }
  // Deterministic runtimes: how the next G is picked. Before the first G.
  void set_sim_schedule(const sim_schedule_options& o);
  // Deterministic runtimes: the scheduling decisions made so far (a PCT
  // run's step count; explore() sizes the next runs' change points by it).
  std::uint64_t sim_steps() const noexcept { return sim_steps_.load(std::memory_order_relaxed); }
  void set_wait_object(const void* obj) noexcept override {
    if constexpr (det) sim_wait_obj_ = obj;  // one M: the G that parks next is the caller
    else (void)obj;
  }
  // Any thread: events go to s from now on (null: none). The caller keeps
  // s alive until the runtime is destroyed: an M that loaded the old sink
  // just before may still be inside it when this returns (no event waits
  // for set_trace, so that tracing costs the hot paths one load).
  void set_trace(trace::sink* s) noexcept { trace_.store(s, std::memory_order_release); }
  // Any thread. One relaxed load and a branch when no sink is installed.
  // The no-tracer test inline (it sits on every park, ready and run); the
  // event is built out of line.
  [[gnu::always_inline]] void emit(trace::kind k, std::uint64_t g, std::uint64_t g2 = 0,
                                   int pid = -1, const char* reason = "") noexcept {
    // load-acquire: pairs with the store-release that installs the sink.
    trace::sink* s = trace_.load(std::memory_order_acquire);
    if (GORT_LIKELY(s == nullptr)) return;
    emit_slow(s, k, g, g2, pid, reason);
  }
  [[gnu::noinline]] void emit_slow(trace::sink* s, trace::kind k, std::uint64_t g,
                                   std::uint64_t g2, int pid, const char* reason) noexcept {
    trace::event e{k};
    e.ns = now();
    e.g = g;
    e.g2 = g2;
    e.m = tls_m != nullptr ? static_cast<m*>(tls_m)->id : 0;
    e.p = pid;
    e.reason = reason;
    s->on_event(e);
  }
  netpoller_base* netpoller() override {
    // load-acquire: pairs with the store-release in netpoller_slow.
    netpoller_base* np = np_.load(std::memory_order_acquire);
    return np != nullptr ? np : netpoller_slow();
  }

  // ---- for basic_runtime ----
  // Any non-G thread: blocks until no G of this runtime is left.
  void wait_all_gs();
  runtime_stats stats();
  unsigned procs() const noexcept { return procs_; }
  // Is the calling thread running a G of this runtime?
  bool on_g() const noexcept {
    g_base* gp = current_g();
    return gp != nullptr && gp->sched == this;
  }

 private:
  // ---- G lifecycle ----
  std::uint64_t newproc(task&& f);
  g* gfget(p* pp);
  void gfput(p* pp, g* gp);
  g* malg(p* pp);
  void gfree_one(g* gp) noexcept;  // allglock
  void allgunlink(g* gp) noexcept;  // allglock, debug_allgs.mu
  void gdestroy(g* gp) noexcept;
  gort::stack stackget(p* pp);     // !g_in_stack
  void stackput(p* pp, gort::stack s);
  static void gentry(transfer t) noexcept;
  static void escaped(g_base* gp, std::exception_ptr e) noexcept;
  void mcall(g_base* gp, mcall_rec& rec, bool last = false) noexcept;

  // ---- run queues ----
  bool runqput(p* pp, g_base* gp, bool next);  // true: gp published by a seq_cst RMW
  void runqputslow(p* pp, g_base* gp);
  std::pair<g_base*, bool> runqget(p* pp);
  std::uint64_t sim_draw() noexcept;           // deterministic runtimes
  std::uint32_t rand32() noexcept override;
  std::size_t pct_pick(std::uint64_t step);    // sim_schedule::pct
  void globrunqput(g_base* gp);                  // lock
  std::uint32_t globrunqget(std::int64_t max, g_base** out);  // lock
  g_base* globrunqrest(p* pp, g_base** gs, std::uint32_t n);
  g_base* globrunqtake(p* pp, std::int64_t max);  // takes and releases the lock
  g_base* runqsteal(p* pp, p* p2, bool steal_runnext);
  void inject(g_base* gp);
  void injectglist(m* mp, glist& l);

  // ---- netpoller ----
  netpoller_base* netpoller_slow();
  bool netpoll_inited() const noexcept { return np_.load(std::memory_order_acquire) != nullptr; }
  std::int64_t netpoll_waiters() const noexcept {
    netpoller_base* np = np_.load(std::memory_order_acquire);
    return np != nullptr ? np->waiters() : 0;
  }

  // ---- Ms and Ps ----
  void schedule(m* mp);
  bool run_g(m* mp, g_base* gp, bool inherit_time);
  mcall_rec* execute(m* mp, g_base* gp, bool inherit_time);
  void prepare_run(m* mp, p* pp, g_base* gp, bool inherit_time);
  bool gogo_next(g_base* gp, const mcall_rec& rec, bool last = false);
  bool yield_in_place(g_base* gp);
  // What findrunnable looks at besides pp's queue, and may put first: a
  // G on the global queue, a timer of pp's, a G waiting for I/O. A racy
  // snapshot.
  bool work_beyond_local(const p* pp) const noexcept {
    return runqsize_.load(std::memory_order_relaxed) != 0 ||
           pp->timer0when.load(std::memory_order_relaxed) != INT64_MAX || netpoll_waiters() != 0;
  }
  void after_switch(g_base* self);
  void dropg(m* mp);
  std::pair<g_base*, bool> findrunnable(m* mp);
  g_base* stealwork(m* mp, p* pp);
  bool check_runqs_no_p();
  void resetspinning(m* mp);
  void wakep(bool published_by_rmw = false);
  void startm(p* pp, bool spinning);
  bool stopm(m* mp);
  void handoffp(p* pp);
  void acquirep(m* mp, p* pp);
  p* releasep(m* mp);
  void pidleput(p* pp);  // lock
  p* pidleget();         // lock
  void mput(m* mp);      // lock
  m* mget();             // lock
  void newm(p* pp, bool spinning);
  void allocm_reap();    // lock not held
  static void* mstart(void* arg);
  void mexit(m* mp);
  void stoplockedm(m* mp);
  void startlockedm(m* mp, g_base* gp);
  void incidlelocked(int v);
  bool exitsyscallfast(m* mp, p* oldp);
  bool exitsyscall0(m* mp, g_base* gp);
  bool park_m(m* mp, g_base* gp, const mcall_rec& rec);
  void gosched_m(m* mp, g_base* gp);
  void requeue_yielded(p* pp, g_base* gp);
  void goexit0(m* mp, g_base* gp);
  void gdead(p* pp, g_base* gp);
  void rotate_runnext(p* pp);

  // ---- timers (one heap per P) ----
  m* this_m(g_base* cur) const noexcept;
  p* timer_home(const timer_node* t) const noexcept;
  void timer_added(p* home, std::int64_t when);
  std::size_t run_timers(p* onto, p* from, std::int64_t now);
  void check_timers(p* pp);
  bool run_expired_timers(p* pp);
  std::int64_t timer_earliest() const noexcept;
  bool become_timer_sleeper(m* mp);
  void timer_sleep(m* mp, glist& ready);
  void wake_timer_sleeper();  // lock

  // ---- sysmon, checkdead (sysmon.hpp) ----
  static void* sysmon_main(void* arg);
  void sysmon();
  std::uint32_t retake(std::int64_t now);
  void preemptone(p* pp, std::int64_t ran_ns);
  void wake_sysmon();
  void checkdead();  // lock
  void schedtrace(std::int64_t now);

  // ---- state (Go's sched) ----
  const config cfg_;
  const unsigned procs_;
  const unsigned ncpu_ = online_cpus();
  std::vector<std::unique_ptr<p>> allp_;  // fixed after construction
  std::vector<std::uint32_t> coprimes_;   // steal orders (Go's randomOrder)
  // Stacks beyond pool_limit stay pooled until sysmon's scavenge finds
  // them unused for a second (sysmon.hpp): a program whose live Gs swing
  // reuses committed stacks instead of mapping fresh ones each swing.
  // (A deterministic runtime has no sysmon: it releases at once.)
  stack_allocator stacks_{stack_allocator::options{.deferred_release = !det}};

  futex_mutex lock_;                    // sched.lock
  m* midle_ = nullptr;                 // lock: idle Ms
  int nmidle_ = 0;                     // lock
  int nmidlelocked_ = 0;               // lock: Ms parked with a locked G
  int mcount_ = 0;                     // lock: Ms alive
  int newm_inflight_ = 0;              // lock: startm's newm calls not yet done
  std::vector<m*> allm_;               // lock: every M ever made and not reaped
  std::vector<m*> freem_;              // lock: exited Ms to join and free
  p* pidle_ = nullptr;                 // lock
  std::atomic<int> npidle_{0};         // written under lock, read anywhere
  std::atomic<int> nmspinning_{0};
  gring runq_;                         // lock: the global run queue
  std::atomic<std::int64_t> runqsize_{0};  // written under lock
  bool shutdown_ = false;              // lock

  // sched.gFree: dead Gs in batches of gfree_batch, each chained through
  // schedlink and ended by nullptr. A P moves a whole batch in or out in
  // O(1) under the lock; a list of single Gs made the taker walk 32 G
  // structs last written on another CPU while holding the lock (a cache
  // miss each: 10% of skynet's time at 2 Ps). The capacity is reserved at
  // construction and never grown, so the lock never covers an allocation.
  struct gbatch {
    g_base* head;
    std::uint32_t n;
  };
  futex_mutex gfree_lock_;             // sched.gFree.lock
  std::vector<gbatch> gfree_;          // gfree_lock_
  std::uint32_t gfree_n_ = 0;          // gfree_lock_: Gs in gfree_
  // gfree_.size(), written under gfree_lock_ and read without it, so that
  // a P whose list is empty looks at the global one only when it has a
  // batch: while Gs are only being made (skynet's growth at 16 Ps), taking
  // the lock to find it empty on every spawn was 20% of the CPU time.
  std::atomic<std::uint32_t> gfree_batches_{0};

  futex_mutex allglock_;                // allglock
  g_base* allgs_ = nullptr;            // allglock: every G struct alive (g_base::allnext)

  // Live Gs plus every P's gcredit: never below the true count, exact
  // when every P is idle (which is when checkdead and wait_all_gs need it
  // to be zero). A P takes gcount_batch credits at once, spends one per
  // spawn, earns one per exit and hands back the surplus in batches.
  static constexpr std::int64_t gcount_batch = 16;
  std::atomic<std::int64_t> gcount_{0};
  std::atomic<std::uint64_t> gcreated_{0};  // spawned by threads without a P
  std::atomic<std::uint64_t> handoffs_{0};
  std::mutex gzero_mu_;
  std::condition_variable gzero_cv_;

  // Timers live in the Ps' heaps (basic_p::timers).
  m* timer_sleeper_ = nullptr;                 // lock: the M sleeping until a timer
  std::int64_t sleeper_until_ = INT64_MAX;     // lock: the deadline it sleeps until
  bool sleeper_woken_ = false;                 // lock
  // lock: the sleeper blocks in the netpoller (Go's lastpoll == 0), not on
  // its note; wake it with netpollBreak.
  bool sleeper_in_poll_ = false;
  std::atomic<bool> netpoll_blocked_{false};   // mirror of sleeper_in_poll_, read anywhere

  // The netpoller, made on first use (netpoller()); destroyed after every M.
  std::mutex np_mu_;
  std::unique_ptr<netpoller_base> np_owner_;   // np_mu_
  std::atomic<netpoller_base*> np_{nullptr};
  std::atomic<std::int64_t> lastpoll_{0};      // nanotime of the last poll (sysmon)
  std::atomic<bool> sysmon_polling_{false};    // sysmon holds reaped Gs (checkdead)

  // ---- trace hooks (gort/trace.hpp) ----
  std::atomic<trace::sink*> trace_{nullptr};
  std::unique_ptr<trace::sink> trace_owned_;  // GORT_TRACE=file

  // ---- deterministic runtimes (Traits::deterministic) ----
  // One P; every runnable G of the P sits in simq_ (no ring, no runnext)
  // and runqget picks one with sim_rng_; the clock is vclock_, advanced
  // only when every G is blocked (timer_sleep); no sysmon thread.
  static constexpr bool det = Traits::deterministic;
  // PCT (sim_schedule::pct): each G's priority, drawn the first time it
  // is picked from (keyed by goid, dropped at exit); pct_changes_ are the
  // steps at which the G about to run is demoted below every drawn
  // priority; a G picked pct_spin_limit times in a row while others wait
  // (a yield loop waiting for them) is moved below all of them, so that
  // strict priorities cannot livelock a spin-wait.
  static constexpr std::uint64_t pct_spin_limit = 1024;
  std::vector<g_base*> simq_;                  // the P's owner
  std::uint64_t sim_rng_ = 0;                  // the P's owner
  std::uint64_t sim_grng_ = 0;                 // the P's owner: rand32's stream
  sim_schedule_options sim_opt_;               // set before any G runs
  std::atomic<std::uint64_t> sim_steps_{0};    // written by the P's owner
  std::unordered_map<std::uint64_t, std::int64_t> pct_prio_;  // the P's owner
  std::vector<std::uint64_t> pct_changes_;     // ascending; set before any G runs
  std::size_t pct_next_change_ = 0;            // the P's owner
  std::int64_t pct_floor_ = 0;                 // the P's owner: lowest priority given
  std::uint64_t pct_last_ = 0, pct_streak_ = 0;  // the P's owner
  std::atomic<std::uint64_t> sim_goid_{0};     // G ids, from 1 in each runtime
  // allglock_: the last gopark arg of each G (a primitive's lock, an I/O
  // op): Gs waiting on one object show one address in a deadlock report.
  std::unordered_map<const g_base*, const void*> sim_wait_on_;
  const void* sim_wait_obj_ = nullptr;  // the current G's set_wait_object, until its gopark
  std::atomic<std::int64_t> vclock_{1'000'000'000};
  std::function<void(std::string)> sim_deadlock_;        // lock_
  std::function<void(std::exception_ptr)> sim_failure_;  // set before any G runs
  std::atomic<bool> sim_deadlocked_{false};  // set under lock_; wait_all_gs reads it

  pthread_t sysmon_thread_{};
  note sysmonnote_;
  std::atomic<bool> sysmonwait_{false};  // written under lock
  std::atomic<bool> sysmon_stop_{false};
  std::int64_t schedtrace_ms_ = 0;
  std::int64_t start_ns_ = 0;
};

// ---------------------------------------------------------------------------
// Construction and teardown

template <class Traits>
basic_sched<Traits>::basic_sched(const config& cfg)
    : cfg_(cfg), procs_(det ? 1u : cfg.procs != 0 ? cfg.procs : default_procs()) {
  if (det && cfg.procs > 1)
    throw std::invalid_argument("gort: a deterministic runtime has exactly one P (config.procs " +
                                std::to_string(cfg.procs) + ")");
  if constexpr (det) {
    std::uint64_t z = cfg.seed + 0x9e3779b97f4a7c15ull;  // splitmix64 of the seed
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    sim_rng_ = (z ^ (z >> 31)) | 1;
    // The Gs' own stream: another draw of splitmix64, so that select's
    // choices do not shift the schedule's draws (or the reverse).
    z = cfg.seed + 2 * 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    sim_grng_ = (z ^ (z >> 31)) | 1;
  }
  if (procs_ > 4096)
    throw std::invalid_argument("gort: config.procs must be at most 4096, got " +
                                std::to_string(procs_));
  install_overflow_handler();
  start_ns_ = nanotime();
  if (const char* path = std::getenv("GORT_TRACE"); path != nullptr && *path != '\0') {
    // GORT_TRACE=file: Chrome trace JSON (chrome://tracing, Perfetto).
    auto w = std::make_unique<trace::chrome_writer>(path);
    if (w->ok()) {
      trace_.store(w.get(), std::memory_order_release);
      trace_owned_ = std::move(w);
    } else {
      std::fprintf(stderr, "gort: GORT_TRACE=%s: cannot open the file (%s); not tracing\n", path,
                   std::strerror(errno));
    }
  }
  schedtrace_ms_ = schedtrace_ms_from_env();
  // Whole batches fill it, plus the partial ones left by P-less spawns.
  gfree_.reserve(Traits::gfree_global_max / Traits::gfree_batch + 2);
  allp_.reserve(procs_);
  for (unsigned i = 0; i < procs_; ++i) {
    allp_.push_back(std::make_unique<p>());
    allp_.back()->id = static_cast<int>(i);
  }
  for (unsigned i = 1; i <= procs_; ++i) {
    unsigned a = i, b = procs_;
    while (b != 0) a = std::exchange(b, a % b);
    if (a == 1) coprimes_.push_back(i);
  }
  {
    std::lock_guard<futex_mutex> lk(lock_);
    for (auto it = allp_.rbegin(); it != allp_.rend(); ++it) pidleput(it->get());
  }
  if (det) return;  // no sysmon: nothing may depend on real time
  if (int err = ::pthread_create(&sysmon_thread_, nullptr, &sysmon_main, this); err != 0)
    throw std::system_error(err, std::generic_category(), "gort: cannot start sysmon thread");
}

template <class Traits>
basic_sched<Traits>::~basic_sched() {
  // Every G has finished (basic_runtime waited). Stop the Ms: the idle ones
  // are woken with no P; the others reach stopm() soon and see shutdown_.
  {
    std::lock_guard<futex_mutex> lk(lock_);
    shutdown_ = true;
    while (m* mp = mget()) {
      mp->nextp = nullptr;
      mp->park.wakeup();
    }
    wake_timer_sleeper();
  }
  sysmon_stop_.store(true, std::memory_order_release);
  {
    std::lock_guard<futex_mutex> lk(lock_);
    if (sysmonwait_.load(std::memory_order_relaxed)) {
      sysmonwait_.store(false, std::memory_order_relaxed);
      sysmonnote_.wakeup();
    }
  }
  if (!det) ::pthread_join(sysmon_thread_, nullptr);
  std::vector<m*> ms;
  for (;;) {
    std::unique_lock<futex_mutex> lk(lock_);
    // An M a startm began before shutdown_ may still be in newm: take the
    // list once it is in it, with its thread handle.
    if (newm_inflight_ != 0) {
      lk.unlock();
      ::sched_yield();
      continue;
    }
    ms = allm_;
    allm_.clear();
    freem_.clear();
    break;
  }
  for (m* mp : ms) {
    if (mp->thread_started) ::pthread_join(mp->thread, nullptr);
    delete mp;
  }
  drop_timers();
  for (auto& pp : allp_) {
    for (auto& s : pp->stackcache) stacks_.deallocate(s);
    pp->stackcache.clear();
  }
  {
    std::lock_guard<futex_mutex> lk(allglock_);
    while (g_base* gp = allgs_) gfree_one(static_cast<g*>(gp));
  }
  for (auto& pp : allp_) pp->gmem.release();  // their last chunks go
  np_.store(nullptr, std::memory_order_relaxed);
  np_owner_.reset();  // no M is left to poll it
}

// Any G: makes the netpoller on first use. Then the timer sleeper (if any)
// is woken so that it sleeps in the poller from now on.
template <class Traits>
netpoller_base* basic_sched<Traits>::netpoller_slow() {
  std::lock_guard<std::mutex> lk(np_mu_);
  if (netpoller_base* np = np_.load(std::memory_order_acquire)) return np;
  np_owner_ = Traits::poller::create(procs_);
  if (!np_owner_) throw std::runtime_error("gort: the traits' poller::create returned null");
  np_.store(np_owner_.get(), std::memory_order_release);
  std::lock_guard<futex_mutex> lk2(lock_);
  wake_timer_sleeper();
  return np_owner_.get();
}

template <class Traits>
void basic_sched<Traits>::wait_all_gs() {
  std::unique_lock<std::mutex> lk(gzero_mu_);
  gzero_cv_.wait(lk, [&] {
    if constexpr (det) {  // after a reported deadlock the parked Gs are abandoned
      if (sim_deadlocked_.load(std::memory_order_acquire)) return true;
    }
    return gcount_.load(std::memory_order_acquire) == 0;
  });
}

template <class Traits>
runtime_stats basic_sched<Traits>::stats() {
  runtime_stats s;
  s.gs_created = gcreated_.load(std::memory_order_relaxed);
  s.gs_live = gcount_.load(std::memory_order_relaxed);
  s.steals = 0;
  for (auto& pp : allp_) {
    s.gs_created += pp->ncreated.load(std::memory_order_relaxed);
    s.gs_live -= pp->gcredit.load(std::memory_order_relaxed);
    s.steals += pp->nsteals.load(std::memory_order_relaxed);
  }
  if (s.gs_live < 0) s.gs_live = 0;  // a racy snapshot
  s.handoffs = handoffs_.load(std::memory_order_relaxed);
  s.ms_spinning = nmspinning_.load(std::memory_order_relaxed);
  s.ps = static_cast<int>(procs_);
  std::lock_guard<futex_mutex> lk(lock_);
  s.ms_total = mcount_;
  s.ms_idle = nmidle_;
  s.ps_idle = npidle_.load(std::memory_order_relaxed);
  s.global_queue = runqsize_.load(std::memory_order_relaxed);
  return s;
}

// ---------------------------------------------------------------------------
// G lifecycle

// Any thread. Creates a G running f and makes it runnable: on the current
// P's runnext when called from a G of this runtime, else on the global queue.
template <class Traits>
std::uint64_t basic_sched<Traits>::newproc(task&& f) {
  g_base* cur = current_g();
  m* mp = (cur != nullptr && cur->sched == this) ? static_cast<m*>(cur->m) : nullptr;
  p* pp = (mp != nullptr && cur->status() == gstatus::running) ? mp->pp : nullptr;
  g* newg = pp != nullptr ? gfget(pp) : nullptr;
  if (pp == nullptr && gfree_batches_.load(std::memory_order_relaxed) != 0) {
    std::lock_guard<futex_mutex> lk(gfree_lock_);
    if (!gfree_.empty()) {
      gbatch& b = gfree_.back();
      newg = static_cast<g*>(b.head);
      b.head = newg->schedlink;
      --gfree_n_;
      if (--b.n == 0) {
        gfree_.pop_back();
        gfree_batches_.store(static_cast<std::uint32_t>(gfree_.size()), std::memory_order_relaxed);
      }
    }
  }
  if (newg == nullptr) newg = malg(pp);  // status idle
  else newg->payload = typename Traits::g_payload{};
  newg->schedlink = nullptr;
  newg->fn = std::move(f);
  // g_in_stack: its first frame, at the top of the stack it already has
  // (malg), the page of the G struct. Otherwise at its first run.
  if constexpr (g_in_stack) newg->ctx.make(&newg->si, &gentry);
  newg->nspawn = 0;
  if (det) {
    newg->goid = ++sim_goid_;  // per runtime: a replay prints the same ids
  } else if (pp != nullptr) {
    if (pp->goidcache == pp->goidcacheend) {  // Go's goidcache: a batch at a time
      pp->goidcache = next_goid.fetch_add(16, std::memory_order_relaxed);
      pp->goidcacheend = pp->goidcache + 16;
    }
    newg->goid = pp->goidcache++;
  } else {
    newg->goid = next_goid.fetch_add(1, std::memory_order_relaxed);
  }
  newg->si.id = newg->goid;
  newg->waitreason = "";
  newg->preempt.store(false, std::memory_order_relaxed);
  newg->hog_reported.store(false, std::memory_order_relaxed);
  newg->lockedm = nullptr;
  newg->locked_count = 0;
  newg->param = nullptr;
  if (pp != nullptr) {
    std::int64_t c = pp->gcredit.load(std::memory_order_relaxed);
    if (c == 0) {
      gcount_.fetch_add(gcount_batch, std::memory_order_relaxed);
      c = gcount_batch;
    }
    pp->gcredit.store(c - 1, std::memory_order_relaxed);
    pp->ncreated.store(pp->ncreated.load(std::memory_order_relaxed) + 1,
                       std::memory_order_relaxed);
  } else {
    gcount_.fetch_add(1, std::memory_order_relaxed);
    gcreated_.fetch_add(1, std::memory_order_relaxed);
  }
  const std::uint64_t id = newg->goid;
  emit(trace::kind::spawn, id, cur != nullptr ? cur->goid : 0, pp != nullptr ? pp->id : -1);
  casgstatus(newg, newg->status() == gstatus::idle ? gstatus::idle : gstatus::dead,
             gstatus::runnable);
  if (pp != nullptr) {
    const bool rmw = runqput(pp, newg, true);
    if (procs_ != 1) wakep(rmw);  // one P, ours: no P is idle (as goready)
    // Yield points. Go preempts a spawning loop asynchronously; gort
    // cannot, so spawning is where a spawner gives way: every
    // spawn_yield_every-th spawn, and whenever sysmon has flagged it (10 ms
    // on its P without a schedule). It then goes behind every queued G
    // (gosched_m sends a preempted G to the global queue), so the Gs it
    // made run, exit and return their G structs and stacks, still in
    // cache, before it spawns more. Without it one G spawning 1M Gs at 1 P
    // kept 1M Gs alive at once: first-touch faults and cold cache lines
    // made a spawn 5x dearer (docs/stacks.md, "Spawning").
    // spawn_yield_every = 0 keeps gort::go from ever switching (a caller
    // may rely on staying on its thread across it).
    if constexpr (Traits::spawn_yield_every != 0) {
      if (GORT_UNLIKELY(++cur->nspawn == Traits::spawn_yield_every)) {
        cur->nspawn = 0;
        // A locked G would hand its P and thread off and back: not worth it.
        if (cur->lockedm == nullptr) cur->preempt.store(true, std::memory_order_relaxed);
      }
      if (GORT_UNLIKELY(cur->preempt.load(std::memory_order_relaxed))) gosched();
    }
  } else {
    inject(newg);
  }
  return id;
}

// Owner. A free G struct from the P's list, refilled with a batch from the
// global list.
template <class Traits>
typename basic_sched<Traits>::g* basic_sched<Traits>::gfget(p* pp) {
  // A stale zero only means one malg more; a stale non-zero, one look.
  if (pp->gfree == nullptr && gfree_batches_.load(std::memory_order_relaxed) != 0) {
    gbatch b{nullptr, 0};
    {
      std::lock_guard<futex_mutex> lk(gfree_lock_);
      if (!gfree_.empty()) {
        b = gfree_.back();
        gfree_.pop_back();
        gfree_n_ -= b.n;
        gfree_batches_.store(static_cast<std::uint32_t>(gfree_.size()), std::memory_order_relaxed);
      }
    }
    pp->gfree = b.head;
    pp->gfree_n = b.n;
  }
  g_base* gp = pp->gfree;
  if (gp == nullptr) return nullptr;
  pp->gfree = gp->schedlink;
  --pp->gfree_n;
  // The next spawn's G, fetched while this one is set up and runs: a G
  // from a batch that died on another CPU is a cache miss (newproc's
  // costliest load at 2 Ps before this).
  if (pp->gfree != nullptr) prefetch_lines<true>(pp->gfree, sizeof(g));
  return static_cast<g*>(gp);
}

// Owner. Puts a dead G (with its stack) on the P's free list; when the
// local list is full, its newest gfree_batch Gs go to the global list as
// one batch, or are freed when the global list holds gfree_global_max
// already (Go keeps every G struct and frees idle stacks at GC; here
// struct and stack are one allocation).
template <class Traits>
void basic_sched<Traits>::gfput(p* pp, g* gp) {
  gp->schedlink = pp->gfree;
  pp->gfree = gp;
  ++pp->gfree_n;
  if (pp->gfree_n < Traits::gfree_local_max) return;
  // Cut the batch off outside the lock: these Gs died on this CPU.
  g_base* const head = pp->gfree;
  g_base* tail = head;
  for (std::uint32_t i = 1; i < Traits::gfree_batch; ++i) tail = tail->schedlink;
  pp->gfree = tail->schedlink;
  pp->gfree_n -= Traits::gfree_batch;
  tail->schedlink = nullptr;
  {
    std::lock_guard<futex_mutex> lk(gfree_lock_);
    if (gfree_n_ + Traits::gfree_batch <= Traits::gfree_global_max &&
        gfree_.size() < gfree_.capacity()) {
      gfree_.push_back({head, Traits::gfree_batch});  // no allocation: reserved
      gfree_n_ += Traits::gfree_batch;
      gfree_batches_.store(static_cast<std::uint32_t>(gfree_.size()), std::memory_order_relaxed);
      return;
    }
  }
  {
    std::lock_guard<futex_mutex> lk(allglock_);
    std::lock_guard<std::mutex> dlk(debug_allgs.mu);  // leaf lock
    for (g_base* x = head; x != nullptr; x = x->schedlink) allgunlink(static_cast<g*>(x));
  }
  // Freed after allglock: preemptone takes it before it reads a P's curg,
  // and these Gs left curg before this gfput, so once we have held it no
  // preemptone can reach them (see preemptone). malloc stays out of it.
  for (g_base* x = head; x != nullptr;) {
    g_base* const next = x->schedlink;
    gdestroy(static_cast<g*>(x));
    x = next;
  }
}

// New Gs, registered in allgs (for checkdead and teardown) and in
// debug_allgs (for debuggers), status idle. With g_in_stack each struct is
// built at the top of a new stack (see g_base). Any thread.
//
// malg(nullptr) makes one. malg(pp) (pp's owner, its free list empty)
// makes a batch of gfree_batch, returns one and leaves the rest on pp's
// free list: one allglock acquisition per batch instead of per G. While a
// program only grows (skynet's first half at 16 Ps), every spawn made a G
// and allglock was then the most contended lock (20% of the CPU time).
// Throws std::bad_alloc only if not even one G could be made.
template <class Traits>
typename basic_sched<Traits>::g* basic_sched<Traits>::malg(p* pp) {
  g* made[Traits::gfree_batch];
  const std::uint32_t want = pp != nullptr ? Traits::gfree_batch : 1;
  std::uint32_t n = 0;
  try {
    for (; n < want; ++n) {
      g* gp;
      if constexpr (g_in_stack) {
        const gort::stack stk = stacks_.allocate(Traits::stack_size);
        char* const top = stk.hi - g_header_bytes;
#if GORT_ASAN
        // A pooled stack may carry the redzones of its last user's frames.
        __asan_unpoison_memory_region(top, g_header_bytes);
#endif
        gp = ::new (static_cast<void*>(top)) g();
        gp->stk = stk;
        gp->si.stk = stk.bounds();
        gp->si.stk.hi = top;  // the usable stack ends below the struct
      } else if (pp != nullptr) {
        gp = ::new (pp->gmem.carve()) g();
        gp->slab = true;
      } else {
        gp = new g();
      }
      gp->sched = this;
      gp->si.kind = "G";
      made[n] = gp;
    }
  } catch (const std::bad_alloc&) {
    if (n == 0) throw;  // else: fewer spare ones
  }
  {
    std::lock_guard<futex_mutex> lk(allglock_);
    std::lock_guard<std::mutex> dlk(debug_allgs.mu);  // leaf lock
    for (std::uint32_t i = 0; i < n; ++i) {
      g* const gp = made[i];
      gp->allnext = allgs_;
      if (allgs_ != nullptr) allgs_->allprev = gp;
      allgs_ = gp;
      debug_allgs.link(&gp->allg);
    }
  }
  for (std::uint32_t i = 1; i < n; ++i) {  // the spares, as gfput would (no spill:
    made[i]->schedlink = pp->gfree;        // the list was empty, and n <= batch)
    pp->gfree = made[i];
    ++pp->gfree_n;
  }
  return made[0];
}

// allglock and debug_allgs.mu. Unregisters gp (dead or idle, on no list).
template <class Traits>
void basic_sched<Traits>::allgunlink(g* gp) noexcept {
  if (gp->allprev != nullptr) gp->allprev->allnext = gp->allnext;
  else allgs_ = gp->allnext;
  if (gp->allnext != nullptr) gp->allnext->allprev = gp->allprev;
  debug_allgs.unlink(&gp->allg);
}

// Frees an unregistered G (with g_in_stack, with the stack that holds it).
template <class Traits>
void basic_sched<Traits>::gdestroy(g* gp) noexcept {
  if constexpr (g_in_stack) {
    const gort::stack stk = gp->stk;
    gp->~g();
    stacks_.deallocate(stk);
  } else {
    if (gp->stk) stacks_.deallocate(gp->stk);  // only at teardown
    if (gp->slab) {
      gp->~g();
      decltype(p::gmem)::free_slot(gp);
    } else {
      delete gp;
    }
  }
}

// allglock. Unregisters gp and frees it (teardown). preemptone holds
// allglock while it uses the G it read from a P's curg, so a G is never
// freed under it.
template <class Traits>
void basic_sched<Traits>::gfree_one(g* gp) noexcept {
  {
    std::lock_guard<std::mutex> dlk(debug_allgs.mu);  // leaf lock
    allgunlink(gp);
  }
  gdestroy(gp);
}

// Owner, !g_in_stack. A stack for a G about to run for the first time.
template <class Traits>
gort::stack basic_sched<Traits>::stackget(p* pp) {
  if (pp->stackcache.empty()) return stacks_.allocate(Traits::stack_size);
  gort::stack s = pp->stackcache.back();
  pp->stackcache.pop_back();
  return s;
}

template <class Traits>
void basic_sched<Traits>::stackput(p* pp, gort::stack s) {
  if (pp->stackcache.size() >= Traits::stack_cache_max) {
    while (pp->stackcache.size() > Traits::stack_cache_max / 2) {
      stacks_.deallocate(pp->stackcache.back());
      pp->stackcache.pop_back();
    }
  }
  pp->stackcache.push_back(s);
}

// An exception escaped gp's body: Go's panic, fatal; a deterministic
// runtime hands it to its test instead (the scenario failed).
template <class Traits>
void basic_sched<Traits>::escaped(g_base* gp, std::exception_ptr e) noexcept {
  if constexpr (det) {
    auto* s = static_cast<basic_sched*>(gp->sched);
    if (s->sim_failure_) {
      s->sim_failure_(e);
      return;
    }
  }
  // The exception's type, demangled where the C++ runtime can (it is the
  // one thing a type not derived from std::exception has to show).
  auto type_name = []() -> std::string {
    const std::type_info* t = abi::__cxa_current_exception_type();
    if (t == nullptr) return "?";
    int status = -1;
    char* d = abi::__cxa_demangle(t->name(), nullptr, nullptr, &status);
    std::string out = status == 0 && d != nullptr ? d : t->name();
    std::free(d);
    return out;
  };
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& x) {
    GORT_FATAL("uncaught exception in G %llu: %s: %s (catch it inside the G; runtime::run "
               "hands its G's exception to the caller)",
               static_cast<unsigned long long>(gp->goid), type_name().c_str(), x.what());
  } catch (...) {
    GORT_FATAL("uncaught exception in G %llu: %s (not derived from std::exception; catch it "
               "inside the G)",
               static_cast<unsigned long long>(gp->goid), type_name().c_str());
  }
}

// The first frame of every G. Runs the body; an exception that escapes it is
// fatal (Go's panic); then switches to g0 for the last time.
template <class Traits>
void basic_sched<Traits>::gentry(transfer t) noexcept {
  auto* gp = static_cast<g_base*>(static_cast<switch_record*>(t.data)->data);
  finish_switch(t, gp->ctx);
  static_cast<basic_sched*>(gp->sched)->after_switch(gp);
  try {
    gp->fn();
  } catch (...) {
    escaped(gp, std::current_exception());
  }
  gp->fn.reset();
  mcall_rec rec{mcall_rec::goexit};
  auto* s = static_cast<basic_sched*>(gp->sched);
  // As at a park: a slice sysmon asked to end is not handed on through
  // runnext (load relaxed: sysmon's store in preemptone).
  if (GORT_UNLIKELY(gp->preempt.load(std::memory_order_relaxed))) s->endslice(gp);
  // Straight to the next G when there is one (its after_switch frees this
  // G and its stack); else through g0 (Go's goexit1 -> mcall(goexit0)).
  if (!s->gogo_next(gp, rec, true)) s->mcall(gp, rec, true);
  GORT_FATAL("G %llu resumed after it exited", static_cast<unsigned long long>(gp->goid));
}

// G. Switches to the M's g0, which acts on rec (Go's mcall). Returns when
// the G is resumed, possibly on another M.
template <class Traits>
void basic_sched<Traits>::mcall(g_base* gp, mcall_rec& rec, bool last) noexcept {
  m* mp = static_cast<m*>(gp->m);
  switch_context<fp>(gp->ctx, mp->g0, &rec, mp->eh, last);
  after_switch(gp);  // resumed, maybe by a direct switch from another G
}

// ---------------------------------------------------------------------------
// Run queues

// Owner. next=true puts gp in runnext and kicks the old runnext to the tail.
// Returns true when gp itself was published by a seq_cst read-modify-write
// (the exchange on runnext with more than one P): a StoreLoad barrier
// already, so wakep need not fence again (invariant 1).
template <class Traits>
bool basic_sched<Traits>::runqput(p* pp, g_base* gp, bool next) {
  if (det && sim_opt_.kind != sim_schedule::run_queue) {  // one bag; runqget draws
    simq_.push_back(gp);
    pp->sim_n.store(static_cast<std::uint32_t>(simq_.size()), std::memory_order_release);
    return false;
  }
  if constexpr (Traits::shuffle_order) {
    if (next && tls_m != nullptr && (static_cast<m*>(tls_m)->next_rand() & 1) != 0) next = false;
  }
  bool rmw = false;
  if (next) {
    g_base* old;
    if (procs_ == 1) {
      // One P: no thief exists (runqsteal takes from another P's holder),
      // so only the owner writes runnext; sysmon and schedtrace only read
      // it. A load and a store-release (pairs with their load-acquire)
      // instead of an xchg: ~10 ns on the 2-core VM, two per round trip.
      old = pp->runnext.load(std::memory_order_relaxed);
      pp->runnext.store(gp, std::memory_order_release);
    } else {
      // exchange seq_cst: thieves CAS runnext to null; whatever was there
      // is ours to requeue. seq_cst (a locked xchg on x86, as acq_rel
      // would be) makes it the StoreLoad half of invariant 1 for the
      // caller's wakep. The old runnext goes to the tail below by a plain
      // store, which may land after wakep read nmspinning. A spinner that
      // re-checks meanwhile reads runnext first (runq_empty): it finds gp
      // there, or finds it gone, taken by our CAS in runqget after this
      // store, which that load then synchronizes with, so the queue shows
      // the old G. Either way it sees work, and a spinner that finds work
      // wakes another (invariant 3).
      old = pp->runnext.exchange(gp, std::memory_order_seq_cst);
      rmw = true;
    }
    if (old == nullptr) return rmw;
    gp = old;
  }
  if (!pp->runq.put(gp)) runqputslow(pp, gp);
  return rmw;
}

// Owner, local queue full: move half of it and gp to the global queue.
template <class Traits>
void basic_sched<Traits>::runqputslow(p* pp, g_base* gp) {
  g_base** batch = pp->overflowbuf;
  std::uint32_t n;
  while ((n = pp->runq.grab_half_for_overflow(batch)) == 0)
    if (pp->runq.put(gp)) return;  // a thief made room
  batch[n] = gp;
  std::lock_guard<futex_mutex> lk(lock_);
  runq_.push_n(batch, n + 1);
  runqsize_.fetch_add(n + 1, std::memory_order_relaxed);
}

// Owner. Returns a G and whether it inherits the time slice (runnext).
template <class Traits>
std::pair<g_base*, bool> basic_sched<Traits>::runqget(p* pp) {
  if (det && sim_opt_.kind != sim_schedule::run_queue) {
    if (runqsize_.load(std::memory_order_relaxed) != 0) {  // injected Gs join the draw
      std::lock_guard<futex_mutex> lk(lock_);
      while (!runq_.empty()) simq_.push_back(runq_.pop());
      runqsize_.store(0, std::memory_order_relaxed);
    }
    if (simq_.empty()) return {nullptr, false};
    const std::uint64_t step = sim_steps_.load(std::memory_order_relaxed) + 1;
    sim_steps_.store(step, std::memory_order_relaxed);
    const std::size_t i = sim_opt_.kind == sim_schedule::pct
                              ? pct_pick(step)
                              : static_cast<std::size_t>(sim_draw() % simq_.size());
    g_base* gp = simq_[i];
    simq_.erase(simq_.begin() + static_cast<std::ptrdiff_t>(i));  // keep the others' order
    pp->sim_n.store(static_cast<std::uint32_t>(simq_.size()), std::memory_order_release);
    return {gp, false};
  }
  if constexpr (det) {  // sim_schedule::run_queue: count the decisions too
    sim_steps_.store(sim_steps_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  }
  if constexpr (Traits::shuffle_order) {  // sometimes the queue before runnext
    if (tls_m != nullptr && (static_cast<m*>(tls_m)->next_rand() & 3) == 0)
      if (g_base* gp = pp->runq.get()) return {gp, false};
  }
  // runnext first. Only the owner sets it non-null; thieves may CAS it away.
  g_base* next = pp->runnext.load(std::memory_order_acquire);
  if (next != nullptr) {
    if (procs_ == 1) {  // no thief (see runqput): the owner alone clears it
      pp->runnext.store(nullptr, std::memory_order_relaxed);
      return {next, true};
    }
    if (pp->runnext.compare_exchange_strong(next, nullptr, std::memory_order_acq_rel))
      return {next, true};
  }
  if constexpr (requires { pp->runq.get_exclusive(); }) {
    if (procs_ == 1) return {pp->runq.get_exclusive(), false};  // no thief (see runqput)
  }
  return {pp->runq.get(), false};
}

// Current G.
template <class Traits>
std::uint32_t basic_sched<Traits>::rand32() noexcept {
  if constexpr (det) {
    sim_grng_ ^= sim_grng_ >> 12;  // xorshift64*, as sim_draw
    sim_grng_ ^= sim_grng_ << 25;
    sim_grng_ ^= sim_grng_ >> 27;
    return static_cast<std::uint32_t>((sim_grng_ * 0x2545F4914F6CDD1Dull) >> 32);
  } else {
    return static_cast<m*>(current_g()->m)->next_rand();
  }
}

// Owner (deterministic runtimes): the next number of the seeded PRNG.
template <class Traits>
std::uint64_t basic_sched<Traits>::sim_draw() noexcept {
  sim_rng_ ^= sim_rng_ >> 12;  // xorshift64*
  sim_rng_ ^= sim_rng_ << 25;
  sim_rng_ ^= sim_rng_ >> 27;
  return (sim_rng_ * 0x2545F4914F6CDD1Dull) >> 33;
}

// Owner, sim_schedule::pct: the index in simq_ of the G to run at `step`.
// Priorities drawn at first sight lie above pct_depth; a change point or a
// spin-wait moves a G below every priority given so far.
template <class Traits>
std::size_t basic_sched<Traits>::pct_pick(std::uint64_t step) {
  auto prio = [&](g_base* gp) -> std::int64_t& {
    auto [it, fresh] = pct_prio_.try_emplace(gp->goid, 0);
    if (fresh) it->second = static_cast<std::int64_t>(sim_opt_.pct_depth + 1 + (sim_draw() & 0x3fffffff));
    return it->second;
  };
  auto top = [&] {
    std::size_t best = 0;
    for (std::size_t i = 1; i < simq_.size(); ++i)  // ties: the one queued first
      if (prio(simq_[i]) > prio(simq_[best])) best = i;
    prio(simq_[best]);
    return best;
  };
  std::size_t i = top();
  while (pct_next_change_ < pct_changes_.size() && pct_changes_[pct_next_change_] <= step) {
    ++pct_next_change_;  // the G that would run now is demoted: preempted here
    prio(simq_[i]) = --pct_floor_;
    i = top();
  }
  if (simq_.size() > 1 && simq_[i]->goid == pct_last_ && ++pct_streak_ >= pct_spin_limit) {
    prio(simq_[i]) = --pct_floor_;  // a spin-wait: let the others run
    i = top();
  }
  if (simq_[i]->goid != pct_last_) {
    pct_last_ = simq_[i]->goid;
    pct_streak_ = 0;
  }
  return i;
}

template <class Traits>
void basic_sched<Traits>::set_sim_schedule(const sim_schedule_options& o) {
  if constexpr (!det) {
    (void)o;
    throw std::logic_error("gort: set_sim_schedule needs a deterministic runtime");
  } else {
    if (o.kind == sim_schedule::pct && (o.pct_depth == 0 || o.pct_depth > 1000 || o.pct_steps == 0))
      throw std::invalid_argument(
          "gort::testing: a PCT schedule needs 1 <= pct_depth <= 1000 and pct_steps >= 1");
    sim_opt_ = o;
    pct_changes_.clear();
    pct_next_change_ = 0;
    if (o.kind == sim_schedule::pct) {
      // d - 1 change points, uniform in [1, pct_steps], from the seed.
      for (unsigned k = 1; k < o.pct_depth; ++k) pct_changes_.push_back(1 + sim_draw() % o.pct_steps);
      std::sort(pct_changes_.begin(), pct_changes_.end());
    }
  }
}

// lock. Appends one G to the global queue.
template <class Traits>
void basic_sched<Traits>::globrunqput(g_base* gp) {
  runq_.push(gp);
  runqsize_.fetch_add(1, std::memory_order_relaxed);
}

// lock. Takes a fair share of the global queue (at most max if max > 0)
// into out (room for run_queue_capacity / 2) and returns how many; the
// caller lets go of the lock, then calls globrunqrest. Splitting it so
// keeps the local queue's stores out of sched.lock: with every P moving
// batches between its full local queue and the global one (skynet at 16
// Ps), one runqput per G under the lock made it the bottleneck (the lock's
// slow path was 29% of the CPU time, the kernel's futex spinlock 14%).
template <class Traits>
std::uint32_t basic_sched<Traits>::globrunqget(std::int64_t max, g_base** out) {
  const std::int64_t size = runqsize_.load(std::memory_order_relaxed);
  if (size == 0) return 0;
  std::int64_t n = std::min<std::int64_t>(size, size / procs_ + 1);
  if (max > 0 && n > max) n = max;
  n = std::min<std::int64_t>(n, Traits::run_queue_capacity / 2);
  runqsize_.fetch_sub(n, std::memory_order_relaxed);
  runq_.pop_n(out, static_cast<std::size_t>(n));
  return static_cast<std::uint32_t>(n);
}

// Owner, without the lock: after globrunqget, queues all but the first of
// the n Gs taken on pp and returns the first (null if n is 0). While they
// are in neither queue pp is running, so nobody can be waiting for them
// (as for the batch runqputslow moves the other way).
template <class Traits>
g_base* basic_sched<Traits>::globrunqrest(p* pp, g_base** gs, std::uint32_t n) {
  if (n == 0) return nullptr;
  for (std::uint32_t i = 1; i < n; ++i) runqput(pp, gs[i], false);
  return gs[0];
}

// Owner, without the lock: globrunqget under it, globrunqrest after.
template <class Traits>
g_base* basic_sched<Traits>::globrunqtake(p* pp, std::int64_t max) {
  g_base** batch = pp->takebuf;
  std::uint32_t n;
  {
    std::lock_guard<futex_mutex> lk(lock_);
    n = globrunqget(max, batch);
  }
  return globrunqrest(pp, batch, n);
}

// On pp's owner: steal half of p2's queue into pp's; on the last round also
// its runnext.
template <class Traits>
g_base* basic_sched<Traits>::runqsteal(p* pp, p* p2, bool steal_runnext) {
  if (g_base* gp = p2->runq.steal_into(pp->runq)) {
    pp->nsteals.store(pp->nsteals.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    emit(trace::kind::steal, gp->goid, static_cast<std::uint64_t>(p2->id), pp->id);
    return gp;
  }
  if (!steal_runnext) return nullptr;
  g_base* next = p2->runnext.load(std::memory_order_acquire);
  if (next == nullptr) return nullptr;
  if (p2->status.load(std::memory_order_relaxed) == pstatus::running) {
    // p2 is about to run it (a G readied by the running G): steal only if
    // it is still there after Go's usleep(3). Timer slack makes that
    // ~75 us on Linux, as for Go. A 3 us spin on the clock was tried
    // (45e69c4): it burns a CPU meanwhile, steals sooner, and was slower
    // or level on every 2-P workload on the 2-core AMD VM (buffered 23 ->
    // 16 ns, yield 24 -> 9; docs/benchmarks.md, "The runnext wait").
    // Without reading p2's runnext meanwhile: its owner writes it twice
    // per channel round trip, and each read here made the next of those
    // writes a cache miss (2-P pingpong on the 2-core VM: 254 -> 233 ns
    // per round trip, medians of 9 alternated runs). The CAS below is the
    // one look; a G that left and came back (ABA) is stolen, which is
    // legal, as Go's usleep(3) + CAS.
    ::usleep(3);
  }
  if (!p2->runnext.compare_exchange_strong(next, nullptr, std::memory_order_acq_rel))
    return nullptr;
  pp->nsteals.store(pp->nsteals.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  emit(trace::kind::steal, next->goid, static_cast<std::uint64_t>(p2->id), pp->id, "runnext");
  return next;
}

// Any thread without a P of this runtime: queue gp globally and start an M
// for it if a P is idle (Go's injectglist). Invariant 7's sibling: a G made
// runnable where no P can see it locally must never be left unannounced.
template <class Traits>
void basic_sched<Traits>::inject(g_base* gp) {
  {
    std::lock_guard<futex_mutex> lk(lock_);
    globrunqput(gp);
  }
  // If every P is busy, one of them finds gp in the global queue before it
  // can go idle (findrunnable checks it under the lock before pidleput).
  if (npidle_.load(std::memory_order_acquire) != 0) startm(nullptr, false);
}

// Any M, after a poll: makes the Gs on l runnable (Go's injectglist).
// With a P they go on its local queue and a spinner is woken for them;
// without one, on the global queue, with an M started for each idle P that
// can run one (invariant 7).
template <class Traits>
void basic_sched<Traits>::injectglist(m* mp, glist& l) {
  if (l.empty()) return;
  if (mp != nullptr && mp->pp != nullptr) {
    while (g_base* gp = l.pop()) {
      emit(trace::kind::ready, gp->goid, 0, mp->pp->id, "netpoll");
      casgstatus(gp, gstatus::waiting, gstatus::runnable);
      runqput(mp->pp, gp, false);
    }
    wakep();
    return;
  }
  int n = 0;
  {
    std::lock_guard<futex_mutex> lk(lock_);
    while (g_base* gp = l.pop()) {
      emit(trace::kind::ready, gp->goid, 0, -1, "netpoll");
      casgstatus(gp, gstatus::waiting, gstatus::runnable);
      globrunqput(gp);
      ++n;
    }
  }
  // Every P busy: their Ms find the Gs in the global queue before idling.
  for (int i = 0; i < n && npidle_.load(std::memory_order_acquire) != 0; ++i)
    startm(nullptr, false);
}

// ---------------------------------------------------------------------------
// The M loop

// g0. One round of scheduling forever; returns only when the M must exit
// (runtime shutdown, or mexit after a locked G finished).
template <class Traits>
void basic_sched<Traits>::schedule(m* mp) {
  for (;;) {
    if (mp->lockedg != nullptr) {
      stoplockedm(mp);  // sleeps until lockedg is runnable and ours
      if (!run_g(mp, mp->lockedg, false)) return;
      continue;
    }
    auto [gp, inherit] = findrunnable(mp);  // blocks until work
    if (gp == nullptr) return;              // shutdown
    // Invariant 3: we were spinning and found work; let another M spin.
    if (mp->spinning) resetspinning(mp);
    if (gp->lockedm != nullptr && gp->lockedm != mp) {
      startlockedm(mp, gp);  // hand our P to gp's own M
      if (mp->pp == nullptr) return;  // shutdown while stopped
      continue;
    }
    if (!run_g(mp, gp, inherit)) return;
  }
}

// g0. Runs gp and acts on what it asks when it switches back; loops while
// the answer is "run it again". Returns false if the M must exit.
template <class Traits>
bool basic_sched<Traits>::run_g(m* mp, g_base* gp, bool inherit_time) {
  for (;;) {
    // Copy the request off the G's stack before anything makes it visible.
    const mcall_rec rec = *execute(mp, gp, inherit_time);
    // Not necessarily the G we switched to: it may have switched directly
    // to others (gogo_next); the one that came back is the M's current G.
    gp = mp->curg;
    switch (rec.kind) {
      case mcall_rec::gosched:
        gosched_m(mp, gp);
        return true;
      case mcall_rec::park:
        if (park_m(mp, gp, rec)) return true;
        inherit_time = true;  // unlockf said no: resume it at once
        continue;
      case mcall_rec::goexit: {
        const bool locked = gp->lockedm != nullptr;
        goexit0(mp, gp);
        if (locked) {  // the thread is tainted: it exits (Go's mexit)
          mexit(mp);
          return false;
        }
        return true;
      }
      case mcall_rec::none:
        GORT_FATAL("run_g: G %llu switched to g0 with no request",
                   static_cast<unsigned long long>(gp->goid));
      case mcall_rec::exitsyscall:
        if (exitsyscall0(mp, gp)) {
          inherit_time = false;
          continue;
        }
        return mp->pp != nullptr || mp->lockedg != nullptr;
    }
  }
}

// Any M with a P: makes gp the M's current G (Go's execute, before gogo).
template <class Traits>
void basic_sched<Traits>::prepare_run(m* mp, p* pp, g_base* gp, bool inherit_time) {
  mp->curg = gp;
  gp->m = mp;
  casgstatus(gp, gstatus::runnable, gstatus::running);
  gp->waitreason = "";
  emit(trace::kind::run, gp->goid, 0, pp->id);
  if (!inherit_time)
    pp->schedtick.store(pp->schedtick.load(std::memory_order_relaxed) + 1,
                        std::memory_order_relaxed);  // sysmon reads it
  // store-release: pairs with sysmon's load in preemptone (the G's fields
  // were initialised by whoever made it).
  pp->curg.store(gp, std::memory_order_release);
  if constexpr (!g_in_stack) {
    if (!gp->stk) {  // first run: the G gets its stack now, not at spawn
      // Out of memory here is Go's "out of memory" fatal error: this runs
      // on g0 or on a G that is parking (gogo_next), so a bad_alloc would
      // surface in some other G, with this one marked running and never run.
      try {
        gp->stk = stackget(pp);
      } catch (const std::bad_alloc&) {
        GORT_FATAL("out of memory: cannot allocate a %zu-byte stack for G %llu "
                   "(address space: ulimit -v, vm.overcommit_memory, vm.max_map_count)",
                   static_cast<std::size_t>(Traits::stack_size),
                   static_cast<unsigned long long>(gp->goid));
      }
      gp->si.stk = gp->stk.bounds();
      gp->ctx.make(&gp->si, &gentry);
    }
  }
  set_current_g(gp);
}

// g0. Switches to gp; returns the request gp left when it switched back.
template <class Traits>
mcall_rec* basic_sched<Traits>::execute(m* mp, g_base* gp, bool inherit_time) {
  prepare_run(mp, mp->pp, gp, inherit_time);
  void* r = switch_context<fp>(mp->g0, gp->ctx, gp, mp->eh);
  set_current_g(nullptr);
  return static_cast<mcall_rec*>(r);
}

// G. The fast path of gosched and gopark: when the local queue has a G to
// run, switch to it directly instead of through g0 (one switch instead of
// two; Boost.Context's ontop idea). What must happen to gp (requeue it, or
// mark it waiting and run its unlockf) is left in mp->pending and done by
// the G we switch to, once gp's registers are saved. Returns false, having
// done nothing, when the slow path through g0 is needed.
template <class Traits>
bool basic_sched<Traits>::gogo_next(g_base* gp, const mcall_rec& rec, bool last) {
  m* mp = static_cast<m*>(gp->m);
  p* pp = mp->pp;
  // schedule() must stoplockedm; an exiting locked G takes its thread with
  // it (mexit, on g0).
  if (mp->lockedg != nullptr) return false;
  if constexpr (det) {  // a yielding G must be in the draw (gosched_m requeues it first)
    if (rec.kind == mcall_rec::gosched && sim_opt_.kind != sim_schedule::run_queue) return false;
    // An exit through g0 as before: the same seed, the same schedule.
    if (rec.kind == mcall_rec::goexit) return false;
  }
  // findrunnable's fairness rule: now and then the global queue goes first,
  // or Gs that keep yielding to each other would starve it.
  if (pp->schedtick.load(std::memory_order_relaxed) % Traits::global_queue_fairness == 0 &&
      work_beyond_local(pp))
    return false;  // findrunnable also runs expired timers and polls
  // This P's timers: Go looks at them in every schedule(), which a direct
  // switch skips; Gs that ready each other through runnext keep schedtick
  // still and would skip them for ever (a 1 ms sleep beside a channel
  // ping-pong at 1 P took 1.2 s). Every 16th direct switch while one is
  // pending, a clock read; findrunnable then runs the expired ones.
  // (Deterministic runtimes: their clock stands still while Gs run.)
  if constexpr (!det) {
    if (const std::int64_t w = pp->timer0when.load(std::memory_order_relaxed);
        w != INT64_MAX && (++pp->timer_looks & 15) == 0 && w <= now())
      return false;
  }
  auto [next, inherit] = runqget(pp);
  if (next == nullptr) return false;  // findrunnable's job
  if (next->lockedm != nullptr) {    // must run on its own M: slow path
    runqput(pp, next, true);
    return false;
  }
  // Field by field: rec was just built with a byte store and 8-byte
  // stores, and the struct copy's 16-byte load from it could not be
  // forwarded from them (a store-forwarding stall, ~10 ns per park here).
  mp->pending.kind = rec.kind;
  mp->pending.unlockf = rec.unlockf;
  mp->pending.arg = rec.arg;
  mp->pending_g = gp;
  // The trace sees gp stop before next starts, as on the way through g0
  // (a Chrome trace nests an M's events: B for run, E for the others).
  if (rec.kind == mcall_rec::gosched) emit(trace::kind::yield, gp->goid, 0, pp->id);
  else if (rec.kind == mcall_rec::park) emit(trace::kind::park, gp->goid, 0, pp->id, gp->waitreason);
  else emit(trace::kind::exit, gp->goid, 0, pp->id);
  prepare_run(mp, pp, next, inherit);
  // G to G: both sides parked here or in mcall; `ret` keeps the return
  // predictions of the whole chain back into user code (fcontext.hpp).
  // An exiting G (last) never comes back.
  switch_context<fp, resume_by::ret>(gp->ctx, next->ctx, next, mp->eh, last);
  after_switch(gp);
  return true;
}

// G, first thing after every resume: acts on what a direct switch left for
// the G it switched away from (see gogo_next).
template <class Traits>
void basic_sched<Traits>::after_switch(g_base* self) {
  m* mp = static_cast<m*>(self->m);
  if (GORT_LIKELY(mp->pending.kind == mcall_rec::none)) return;
  const mcall_rec rec = std::exchange(mp->pending, mcall_rec{mcall_rec::none});
  g_base* prev = std::exchange(mp->pending_g, nullptr);
  prev->m = nullptr;
  if (rec.kind == mcall_rec::gosched) {
    casgstatus(prev, gstatus::running, gstatus::runnable);
    requeue_yielded(mp->pp, prev);
    return;
  }
  if (rec.kind == mcall_rec::goexit) {  // off its stack now: free both
    gdead(mp->pp, prev);
    return;
  }
  GORT_ASSERT(rec.kind == mcall_rec::park, "after_switch: unexpected request");
  casgstatus(prev, gstatus::running, gstatus::waiting);
  if (rec.unlockf != nullptr && !rec.unlockf(prev, rec.arg)) {
    // The park was refused: prev runs next (Go resumes it at once).
    casgstatus(prev, gstatus::waiting, gstatus::runnable);
    prev->waitreason = "";
    runqput(mp->pp, prev, true);
  }
}

// g0. Dissociates the current G from the M.
template <class Traits>
void basic_sched<Traits>::dropg(m* mp) {
  if (mp->pp != nullptr) mp->pp->curg.store(nullptr, std::memory_order_relaxed);
  if (mp->curg != nullptr) mp->curg->m = nullptr;
  mp->curg = nullptr;
}

// g0, with a P. Finds a runnable G, blocking until there is one. Returns
// {null, false} only when the runtime shuts down.
template <class Traits>
std::pair<g_base*, bool> basic_sched<Traits>::findrunnable(m* mp) {
top:
  p* pp = mp->pp;
  check_timers(pp);  // expired timers ready their Gs onto this P
  // Fairness: now and then the global queue first, so that two Gs that
  // keep readying each other cannot starve it.
  if (pp->schedtick.load(std::memory_order_relaxed) % Traits::global_queue_fairness == 0 &&
      runqsize_.load(std::memory_order_relaxed) > 0) {
    if (g_base* gp = globrunqtake(pp, 1)) return {gp, false};
  }
  if (auto r = runqget(pp); r.first != nullptr) return r;
  if (runqsize_.load(std::memory_order_relaxed) != 0) {
    if (g_base* gp = globrunqtake(pp, 0)) return {gp, false};
  }
  // A non-blocking netpoll when Gs wait for I/O: io_uring's is a look at
  // the CQ rings; epoll's a syscall, skipped while an M blocks there.
  if (netpoll_waiters() != 0) {
    netpoller_base* np = np_.load(std::memory_order_acquire);
    if (np->wants_nonblocking() == false || !netpoll_blocked_.load(std::memory_order_relaxed)) {
      glist l;
      np->poll(0, l);
      lastpoll_.store(nanotime(), std::memory_order_relaxed);
      if (g_base* gp = l.pop()) {
        injectglist(mp, l);
        casgstatus(gp, gstatus::waiting, gstatus::runnable);
        return {gp, false};
      }
    }
  }
  // Steal. Invariant 4: limit spinners to half the busy Ps, so that a
  // system with few runnable Gs does not burn every CPU looking for them.
  const int busy = static_cast<int>(procs_) - npidle_.load(std::memory_order_relaxed);
  if (mp->spinning || 2 * nmspinning_.load(std::memory_order_relaxed) < busy) {
    if (!mp->spinning) {
      mp->spinning = true;
      nmspinning_.fetch_add(1, std::memory_order_seq_cst);
    }
    if (g_base* gp = stealwork(mp, pp)) return {gp, false};
  }
  // Before giving up the P: every P's expired timers, run onto this one
  // (Go steals timers with work). The only way an idle P's timers run,
  // and how those of a P whose G does not yield still do.
  if (run_expired_timers(pp)) goto top;
  // Nothing. Give up the P: under the lock, one last look at the global
  // queue (inject() relies on it), then pidleput.
  {
    std::unique_lock<futex_mutex> lk(lock_);
    if (runqsize_.load(std::memory_order_relaxed) != 0) {
      g_base** batch = pp->takebuf;
      if (const std::uint32_t n = globrunqget(0, batch); n != 0) {
        lk.unlock();
        return {globrunqrest(pp, batch, n), false};
      }
    }
    if (releasep(mp) != pp) GORT_FATAL("findrunnable: wrong P");
    pidleput(pp);
  }
  if (mp->spinning) {
    mp->spinning = false;
    // Invariant 2: the seq_cst decrement orders before the re-check below;
    // a submitter either sees nmspinning > 0 (and counts on a spinner) or
    // published work that we see now.
    if (nmspinning_.fetch_sub(1, std::memory_order_seq_cst) - 1 < 0)
      GORT_FATAL("findrunnable: negative nmspinning");
    if (check_runqs_no_p()) {
      p* pp2 = nullptr;
      {
        std::lock_guard<futex_mutex> lk(lock_);
        pp2 = pidleget();
      }
      if (pp2 != nullptr) {
        acquirep(mp, pp2);
        mp->spinning = true;
        nmspinning_.fetch_add(1, std::memory_order_seq_cst);
        goto top;
      }
    }
  }
  // Idle. If timers are pending or Gs wait for I/O, one M (Go's netpoller
  // M) sleeps until the earliest timer, in the netpoller once there is one;
  // an earlier timer, new I/O completions or shutdown wake it (invariant 6).
  for (;;) {
    if ((timer_earliest() != INT64_MAX || netpoll_waiters() != 0) && become_timer_sleeper(mp)) {
      glist ready;
      timer_sleep(mp, ready);
      p* pp2 = nullptr;
      {
        std::lock_guard<futex_mutex> lk(lock_);
        if (shutdown_ && ready.empty()) return {nullptr, false};
        pp2 = pidleget();
      }
      if (pp2 != nullptr) {
        acquirep(mp, pp2);
        if (g_base* gp = ready.pop()) {
          injectglist(mp, ready);
          casgstatus(gp, gstatus::waiting, gstatus::runnable);
          return {gp, false};
        }
        goto top;  // which runs the expired timers, of every P
      }
      injectglist(nullptr, ready);  // invariant 7: every P is busy
      // Every P is busy: their Ms run their expired timers (findrunnable,
      // and the fast path every global_queue_fairness schedules), in order
      // and onto their own queues, as Go's Ps do; this M stops. The next
      // M to go idle runs every P's expired timers and becomes the
      // sleeper.
      if (!stopm(mp)) return {nullptr, false};
      goto top;
    }
    if (!stopm(mp)) return {nullptr, false};
    goto top;
  }
}

// g0, spinning, with a P: Go's stealWork, 4 rounds over all Ps in a random
// order; the last round also takes runnext.
template <class Traits>
g_base* basic_sched<Traits>::stealwork(m* mp, p* pp) {
  const std::uint32_t n = procs_;
  for (int i = 0; i < Traits::steal_tries; ++i) {
    const bool last = i == Traits::steal_tries - 1;
    const std::uint32_t r = mp->next_rand();
    const std::uint32_t inc = coprimes_[r % coprimes_.size()];
    std::uint32_t pos = r % n;
    for (std::uint32_t k = 0; k < n; ++k, pos = (pos + inc) % n) {
      p* p2 = allp_[pos].get();
      if (p2 == pp || p2->status.load(std::memory_order_relaxed) == pstatus::idle) continue;
      if (g_base* gp = runqsteal(pp, p2, last)) return gp;
    }
    if (runqsize_.load(std::memory_order_relaxed) != 0) {
      if (g_base* gp = globrunqtake(pp, 0)) return gp;
    }
  }
  return nullptr;
}

// Any M, no P: is there work anywhere? (Invariant 2's re-check.)
template <class Traits>
bool basic_sched<Traits>::check_runqs_no_p() {
  if (runqsize_.load(std::memory_order_acquire) != 0) return true;
  for (auto& pp : allp_)
    if (!pp->runq_empty()) return true;
  return false;
}

// g0. We were spinning and found work (invariant 3).
template <class Traits>
void basic_sched<Traits>::resetspinning(m* mp) {
  mp->spinning = false;
  if (nmspinning_.fetch_sub(1, std::memory_order_seq_cst) - 1 < 0)
    GORT_FATAL("resetspinning: negative nmspinning");
  wakep();
}

// Any thread, after publishing work: start a spinning M if a P is idle and
// nobody spins (invariant 1: the fence orders the publication before the
// reads of npidle and nmspinning). published_by_rmw: the work went out by
// a seq_cst read-modify-write (runqput's exchange on runnext), which
// already orders it before these seq_cst loads; the fence would be a
// second full barrier (~10-20 ns a spawn or a channel wakeup at 2 Ps on
// the 2-core VM). On x86 the loads are plain moves either way.
template <class Traits>
void basic_sched<Traits>::wakep(bool published_by_rmw) {
  if (!published_by_rmw) std::atomic_thread_fence(std::memory_order_seq_cst);
  if (npidle_.load(std::memory_order_seq_cst) == 0) return;
  int zero = 0;
  if (nmspinning_.load(std::memory_order_seq_cst) != 0 ||
      !nmspinning_.compare_exchange_strong(zero, 1, std::memory_order_seq_cst))
    return;
  startm(nullptr, true);
}

// Any thread. Runs pp (or an idle P if pp is null) on an idle or new M.
// spinning: the caller already counted the new M in nmspinning.
template <class Traits>
void basic_sched<Traits>::startm(p* pp, bool spinning) {
  std::unique_lock<futex_mutex> lk(lock_);
  if (shutdown_) {
    // No G is left, and the destructor joins only the Ms it knows of: a
    // late caller (an exiting M's handoffp) starts nothing.
    if (pp != nullptr) pidleput(pp);
    lk.unlock();
    if (spinning && nmspinning_.fetch_sub(1, std::memory_order_seq_cst) - 1 < 0)
      GORT_FATAL("startm: negative nmspinning");
    return;
  }
  if (pp == nullptr) {
    pp = pidleget();
    if (pp == nullptr) {
      lk.unlock();
      if (spinning && nmspinning_.fetch_sub(1, std::memory_order_seq_cst) - 1 < 0)
        GORT_FATAL("startm: negative nmspinning");
      return;
    }
  }
  m* nmp = mget();
  if (nmp == nullptr) {
    ++mcount_;  // Go's mReserveID: counted before the thread exists
    ++newm_inflight_;  // the destructor waits for it to be in allm_
    lk.unlock();
    newm(pp, spinning);  // its acquirep(nextp) in mstart wakes sysmon
    return;
  }
  lk.unlock();
  nmp->spinning = spinning;
  nmp->nextp = pp;  // invariant 8: before the wakeup
  nmp->park.wakeup();  // its acquirep(nextp) in stopm wakes sysmon
}

// g0, no P. Parks the M until startm hands it a P. Returns false if woken
// for shutdown.
template <class Traits>
bool basic_sched<Traits>::stopm(m* mp) {
  {
    std::lock_guard<futex_mutex> lk(lock_);
    if (shutdown_) return false;
    mput(mp);
  }
  mp->park.sleep();
  mp->park.clear();  // invariant 8: only the sleeper clears
  p* pp = std::exchange(mp->nextp, nullptr);
  if (pp == nullptr) return false;
  acquirep(mp, pp);
  return true;
}

// Any M, pp released (status idle, not on pidle). Invariant 5: start an M
// for pp whenever findrunnable would find work for it; else park it.
template <class Traits>
void basic_sched<Traits>::handoffp(p* pp) {
  emit(trace::kind::handoff, 0, 0, pp->id);
  if (!pp->runq_empty() || runqsize_.load(std::memory_order_acquire) != 0) {
    startm(pp, false);
    return;
  }
  // No local work: make sure somebody spins or sleeps ready for new work.
  int zero = 0;
  if (nmspinning_.load(std::memory_order_relaxed) + npidle_.load(std::memory_order_relaxed) == 0 &&
      nmspinning_.compare_exchange_strong(zero, 1, std::memory_order_seq_cst)) {
    startm(pp, true);
    return;
  }
  {
    std::unique_lock<futex_mutex> lk(lock_);
    if (runqsize_.load(std::memory_order_relaxed) != 0) {
      lk.unlock();
      startm(pp, false);
      return;
    }
    // The last running P, Gs waiting for I/O and no M in the netpoller
    // (Go: "need to wakeup another M to poll network"): idling it would
    // leave every M stopped and sysmon in its deep sleep, with nobody to
    // reap the completions. The M started runs findrunnable and, finding
    // nothing, becomes the sleeper, in the netpoller.
    if (netpoll_waiters() != 0 && timer_sleeper_ == nullptr &&
        npidle_.load(std::memory_order_relaxed) == static_cast<int>(procs_) - 1) {
      lk.unlock();
      startm(pp, false);
      return;
    }
    pidleput(pp);
  }
  // Its timers have no M now: the sleeper's deadline covers them, or one
  // is started to become the sleeper (Go's handoffp: wakeNetPoller).
  if (const std::int64_t w = pp->timer0when.load(std::memory_order_acquire); w != INT64_MAX)
    timer_added(pp, w);
}

template <class Traits>
void basic_sched<Traits>::acquirep(m* mp, p* pp) {
  GORT_ASSERT(mp->pp == nullptr, "acquirep: M already has a P");
  GORT_ASSERT(pp->mp == nullptr && pp->status.load(std::memory_order_relaxed) == pstatus::idle,
              "acquirep: P %d is not idle", pp->id);
  mp->pp = pp;
  mp->pid = pp->id;
  pp->mp = mp;
  pp->status.store(pstatus::running, std::memory_order_release);
  // A P runs again: sysmon, asleep since every P went idle, must watch it
  // (preempt flags, retake, its netpoll and timer checks). Every idle ->
  // running transition comes through here, the sleeper's and a spinner's
  // pidleget as much as startm's; none holds sched.lock. One relaxed load
  // when sysmon is awake.
  wake_sysmon();
}

template <class Traits>
typename basic_sched<Traits>::p* basic_sched<Traits>::releasep(m* mp) {
  p* pp = mp->pp;
  GORT_ASSERT(pp != nullptr && pp->mp == mp, "releasep: M does not hold its P");
  pp->mp = nullptr;
  pp->curg.store(nullptr, std::memory_order_relaxed);
  mp->pp = nullptr;
  mp->pid = -1;
  pp->status.store(pstatus::idle, std::memory_order_release);
  return pp;
}

template <class Traits>
void basic_sched<Traits>::pidleput(p* pp) {
  if (!pp->runq_empty()) GORT_FATAL("pidleput: P %d has a non-empty run queue", pp->id);
  pp->link = pidle_;
  pidle_ = pp;
  npidle_.fetch_add(1, std::memory_order_seq_cst);
  // An idle P holds no live-G credits: with every P idle, gcount_ is exact.
  if (const std::int64_t c = pp->gcredit.exchange(0, std::memory_order_relaxed); c != 0) {
    if (gcount_.fetch_sub(c, std::memory_order_acq_rel) == c) {
      std::lock_guard<std::mutex> lk(gzero_mu_);
      gzero_cv_.notify_all();
    }
  }
}

template <class Traits>
typename basic_sched<Traits>::p* basic_sched<Traits>::pidleget() {
  p* pp = pidle_;
  if (pp != nullptr) {
    pidle_ = pp->link;
    pp->link = nullptr;
    npidle_.fetch_sub(1, std::memory_order_seq_cst);
  }
  return pp;
}

template <class Traits>
void basic_sched<Traits>::mput(m* mp) {
  mp->schedlink = midle_;
  midle_ = mp;
  ++nmidle_;
  checkdead();
}

template <class Traits>
typename basic_sched<Traits>::m* basic_sched<Traits>::mget() {
  m* mp = midle_;
  if (mp != nullptr) {
    midle_ = mp->schedlink;
    mp->schedlink = nullptr;
    --nmidle_;
  }
  return mp;
}

// Any thread. A new M and its thread, which starts with pp. mcount_ was
// already incremented by the caller (under the lock).
template <class Traits>
void basic_sched<Traits>::newm(p* pp, bool spinning) {
  allocm_reap();
  // Out of memory is fatal, as a failed pthread_create below: newm runs
  // from wakep, timer_added and handoffp, in paths that cannot unwind.
  m* mp = nullptr;
  try {
    mp = new m();
    mp->owner = this;
    mp->nextp = pp;
    mp->spinning_start = spinning;
    std::lock_guard<futex_mutex> lk(lock_);
    mp->id = static_cast<std::int64_t>(allm_.size()) + 1;
    allm_.push_back(mp);
  } catch (const std::bad_alloc&) {
    GORT_FATAL("out of memory: cannot allocate a new M");
  }
  // Seeded from the clock as well as the address (Go: cputicks): a new M
  // often lands where the last runtime's was, and steal orders and the
  // shuffle must differ from run to run.
  mp->fastrand = 0x9E3779B97F4A7C15ull ^
                 (reinterpret_cast<std::uintptr_t>(mp) * 0xBF58476D1CE4E5B9ull) ^
                 (static_cast<std::uint64_t>(nanotime()) * 0x94D049BB133111EBull);
  if (mp->fastrand == 0) mp->fastrand = 1;
  pthread_attr_t attr;
  ::pthread_attr_init(&attr);
  ::pthread_attr_setstacksize(&attr, 1 << 20);  // g0: scheduler code only
  pthread_t th;
  const int err = ::pthread_create(&th, &attr, &mstart, mp);
  ::pthread_attr_destroy(&attr);
  if (err != 0)
    GORT_FATAL("newm: cannot create an OS thread (%s); check the process's thread and "
               "memory limits (ulimit -u, ulimit -v)", std::strerror(err));
  // Under the lock: the new thread may already have exited and be waiting
  // to be reaped; the reaper needs its handle and must not race this store.
  std::lock_guard<futex_mutex> lk(lock_);
  mp->thread = th;
  mp->thread_started = true;
  --newm_inflight_;
}

// Frees Ms whose threads have exited (Go's allocm freeing sched.freem): an M
// never frees its own thread stack; whoever makes the next M joins it.
template <class Traits>
void basic_sched<Traits>::allocm_reap() {
  std::vector<m*> done;
  {
    std::lock_guard<futex_mutex> lk(lock_);
    for (auto it = freem_.begin(); it != freem_.end();) {
      if ((*it)->thread_started && (*it)->exited.load(std::memory_order_acquire)) {
        done.push_back(*it);
        allm_.erase(std::find(allm_.begin(), allm_.end(), *it));
        it = freem_.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (m* mp : done) {
    ::pthread_join(mp->thread, nullptr);
    delete mp;
  }
}

template <class Traits>
void* basic_sched<Traits>::mstart(void* arg) {
  auto* mp = static_cast<m*>(arg);
  thread_altstack::ensure();
  mp->eh = thread_eh_globals();
  tls_m = mp;
  mp->spinning = mp->spinning_start;
  basic_sched* s = mp->owner;
  s->emit(trace::kind::m_start, 0);
  s->acquirep(mp, std::exchange(mp->nextp, nullptr));
  s->schedule(mp);
  mp->exited.store(true, std::memory_order_release);
  return nullptr;
}

// g0, after a locked G exited: the thread is tainted (the G may have changed
// its state), so the M gives its P away and its thread ends.
template <class Traits>
void basic_sched<Traits>::mexit(m* mp) {
  emit(trace::kind::m_stop, 0);
  if (mp->pp != nullptr) handoffp(releasep(mp));
  // A thread's exit cancels the io_uring requests it submitted: wait, with
  // no P, until every one has completed (m_base).
  mp->io_wait_before_exit();
  std::lock_guard<futex_mutex> lk(lock_);
  --mcount_;
  freem_.push_back(mp);  // joined and freed by the next newm or the destructor
  checkdead();
}

// g0. The M has a locked G that is not running: give the P away and sleep
// until startlockedm hands the M a P to run it.
template <class Traits>
void basic_sched<Traits>::stoplockedm(m* mp) {
  if (mp->pp != nullptr) handoffp(releasep(mp));
  incidlelocked(1);
  mp->park.sleep();
  mp->park.clear();
  p* pp = std::exchange(mp->nextp, nullptr);
  if (pp == nullptr) GORT_FATAL("stoplockedm: woken without a P");
  acquirep(mp, pp);
}

// g0. gp is locked to another M: give it our P and wake it; we stop.
template <class Traits>
void basic_sched<Traits>::startlockedm(m* mp, g_base* gp) {
  m* mp2 = static_cast<m*>(gp->lockedm);
  incidlelocked(-1);
  p* pp = releasep(mp);
  mp2->nextp = pp;  // invariant 8
  mp2->park.wakeup();
  stopm(mp);
}

template <class Traits>
void basic_sched<Traits>::incidlelocked(int v) {
  std::lock_guard<futex_mutex> lk(lock_);
  nmidlelocked_ += v;
  if (v > 0) checkdead();
}

// ---------------------------------------------------------------------------
// Parking and waking

// G. Go's gopark: switch to g0, mark the G waiting, then run unlockf there.
template <class Traits>
void basic_sched<Traits>::gopark(bool (*unlockf)(g_base*, void*), void* arg,
                                 const char* reason) {
  g_base* gp = current_g();
  GORT_ASSERT(gp != nullptr && gp->sched == this, "gopark: not on a G of this runtime");
  // Inside gort::blocking() the M holds no P: a park there would run the
  // scheduler without one. A misuse to report, not to survive.
  if (GORT_UNLIKELY(gp->status() == gstatus::syscall))
    GORT_FATAL("G %llu: %s inside gort::blocking(): the function given to blocking() runs "
               "outside the scheduler and must not park (no channel, mutex, sleep or net I/O "
               "there; do those before or after it)",
               static_cast<unsigned long long>(gp->goid), reason);
  gp->waitreason = reason;
  // load relaxed: sysmon's store in preemptone; a late one waits a park.
  if (GORT_UNLIKELY(gp->preempt.load(std::memory_order_relaxed))) endslice(gp);
  if constexpr (det) {  // for the deadlock report: what it waits on
    std::lock_guard<futex_mutex> lk(allglock_);
    sim_wait_on_[gp] = sim_wait_obj_ != nullptr ? std::exchange(sim_wait_obj_, nullptr) : arg;
  }
  mcall_rec rec{mcall_rec::park, unlockf, arg};
  if (!gogo_next(gp, rec)) mcall(gp, rec);
}

// G, owner of its P, about to park after sysmon asked it to yield (its time
// slice, inherited through runnext, has lasted 10 ms). Two Gs that ready
// each other (a channel ping-pong) pass the P back and forth through
// runnext forever, each inheriting the slice: nothing else queued on the P
// would ever run (at 1 P, never; test "chan: a ping-ponging pair does not
// starve a queued G"). Go breaks such a pair by preempting the running G
// asynchronously; gort does it here: the G in runnext goes behind the
// local queue, and the next G starts a fresh slice (schedtick moves).
template <class Traits>
void basic_sched<Traits>::endslice(g_base* gp) {
  gp->preempt.store(false, std::memory_order_relaxed);
  p* pp = static_cast<m*>(gp->m)->pp;
  if (pp == nullptr) return;
  rotate_runnext(pp);
}

// pp's owner: its runnext G goes to the tail of its queue, so that the Gs
// queued before it run first and the next G picked starts a fresh slice.
template <class Traits>
void basic_sched<Traits>::rotate_runnext(p* pp) {
  // load-acquire: pairs with the release of the owner's own earlier write.
  g_base* next = pp->runnext.load(std::memory_order_acquire);
  if (next == nullptr) return;
  if (procs_ == 1) {  // no thief (see runqput)
    pp->runnext.store(nullptr, std::memory_order_relaxed);
  } else if (!pp->runnext.compare_exchange_strong(next, nullptr, std::memory_order_acq_rel)) {
    return;  // a thief took it: it runs elsewhere
  }
  runqput(pp, next, false);
}

// g0. Returns false if unlockf refused the park (the G must run again).
template <class Traits>
bool basic_sched<Traits>::park_m(m* mp, g_base* gp, const mcall_rec& rec) {
  emit(trace::kind::park, gp->goid, 0, mp->pp != nullptr ? mp->pp->id : -1, gp->waitreason);
  casgstatus(gp, gstatus::running, gstatus::waiting);
  dropg(mp);
  if (rec.unlockf != nullptr && !rec.unlockf(gp, rec.arg)) {
    casgstatus(gp, gstatus::waiting, gstatus::runnable);
    gp->waitreason = "";
    return false;
  }
  return true;
}

// Any thread. Go's goready: runnable in runnext of the current P (it runs
// next, inheriting the time slice), or injected when there is no P here.
template <class Traits>
void basic_sched<Traits>::goready(g_base* gp, bool next) {
  if constexpr (det) {
    // After a deadlock report the blocked Gs are abandoned (their stacks
    // go with the runtime): a late wakeup, say a socket closed by the test
    // after run() returned, must not run one.
    if (sim_deadlocked_.load(std::memory_order_acquire)) return;
  }
  g_base* cur = current_g();
  emit(trace::kind::ready, gp->goid, cur != nullptr ? cur->goid : 0);
  casgstatus(gp, gstatus::waiting, gstatus::runnable);
  if (m* mp = this_m(cur)) {
    if (p* pp = mp->pp) {
      const bool rmw = runqput(pp, gp, next);
      // With one P, which we hold, no P is idle: wakep would find npidle
      // == 0 after a seq_cst fence (~7 ns here) and do nothing.
      if (procs_ != 1) wakep(rmw);
      return;
    }
  }
  inject(gp);
}

// G. runtime.Gosched: to the back of the local queue.
template <class Traits>
void basic_sched<Traits>::gosched() {
  g_base* gp = current_g();
  GORT_ASSERT(gp != nullptr && gp->sched == this, "gosched: not on a G of this runtime");
  // Inside gort::blocking() the G is a plain thread with no P to give up:
  // yield as a thread does.
  if (GORT_UNLIKELY(gp->status() == gstatus::syscall)) {
    ::sched_yield();
    return;
  }
  mcall_rec rec{mcall_rec::gosched};
  if (gogo_next(gp, rec) || yield_in_place(gp)) return;
  mcall(gp, rec);
}

// G, gogo_next having found nothing local to switch to. When nothing at
// all could run before gp, yielding through g0 would requeue gp on its
// P's empty queue and findrunnable would hand it straight back: same
// outcome, two switches and a findrunnable later (two Gs yielding on 2
// Ps: 26 ns a yield, of which ~20 that). Then only the schedule is
// counted (sysmon's progress check) and gp goes on. "Nothing could run
// first" means what findrunnable checks before the local queue: no timer,
// no global G, no I/O waiter. Not when sysmon asked gp to yield (it goes
// behind the global queue), for a locked G, in a deterministic runtime or
// while tracing (the trace shows every yield as a switch).
template <class Traits>
bool basic_sched<Traits>::yield_in_place(g_base* gp) {
  if constexpr (det) return false;
  m* mp = static_cast<m*>(gp->m);
  p* pp = mp->pp;
  if (mp->lockedg != nullptr || gp->preempt.load(std::memory_order_relaxed) ||
      !pp->runq_empty() || work_beyond_local(pp) ||
      trace_.load(std::memory_order_relaxed) != nullptr)
    return false;
  pp->schedtick.store(pp->schedtick.load(std::memory_order_relaxed) + 1,
                      std::memory_order_relaxed);  // sysmon reads it
  return true;
}

template <class Traits>
void basic_sched<Traits>::gosched_m(m* mp, g_base* gp) {
  emit(trace::kind::yield, gp->goid, 0, mp->pp->id);
  casgstatus(gp, gstatus::running, gstatus::runnable);
  dropg(mp);
  requeue_yielded(mp->pp, gp);
}

// Owner of pp, gp runnable and on no queue: where a yielding G goes. To the
// back of the local queue; a G that sysmon asked to yield (it held the P
// 10 ms) to the back of the global queue, behind everything queued anywhere
// (Go's gopreempt_m). The M calling this schedules next and so finds it:
// no wakep needed.
template <class Traits>
void basic_sched<Traits>::requeue_yielded(p* pp, g_base* gp) {
  // A load, and a store only when set: an xchg here was a quarter of a
  // yield's cost (it drains the store buffer). Losing a request sysmon
  // makes between the two is harmless: this G is yielding as asked.
  if (GORT_UNLIKELY(gp->preempt.load(std::memory_order_relaxed))) {
    gp->preempt.store(false, std::memory_order_relaxed);
    std::lock_guard<futex_mutex> lk(lock_);
    globrunqput(gp);
    return;
  }
  runqput(pp, gp, false);
}

// g0. The G's body returned.
template <class Traits>
void basic_sched<Traits>::goexit0(m* mp, g_base* gp) {
  emit(trace::kind::exit, gp->goid, 0, mp->pp->id);
  dropg(mp);
  if (gp->lockedm != nullptr) {
    mp->lockedg = nullptr;
    gp->lockedm = nullptr;
    gp->locked_count = 0;
  }
  gdead(mp->pp, gp);
}

// An exited G, no longer on its stack (g0, or the G a direct switch went
// to): dead, its stack back to pp's cache, the G to pp's free list.
template <class Traits>
void basic_sched<Traits>::gdead(p* pp, g_base* gp) {
  casgstatus(gp, gstatus::running, gstatus::dead);
  if constexpr (det) {
    pct_prio_.erase(gp->goid);
    std::lock_guard<futex_mutex> lk(allglock_);
    sim_wait_on_.erase(gp);  // the struct may be freed or reused
  }
  if constexpr (!g_in_stack) {
    stackput(pp, gp->stk);
    gp->stk = {};
  }
  gfput(pp, static_cast<g*>(gp));  // g_in_stack: with the stack holding it
  // One credit earned (see gcount_); the surplus goes back in a batch. The
  // count cannot reach zero here: this P still holds credits. It does in
  // pidleput, when the last busy P goes idle.
  const std::int64_t c = pp->gcredit.load(std::memory_order_relaxed) + 1;
  if (c > 2 * gcount_batch) {
    gcount_.fetch_sub(gcount_batch, std::memory_order_release);
    pp->gcredit.store(c - gcount_batch, std::memory_order_relaxed);
  } else {
    pp->gcredit.store(c, std::memory_order_relaxed);
  }
}

// ---------------------------------------------------------------------------
// Blocking calls (gort::blocking): Go's entersyscall / exitsyscall

// G. The P stays attached in state syscall; sysmon retakes it if the call
// lasts and the P has work (retake, handoffp).
template <class Traits>
void basic_sched<Traits>::entersyscall() {
  g_base* gp = current_g();
  m* mp = static_cast<m*>(gp->m);
  p* pp = mp->pp;
  emit(trace::kind::yield, gp->goid, 0, pp->id, "syscall");
  casgstatus(gp, gstatus::running, gstatus::syscall);
  pp->curg.store(nullptr, std::memory_order_relaxed);
  mp->oldp = pp;
  mp->pp = nullptr;
  mp->pid = -1;
  pp->mp = nullptr;
  // store-release: pairs with sysmon's and exitsyscallfast's CAS.
  pp->status.store(pstatus::syscall, std::memory_order_release);
  wake_sysmon();
}

// G. Fast path: take back our P (or any idle one) and go on; else queue the
// G and let g0 find it a P.
template <class Traits>
void basic_sched<Traits>::exitsyscall() {
  g_base* gp = current_g();
  m* mp = static_cast<m*>(gp->m);
  p* oldp = std::exchange(mp->oldp, nullptr);
  if (exitsyscallfast(mp, oldp)) {
    casgstatus(gp, gstatus::syscall, gstatus::running);
    emit(trace::kind::run, gp->goid, 0, mp->pp->id);
    p* pp = mp->pp;
    pp->syscalltick.store(pp->syscalltick.load(std::memory_order_relaxed) + 1,
                          std::memory_order_relaxed);
    pp->curg.store(gp, std::memory_order_release);  // as in execute
    return;
  }
  mcall_rec rec{mcall_rec::exitsyscall};
  mcall(gp, rec);
}

template <class Traits>
bool basic_sched<Traits>::exitsyscallfast(m* mp, p* oldp) {
  pstatus s = pstatus::syscall;
  // CAS acq_rel against sysmon's retake: exactly one of us gets the P.
  if (oldp != nullptr && oldp->status.compare_exchange_strong(s, pstatus::idle,
                                                               std::memory_order_acq_rel)) {
    acquirep(mp, oldp);
    return true;
  }
  if (npidle_.load(std::memory_order_acquire) != 0) {
    p* pp = nullptr;
    {
      std::lock_guard<futex_mutex> lk(lock_);
      pp = pidleget();
    }
    if (pp != nullptr) {
      acquirep(mp, pp);  // wakes sysmon
      return true;
    }
  }
  return false;
}

// g0. No P was free when gp left its blocking call. Returns true if gp
// should run now (a P turned up).
template <class Traits>
bool basic_sched<Traits>::exitsyscall0(m* mp, g_base* gp) {
  casgstatus(gp, gstatus::syscall, gstatus::runnable);
  dropg(mp);
  p* pp = nullptr;
  {
    std::lock_guard<futex_mutex> lk(lock_);
    pp = pidleget();
    if (pp == nullptr) globrunqput(gp);
  }
  if (pp != nullptr) {
    acquirep(mp, pp);
    return true;
  }
  if (mp->lockedg != nullptr) return false;  // schedule(): stoplockedm
  stopm(mp);  // gp is queued globally; a busy P finds it
  return false;
}

// ---------------------------------------------------------------------------
// Timers: one heap per P (Go 1.14+). Who runs a P's expired timers: its
// owner at every findrunnable (check_timers), any M about to give up its P
// (run_expired_timers: all Ps, so an idle P's and a busy one's whose G does
// not yield), and, while the runtime idles, an M woken at the earliest
// deadline of all by the one M that sleeps until it (timer_sleeper_).
// Invariant: while a timer is pending on a P with no M, some M sleeps
// until a deadline no later than its (sleeper_until_), or an M with a P
// will go through findrunnable's idle path, which runs it or sleeps so.
// Kept by become_timer_sleeper (the deadline computed under sched.lock)
// and timer_added (under sched.lock: a timer earlier than that deadline
// wakes the sleeper; with no sleeper, a timer on a P that no M runs, idle
// or in a blocking call, starts an M for an idle P). With no idle P, the
// Ms with a P run their own timers, and sysmon's retake takes a P in a
// blocking call once one of its timers is due.

// Any thread: the M of this runtime the caller runs on (a running G's, or
// an M's own on g0: timers, unlockf), or null.
template <class Traits>
typename basic_sched<Traits>::m* basic_sched<Traits>::this_m(g_base* cur) const noexcept {
  if (cur != nullptr)
    return cur->sched == this && cur->status() == gstatus::running ? static_cast<m*>(cur->m)
                                                                   : nullptr;
  auto* m0 = static_cast<m*>(tls_m);
  return m0 != nullptr && m0->owner == this ? m0 : nullptr;
}

// Current G: Go's sync_runtime_canSpin. Spinning for a lock pays only while
// its holder may be running on another P and this P has nothing better to
// do: not with one CPU or one P (a deterministic runtime has one), not
// when every other P is idle or spinning (no G runs anywhere, so none will
// unlock soon), and not while this P has Gs queued (park and run them).
// Unsynchronised reads: a stale answer costs one spin round or one early
// park, never correctness.
template <class Traits>
bool basic_sched<Traits>::can_spin() const noexcept {
  if (ncpu_ <= 1 || procs_ <= 1) return false;
  if (static_cast<int>(procs_) <= npidle_.load(std::memory_order_relaxed) +
                                      nmspinning_.load(std::memory_order_relaxed) + 1)
    return false;
  m* mp = this_m(current_g());
  return mp != nullptr && mp->pp != nullptr && mp->pp->runq_empty();
}

// Any thread: the P whose heap takes a new timer. The caller's own, so
// that starting, stopping and firing touch no other P's lines; a thread
// without one (outside the runtime, or in gort::blocking) picks one by
// the node's address, which spreads such callers over the Ps.
template <class Traits>
typename basic_sched<Traits>::p* basic_sched<Traits>::timer_home(const timer_node* t) const noexcept {
  if (m* mp = this_m(current_g()); mp != nullptr && mp->pp != nullptr) return mp->pp;
  return allp_[(reinterpret_cast<std::uintptr_t>(t) / 64) % procs_].get();
}

template <class Traits>
void basic_sched<Traits>::add_timer(timer_node* t) {
  p* pp = timer_home(t);
  const std::int64_t when = t->when;  // t may fire and be gone once unlocked
  bool earliest;
  {
    std::lock_guard<spinlock> lk(pp->timers_mu);
    // Out of memory is fatal (Go's "out of memory"): add_timer runs in
    // park hooks (a sleep's, a deadline's) on another G's stack or on g0,
    // where an exception would surface in the wrong G or terminate.
    try {
      pp->timers.push(t);
    } catch (const std::bad_alloc&) {
      GORT_FATAL("out of memory: the timer heap of P %d cannot grow past %zu timers", pp->id,
                 pp->timers.size());
    }
    t->home.store(pp, std::memory_order_release);
    earliest = pp->timers.top() == t;
    pp->timers_changed();
  }
  if (earliest) timer_added(pp, when);
}

// Any thread, after a timer due at `when` became the earliest of home's
// heap (or home went idle with timers): the sleeper must look again if it
// sleeps past `when` (Go's wakeNetPoller). With no sleeper, a timer on a
// P that no M runs (idle, or its M in a blocking call) needs one: start
// an M for an idle P, which runs it or becomes the sleeper. (A timer on a
// running P is its M's: that M runs it, or becomes the sleeper when it
// idles.) With no idle P either, sysmon's retake counts the timer as work
// of a P in a blocking call.
template <class Traits>
void basic_sched<Traits>::timer_added(p* home, std::int64_t when) {
  bool need_m = false;
  {
    std::lock_guard<futex_mutex> lk(lock_);
    if (timer_sleeper_ != nullptr) {
      if (when < sleeper_until_) wake_timer_sleeper();
    } else {
      need_m = home->status.load(std::memory_order_relaxed) != pstatus::running;
    }
  }
  if (need_m) startm(nullptr, false);
}

template <class Traits>
bool basic_sched<Traits>::del_timer(timer_node* t) {
  p* pp = static_cast<p*>(t->home.load(std::memory_order_acquire));
  if (pp == nullptr) return false;  // never started
  std::lock_guard<spinlock> lk(pp->timers_mu);
  if (!pp->timers.remove(t)) return false;
  pp->timers_changed();
  return true;
}

// Any thread: Go's modtimer for a pending timer. It stays in its heap (on
// the P that started it) and takes no other P's lock; a deadline pushed
// back costs O(1) (timer_heap::update), one brought forward a sift up.
template <class Traits>
bool basic_sched<Traits>::mod_timer(timer_node* t, std::int64_t when) {
  p* pp = static_cast<p*>(t->home.load(std::memory_order_acquire));
  if (pp == nullptr) return false;
  bool earlier;
  {
    std::lock_guard<spinlock> lk(pp->timers_mu);
    if (t->index == timer_node::npos) return false;  // fired or firing
    const std::int64_t top_was = pp->timers.top()->when;
    pp->timers.update(t, when);  // pushed back: O(1), applied at the top
    earlier = pp->timers.top() == t && when < top_was;
    pp->timers_changed();
  }
  if (earlier) timer_added(pp, when);
  return true;
}

// The destructor, every M joined: timers nobody stopped (an after() whose
// channel nobody read, a timer or ticker left running) will never fire.
// Each node's drop runs outside the heap's lock, since an owner's drop
// takes its own lock, which its stop() holds while calling del_timer.
// One node at a time, so that the destructor allocates nothing.
template <class Traits>
void basic_sched<Traits>::drop_timers() {
  end_liveness();  // a timer outliving the runtime refuses reset() from now on
  for (auto& up : allp_) {
    p* pp = up.get();
    for (;;) {
      timer_node* t;
      {
        std::lock_guard<spinlock> lk(pp->timers_mu);
        if (pp->timers.empty()) break;
        t = pp->timers.pop();
        pp->timers_changed();
      }
      if (t->drop != nullptr) t->drop(t);  // t may be gone once it returns
    }
  }
}

// g0 with `onto`: runs `from`'s timers due by now, each without the heap's
// lock. A timer fn usually readies a G onto this M's P, `onto`: fire at
// most as many as its queue has room for, so that a burst never overflows
// it (which would move the older half to the global queue and run those
// Gs after younger ones); the rest fire at the next look, in order.
// Returns how many ran.
template <class Traits>
std::size_t basic_sched<Traits>::run_timers(p* onto, p* from, std::int64_t now) {
  const std::uint32_t used = onto->runq.size() + 1;  // + runnext
  const std::size_t budget = used < Traits::run_queue_capacity ? Traits::run_queue_capacity - used : 0;
  std::size_t ran = 0;
  for (; ran != budget; ++ran) {
    timer_node* t;
    {
      std::lock_guard<spinlock> lk(from->timers_mu);
      t = from->timers.settle();
      if (t == nullptr || t->when > now) {
        from->timers_changed();  // settle may have moved the top
        break;
      }
      from->timers.pop();
      from->timers_changed();
    }
    t->fn(t);  // may ready Gs; t may be gone once it returns
  }
  return ran;
}

// g0 with a P: its own expired timers.
template <class Traits>
void basic_sched<Traits>::check_timers(p* pp) {
  const std::int64_t w = pp->timer0when.load(std::memory_order_acquire);
  if (w == INT64_MAX) return;  // no timer: no clock read
  const std::int64_t now = this->now();
  if (w > now) return;
  // The Gs the timers ready go to the queue's tail (in firing order); a
  // runnext G goes behind them, or a pair of Gs readying each other
  // through runnext would keep them waiting until sysmon ends its slice.
  if (run_timers(pp, pp, now) != 0) rotate_runnext(pp);
}

// g0 with pp, about to give it up: every P's expired timers (pp's own
// too: some may have expired since check_timers), onto pp's queue within
// its room. A look at each P's timer0when; a P's lock only when one is
// due. Returns whether any ran.
template <class Traits>
bool basic_sched<Traits>::run_expired_timers(p* pp) {
  std::int64_t now = INT64_MIN;
  bool ran = false;
  for (std::uint32_t k = 0; k < procs_; ++k) {  // from pp on: Ms spread over the locks
    p* p2 = allp_[(static_cast<std::uint32_t>(pp->id) + k) % procs_].get();
    const std::int64_t w = p2->timer0when.load(std::memory_order_acquire);
    if (w == INT64_MAX) continue;
    if (now == INT64_MIN) now = this->now();
    if (w > now) continue;
    ran |= run_timers(pp, p2, now) != 0;
  }
  return ran;
}

// Any thread: the earliest deadline of all Ps' timers (INT64_MAX: none).
template <class Traits>
std::int64_t basic_sched<Traits>::timer_earliest() const noexcept {
  std::int64_t w = INT64_MAX;
  for (auto& up : allp_) w = std::min(w, up->timer0when.load(std::memory_order_acquire));
  return w;
}

// g0, no P. The deadline is taken under sched.lock, with the M registered:
// a timer_added before it is in the scan, one after it sees the M and
// compares with the deadline (the invariant above).
template <class Traits>
bool basic_sched<Traits>::become_timer_sleeper(m* mp) {
  std::lock_guard<futex_mutex> lk(lock_);
  if (shutdown_ || timer_sleeper_ != nullptr) return false;
  timer_sleeper_ = mp;
  sleeper_until_ = timer_earliest();
  sleeper_woken_ = false;
  sleeper_in_poll_ = netpoll_inited();
  netpoll_blocked_.store(sleeper_in_poll_, std::memory_order_relaxed);
  return true;
}

// Sleeps until the earliest timer, or until wake_timer_sleeper; in the
// netpoller when there is one (then Gs whose I/O completed go on ready).
template <class Traits>
void basic_sched<Traits>::timer_sleep(m* mp, glist& ready) {
  const std::int64_t now = nanotime();
  bool in_poll;
  std::int64_t when;
  {
    std::lock_guard<futex_mutex> lk(lock_);
    in_poll = sleeper_in_poll_;
    when = sleeper_until_;
  }
  if constexpr (det) {
    // Every G is blocked: jump to the earliest timer instead of sleeping.
    if (when != INT64_MAX && when > vclock_.load(std::memory_order_relaxed))
      vclock_.store(when, std::memory_order_release);
    (void)ready;
  } else if (in_poll) {
    // Block while Gs wait for I/O; with neither timers nor waiters, only
    // look (sleeping would hide a deadlock from checkdead).
    std::int64_t timeout = when == INT64_MAX ? (netpoll_waiters() != 0 ? -1 : 0)
                                             : (when > now ? when - now : 0);
    np_.load(std::memory_order_acquire)->poll(timeout, ready);
    lastpoll_.store(nanotime(), std::memory_order_relaxed);
  } else if (when != INT64_MAX && when > now) {
    // INT64_MAX: the timers were stopped meanwhile; do not sleep (an M
    // sleeping here would hide a deadlock from checkdead).
    mp->park.sleep_for(when - now);
  }
  {
    std::lock_guard<futex_mutex> lk(lock_);
    timer_sleeper_ = nullptr;  // no wakeup can come after this
    sleeper_in_poll_ = false;
    netpoll_blocked_.store(false, std::memory_order_relaxed);
  }
  if (!in_poll) mp->park.clear();  // invariant 8: only the sleeper clears
}

// lock. An earlier timer, or shutdown: the sleeper must look again.
template <class Traits>
void basic_sched<Traits>::wake_timer_sleeper() {
  if (timer_sleeper_ != nullptr && !sleeper_woken_) {
    sleeper_woken_ = true;
    if (sleeper_in_poll_) np_.load(std::memory_order_acquire)->wakeup();  // netpollBreak
    else timer_sleeper_->park.wakeup();
  }
}

// ---------------------------------------------------------------------------
// lock_os_thread (Go's LockOSThread)

template <class Traits>
void basic_sched<Traits>::lock_os_thread() {
  g_base* gp = current_g();
  m* mp = static_cast<m*>(gp->m);
  ++gp->locked_count;
  gp->lockedm = mp;
  mp->lockedg = gp;
}

template <class Traits>
void basic_sched<Traits>::unlock_os_thread() {
  g_base* gp = current_g();
  if (gp->locked_count == 0) return;
  if (--gp->locked_count != 0) return;
  m* mp = static_cast<m*>(gp->m);
  gp->lockedm = nullptr;
  mp->lockedg = nullptr;
}

}  // namespace detail
GORT_END_NAMESPACE

#include "sysmon.hpp"
