// gort/detail/sysmon.hpp: the system monitor and deadlock detection (Go's
// sysmon, retake, preemptone and checkdead in proc.go).
//
// sysmon runs on its own thread, without a P. It sleeps 20 us, doubling the
// sleep after 50 idle rounds up to 10 ms, and sleeps on a note while every P
// is idle (woken by startm, entersyscall and exitsyscall). Each round:
//   retake: a P in a blocking call for a whole sysmon tick (>= 20 us) with
//           work queued, or for 10 ms in any case, is taken back (CAS
//           syscall -> idle, racing exitsyscallfast) and handed off;
//           a G that has run 10 ms without a schedule gets its preempt flag
//           (gort has no asynchronous preemption: yield points check it);
//           one that keeps its P for config.hog_report_ms is reported once.
//   timers: a timer overdue by over 1 ms while a P is idle and no M sleeps
//           until the earliest timer gets an M started for it.
//   schedtrace: with GORT_DEBUG=schedtrace=<ms>, one line per interval.
//   scavenge: about once a second, pooled stacks beyond the allocator's
//           pool_limit that no G needed since the last time are returned
//           to the kernel (stack_allocator::scavenge; Go's background
//           scavenger returns idle heap the same way, at its own pace),
//           at most scavenge_batch per round, the rest in the next rounds.
//           Before the deep sleep, while such stacks remain, sysmon sleeps
//           a scavenge period at a time, so an idle runtime gives its
//           burst's stacks back within two or three periods (measured:
//           skynet_chan's 1M Gs left 78 MiB resident, 35 MiB 3 s later,
//           which is what releasing each stack at once used to leave).
#pragma once

#include <cinttypes>

#include "proc.hpp"

GORT_BEGIN_NAMESPACE
namespace detail {

inline constexpr std::int64_t force_preempt_ns = 10'000'000;  // Go's forcePreemptNS
inline constexpr std::int64_t scavenge_period_ns = 1'000'000'000;
// A timer this late with no M watching it makes sysmon start one.
inline constexpr std::int64_t timer_overdue_ns = 1'000'000;
// Stacks released per scavenge call (a munmap or madvise each, a few us):
// a scavenge stays well inside sysmon's 10 ms preemption tick; more waits
// for the next round.
inline constexpr std::size_t scavenge_batch = 512;

template <class Traits>
void* basic_sched<Traits>::sysmon_main(void* arg) {
  static_cast<basic_sched*>(arg)->sysmon();
  return nullptr;
}

template <class Traits>
void basic_sched<Traits>::sysmon() {
  std::int64_t delay_us = 0;
  int idle = 0;
  std::int64_t last_trace = nanotime();
  std::int64_t last_scavenge = last_trace;
  bool scavenge_more = false;  // the last scavenge hit its batch: go on soon
  auto scavenge = [&] {
    last_scavenge = nanotime();
    scavenge_more = stacks_.scavenge(scavenge_batch) == scavenge_batch;
  };
  while (!sysmon_stop_.load(std::memory_order_acquire)) {
    if (idle == 0) delay_us = 20;
    else if (idle > 50) delay_us *= 2;
    if (delay_us > 10'000) delay_us = 10'000;
    if (schedtrace_ms_ > 0) delay_us = std::min<std::int64_t>(delay_us, schedtrace_ms_ * 1000);
    ::usleep(static_cast<useconds_t>(delay_us));
    if (schedtrace_ms_ <= 0 &&
        npidle_.load(std::memory_order_acquire) == static_cast<int>(procs_)) {
      std::unique_lock<futex_mutex> lk(lock_);
      if (npidle_.load(std::memory_order_relaxed) == static_cast<int>(procs_) &&
          !sysmon_stop_.load(std::memory_order_acquire)) {
        sysmonwait_.store(true, std::memory_order_relaxed);
        lk.unlock();
        // Deep sleep: nothing runs, nothing to watch; but while pooled
        // stacks wait to be scavenged, wake for that once a period. A
        // waker that finds sysmonwait_ set clears it and wakes the note
        // under the lock, so after a timeout the code below is the same.
        for (;;) {
          const std::int64_t ns = stacks_.excess() == 0 ? -1
                                  : scavenge_more      ? 1'000'000
                                                       : scavenge_period_ns;
          if (sysmonnote_.sleep_for(ns)) break;
          scavenge();
        }
        lk.lock();
        sysmonwait_.store(false, std::memory_order_relaxed);
        sysmonnote_.clear();
        idle = 0;
        delay_us = 20;
      }
    }
    const std::int64_t now = nanotime();
    // Poll the network if nobody has for 10 ms (every P busy with Gs that
    // do not reach findrunnable): the Gs go to the global queue. Also when
    // no G waits but an armed multishot accept's completions must be
    // reaped for its queue cap to apply (netpoller.md, "Bounded").
    netpoller_base* np = np_.load(std::memory_order_acquire);
    if (np != nullptr && (np->waiters() != 0 || np->wants_reaping()) &&
        !netpoll_blocked_.load(std::memory_order_relaxed) &&
        now - lastpoll_.load(std::memory_order_relaxed) > 10'000'000) {
      lastpoll_.store(now, std::memory_order_relaxed);
      // sysmon is not an M: while the Gs it reaped are on its list (no
      // longer waiters, not yet queued), checkdead must not look.
      sysmon_polling_.store(true, std::memory_order_seq_cst);
      glist l;
      np->poll(0, l);
      if (!l.empty()) {
        injectglist(nullptr, l);
        idle = 0;
      }
      sysmon_polling_.store(false, std::memory_order_seq_cst);
    }
    // A timer overdue by more than timer_overdue_ns with no M to run it:
    // its P idle, no M asleep until it (the sleeper left to run Gs) and
    // the Ms with a P never idle (a timer's P is the one that started it;
    // only idling Ms run other Ps' timers). Start one: its findrunnable
    // runs it. (Go's sysmon does this only on NetBSD, where a lost
    // netpollBreak can strand a timer; with Ms that yield but never idle
    // it can happen anywhere.) A timer pushed back in place can look
    // overdue until its heap settles: one M started for nothing.
    if (timer_earliest() < now - timer_overdue_ns) {
      bool start;
      {
        std::lock_guard<futex_mutex> lk(lock_);
        start = timer_sleeper_ == nullptr && npidle_.load(std::memory_order_relaxed) != 0 &&
                !shutdown_;
      }
      if (start) {
        startm(nullptr, false);
        idle = 0;
      }
    }
    if (retake(now) != 0) idle = 0;
    else ++idle;
    if (scavenge_more || now - last_scavenge >= scavenge_period_ns) scavenge();
    if (schedtrace_ms_ > 0 && now - last_trace >= schedtrace_ms_ * 1'000'000) {
      last_trace = now;
      schedtrace(now);
    }
  }
}

// Any thread: wake sysmon from its deep sleep.
template <class Traits>
void basic_sched<Traits>::wake_sysmon() {
  if (!sysmonwait_.load(std::memory_order_relaxed)) return;
  std::lock_guard<futex_mutex> lk(lock_);
  if (sysmonwait_.load(std::memory_order_relaxed)) {
    sysmonwait_.store(false, std::memory_order_relaxed);
    sysmonnote_.wakeup();
  }
}

// sysmon. Returns how many Ps it took back from blocking calls.
template <class Traits>
std::uint32_t basic_sched<Traits>::retake(std::int64_t now) {
  std::uint32_t n = 0;
  for (auto& ptr : allp_) {
    p* pp = ptr.get();
    sysmontick& pd = pp->sysmon;
    const pstatus s = pp->status.load(std::memory_order_acquire);
    bool sysretake = false;
    if (s == pstatus::running || s == pstatus::syscall) {
      const std::uint32_t t = pp->schedtick.load(std::memory_order_relaxed);
      if (pd.schedtick != t || pd.schedwhen == 0) {  // progress, or first look
        pd.schedtick = t;
        pd.schedwhen = now;
      } else if (pd.schedwhen + force_preempt_ns <= now) {
        preemptone(pp, now - pd.schedwhen);
        sysretake = true;  // a long syscall: retake regardless of work
        // Without asynchronous preemption the G may never yield: make sure
        // a spinning M exists to steal the work queued behind it.
        if (s == pstatus::running && !pp->runq_empty()) wakep();
      }
    }
    if (s != pstatus::syscall) continue;
    const std::uint32_t t = pp->syscalltick.load(std::memory_order_relaxed);
    if (!sysretake && (pd.syscalltick != t || pd.syscallwhen == 0)) {
      pd.syscalltick = t;
      pd.syscallwhen = now;
      continue;
    }
    // Leave it alone if it has no work (no G queued, no timer due: its
    // timers have no other M), others can take new work, and it has not
    // been in the call for 10 ms.
    if (pp->runq_empty() && pp->timer0when.load(std::memory_order_acquire) > now &&
        nmspinning_.load(std::memory_order_relaxed) + npidle_.load(std::memory_order_relaxed) > 0 &&
        pd.syscallwhen + force_preempt_ns > now)
      continue;
    // Count one more running M before the CAS: otherwise the M we take the
    // P from could leave its call, go idle, and checkdead would see nobody
    // running.
    incidlelocked(-1);
    pstatus want = pstatus::syscall;
    if (pp->status.compare_exchange_strong(want, pstatus::idle, std::memory_order_acq_rel)) {
      ++n;
      pp->syscalltick.store(t + 1, std::memory_order_relaxed);
      handoffs_.fetch_add(1, std::memory_order_relaxed);
      handoffp(pp);
    }
    incidlelocked(1);
  }
  return n;
}

// sysmon. Asks the G running on pp to yield at its next yield point, and
// reports it once if it has held the P for far longer.
template <class Traits>
void basic_sched<Traits>::preemptone(p* pp, std::int64_t ran_ns) {
  // A G struct is freed only once dead and on a free list, after its P
  // dropped it from curg, and only after it left allgs under allglock
  // (gfput, gfree_one): holding allglock, the gp read here stays a G, even
  // if stale. Rare: only for a P whose G has held it 10 ms.
  std::lock_guard<futex_mutex> lk(allglock_);
  // load-acquire: pairs with the store-release in prepare_run.
  g_base* gp = pp->curg.load(std::memory_order_acquire);
  if (gp == nullptr) return;
  gp->preempt.store(true, std::memory_order_relaxed);
  const std::int64_t hog_ms = cfg_.hog_report_ms > 0 ? cfg_.hog_report_ms : 1000;
  if (ran_ns >= hog_ms * 1'000'000 && !gp->hog_reported.exchange(true, std::memory_order_relaxed))
    std::fprintf(stderr,
                 "gort: G %" PRIu64 " has run for %" PRId64
                 " ms without reaching a yield point; it holds P %d (call "
                 "gort::yield() in long loops, or run the work in gort::blocking())\n",
                 gp->goid, ran_ns / 1'000'000, pp->id);
}

// lock. Go's checkdead: if no M is running, every live G is blocked forever.
template <class Traits>
void basic_sched<Traits>::checkdead() {
  if (!cfg_.deadlock_detection || shutdown_) return;
  const int run = mcount_ - nmidle_ - nmidlelocked_;
  if (run > 0) return;
  if (run < 0)
    GORT_FATAL("checkdead: inconsistent counts: mcount=%d nmidle=%d nmidlelocked=%d",
               mcount_, nmidle_, nmidlelocked_);
  if (gcount_.load(std::memory_order_acquire) == 0) return;
  if (runqsize_.load(std::memory_order_relaxed) != 0) return;  // being injected
  if (timer_earliest() != INT64_MAX) return;  // a timer may wake one
  if (netpoll_waiters() != 0) return;  // I/O may complete and wake one
  // Read after the waiters (seq_cst both): a G sysmon reaped is either
  // still a waiter, or on sysmon's list (flag set before the reap), or
  // queued by now (the flag is cleared only after injectglist, under lock).
  if (sysmon_polling_.load(std::memory_order_seq_cst)) return;
  if (runqsize_.load(std::memory_order_relaxed) != 0) return;
  std::string report;
  int waiting = 0;
  std::unordered_map<const void*, std::size_t> objects;  // deterministic runtimes
  {
    std::lock_guard<futex_mutex> lk(allglock_);
    for (g_base* gp = allgs_; gp != nullptr; gp = gp->allnext) {
      switch (gp->status()) {
        case gstatus::waiting:
          ++waiting;
          if (waiting <= 100) {
            report += "\n  G " + std::to_string(gp->goid) + " [" + gp->waitreason;
            if constexpr (det) {  // the object it waits on (Go prints none), numbered
              // in order of first appearance: the same for every run of a seed
              auto it = sim_wait_on_.find(gp);
              const void* obj = it != sim_wait_on_.end() ? it->second : nullptr;
              auto [num, fresh] = objects.try_emplace(obj, objects.size() + 1);
              (void)fresh;
              report += " on #" + std::to_string(num->second);
            }
            report += "]";
          }
          break;
        case gstatus::runnable:
        case gstatus::running:
        case gstatus::syscall:
          return;  // somebody will run it (an injection in flight)
        default:
          break;
      }
    }
  }
  if (waiting == 0) return;
  if (waiting > 100) report += "\n  ... and " + std::to_string(waiting - 100) + " more";
  if constexpr (det) {
    if (sim_deadlock_) {  // a deterministic runtime reports to its test
      sim_deadlocked_.store(true, std::memory_order_release);
      sim_deadlock_(report);
      std::lock_guard<std::mutex> lk(gzero_mu_);  // order: sched.lock, then gzero_mu_
      gzero_cv_.notify_all();
      return;
    }
  }
  GORT_FATAL("all goroutines are asleep - deadlock!%s\n(set config.deadlock_detection = false "
             "if threads outside the runtime will wake them)",
             report.c_str());
}

template <class Traits>
void basic_sched<Traits>::schedtrace(std::int64_t now) {
  std::string line = "SCHED " + std::to_string((now - start_ns_) / 1'000'000) +
                     "ms: gomaxprocs=" + std::to_string(procs_);
  std::lock_guard<futex_mutex> lk(lock_);
  line += " idleprocs=" + std::to_string(npidle_.load(std::memory_order_relaxed)) +
          " threads=" + std::to_string(mcount_ + 1) +
          " spinningthreads=" + std::to_string(nmspinning_.load(std::memory_order_relaxed)) +
          " idlethreads=" + std::to_string(nmidle_) +
          " runqueue=" + std::to_string(runqsize_.load(std::memory_order_relaxed)) + " [";
  for (std::size_t i = 0; i < allp_.size(); ++i) {
    if (i != 0) line += ' ';
    line += std::to_string(allp_[i]->runq.size() +
                           (allp_[i]->runnext.load(std::memory_order_relaxed) ? 1 : 0));
  }
  line += "]\n";
  std::fputs(line.c_str(), stderr);
}

}  // namespace detail
GORT_END_NAMESPACE
