// gort/detail/netpoll_uring.hpp: the io_uring netpoller.
//
// One ring per P, created without SINGLE_ISSUER / DEFER_TASKRUN /
// COOP_TASKRUN / SQPOLL: a P moves between Ms, and those flags tie a ring to
// one thread. The protocol of one operation:
//
//   G        fills an op record on its stack and parks (gopark).
//   unlockf  (g0, or the next G's stack; the M holds the P) takes an SQE
//            from its P's ring, points user_data at the op and submits.
//            The SQ belongs to whoever holds the P: no SQ lock.
//   reaper   any M (the P's owner in findrunnable, the M blocked in
//            poll(), sysmon) reaps a ring under its try-lock, stores the
//            result in the op and readies the G once nothing else owes it
//            anything.
//
// "Owes": op.refs counts the parties that still touch the op record: the
// CQE, the unlockf itself (it reads the op after submitting), and the
// deadline timer when there is one. Whoever drops the last ref readies the
// G (the unlockf by refusing the park), so the record on the G's stack is
// never touched after the G runs again.
//
// Deadlines are runtime timers whose fn cancels the op with
// io_uring_register_sync_cancel (any thread, plain ring); the op's own CQE
// still comes (-ECANCELED, or its result if it won the race: res >= 0 is
// success). close() cancels every op on the fd the same way (CANCEL_FD |
// CANCEL_ALL). A cancel that runs before the SQE is submitted finds
// nothing, so the unlockf re-checks `timed_out` and `closing` after
// submitting (seq_cst on both sides: one of the two sees the other).
//
// A thread's exit cancels the requests it submitted, so each op records
// its M and mexit waits until that M has none in flight (m_base).
//
// Blocking: one eventfd registered on every ring is signalled by every
// CQE; the M that blocks in poll() waits on it (ppoll) and wakeup() writes
// it (Go's netpollBreak).
//
// Multishot (servers' fast path; docs/netpoller.md "Multishot"): a
// listener's accept and a connection's recv are one armed request each
// (IORING_ACCEPT_MULTISHOT; IORING_RECV_MULTISHOT with a provided-buffer
// ring per P ring) that keeps posting CQEs. Their results go to a queue in
// the fd's `mshot` record, owned by the poller, not by a G: accept pops
// an fd, read copies from the queued buffers and gives each back to its
// ring. A G parks only when the queue is empty, and submits nothing when
// the request is still armed. The request is re-armed on demand after it
// ends (on ENOBUFS, an error, EOF, a cancel, a full queue, or the exit of
// the thread that submitted it: so, unlike a one-shot op, it does not keep
// its M alive). A third way for reads, by readiness, arms a multishot
// POLL_ADD and lets the G do the recv. GORT_URING_MULTISHOT (a comma list
// of none, accept, recv, poll, all; default accept,recv) chooses.
#pragma once

#include <liburing.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "config.hpp"
#include "netpoll.hpp"
#include "note.hpp"
#include "runtime2.hpp"

GORT_BEGIN_NAMESPACE
namespace detail {

// Which requests use multishot (see the file comment); a bit set.
// accept: IORING_ACCEPT_MULTISHOT. recv: IORING_RECV_MULTISHOT into
// provided buffers. poll: a connection's reads wait on a multishot
// POLL_ADD and the G does the recv itself (takes precedence over recv).
enum class uring_multishot : unsigned { none = 0, accept = 1, recv = 2, all = 3, poll = 4 };
constexpr uring_multishot operator|(uring_multishot a, uring_multishot b) noexcept {
  return static_cast<uring_multishot>(static_cast<unsigned>(a) | static_cast<unsigned>(b));
}

class uring_poller final : public netpoller_base {
 public:
  static constexpr unsigned sq_entries = 256;
  static constexpr unsigned cq_entries = 4 * sq_entries;
  // Multishot recv's buffers, per P: 256 x 4 KiB (1 MiB of address space,
  // touched as traffic uses it). A power of two (the buffer ring's mask).
  static constexpr unsigned recv_bufs = 256;
  static constexpr unsigned recv_buf_size = 4096;
  // Results an fd's multishot request may queue before it is paused
  // (cancelled; re-armed when a G finds the queue empty).
  static constexpr std::size_t accept_queue_max = 128;
  static constexpr std::size_t recv_queue_max = recv_bufs / 4;

  // Returns null and says why (e.g. "ENOSYS: io_uring_setup: Function not
  // implemented") when io_uring cannot be used here; sys_error, when given,
  // gets the failed call's errno (0 for a missing feature), so that a
  // caller can tell "out of fds right now" from "no io_uring here".
  static std::unique_ptr<netpoller_base> create(unsigned procs, std::string& why,
                                                int* sys_error = nullptr) {
    return create(procs, why, multishot_from_env(), sys_error);
  }
  static std::unique_ptr<netpoller_base> create(unsigned procs, std::string& why,
                                                uring_multishot ms, int* sys_error = nullptr) {
    int ignored = 0;
    int& err_out = sys_error != nullptr ? *sys_error : ignored;
    err_out = 0;
    std::unique_ptr<uring_poller> p(new uring_poller);
    p->efd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (p->efd_ < 0) {
      err_out = errno;
      why = errno_text(err_out, "eventfd");
      return nullptr;
    }
    for (unsigned i = 0; i < procs; ++i) {
      auto r = std::make_unique<ring>();
      io_uring_params params{};
      params.flags = IORING_SETUP_CQSIZE | IORING_SETUP_SUBMIT_ALL | IORING_SETUP_CLAMP;
      params.cq_entries = cq_entries;
      int err = io_uring_queue_init_params(sq_entries, &r->r, &params);
      if (err == -EINVAL) {  // SUBMIT_ALL is 5.18+: try without
        params = io_uring_params{};
        params.flags = IORING_SETUP_CQSIZE | IORING_SETUP_CLAMP;
        params.cq_entries = cq_entries;
        err = io_uring_queue_init_params(sq_entries, &r->r, &params);
      }
      if (err < 0) {
        err_out = -err;
        why = errno_text(-err, "io_uring_setup");
        return nullptr;
      }
      r->inited = true;
      if (!(params.features & IORING_FEAT_NODROP)) {
        p->rings_.push_back(std::move(r));
        why = "the kernel lacks IORING_FEAT_NODROP (needs Linux 5.5+)";
        return nullptr;
      }
      if (int e = io_uring_register_eventfd(&r->r, p->efd_); e < 0) {
        p->rings_.push_back(std::move(r));
        err_out = -e;
        why = errno_text(-e, "io_uring_register_eventfd");
        return nullptr;
      }
      p->rings_.push_back(std::move(r));
    }
    p->choose_multishot(ms);
    // Sync cancel (Linux 6.0+) is how deadlines and close() cancel: probe
    // it with a key that matches nothing.
    io_uring_sync_cancel_reg reg{};
    reg.addr = 1;
    reg.fd = -1;
    reg.timeout.tv_sec = -1;
    reg.timeout.tv_nsec = -1;
    if (int e = io_uring_register_sync_cancel(&p->rings_[0]->r, &reg); e != -ENOENT) {
      if (e != -EINVAL) err_out = -e;
      why = e == -EINVAL ? std::string("the kernel lacks IORING_REGISTER_SYNC_CANCEL (needs Linux 6.0+)")
                         : errno_text(-e, "io_uring_register_sync_cancel");
      return nullptr;
    }
    return p;
  }

  ~uring_poller() override {
    // Connections accepted for listeners that were never closed (the
    // objects must die inside the runtime; this is the last line).
    mshots_.for_each([](mshot& ms) {
      if (ms.kind == op_kind::accept)
        for (const ms_item& it : ms.q) release_item(op_kind::accept, it);
    });
    for (auto& r : rings_) {
      if (r->inited) io_uring_queue_exit(&r->r);
      if (r->br != nullptr) ::munmap(r->br, recv_bufs * sizeof(io_uring_buf));
      if (r->bufs != nullptr) ::munmap(r->bufs, std::size_t{recv_bufs} * recv_buf_size);
    }
    if (efd_ >= 0) ::close(efd_);
  }

  bool wants_reaping() const noexcept override {
    return armed_accepts_.load(std::memory_order_relaxed) != 0;
  }
  const char* name() const noexcept override { return "io_uring"; }
  bool wants_nonblocking() const noexcept override { return false; }

  std::int64_t io(fd_desc* d, const io_req& r, std::int64_t deadline) override {
    if (!op_begin(d)) return -EBADF;
    if (deadline != 0 && deadline <= nanotime()) {
      op_end(d);
      return -ETIMEDOUT;
    }
    if (r.kind == op_kind::accept ? ms_accept_ : r.kind == op_kind::recv && (ms_recv_ || ms_poll_)) {
      if (const std::int64_t n = ms_io(d, r, deadline); n != use_oneshot) {
        op_end(d);
        return n;
      }
    }
    return oneshot_io(d, r, deadline);
  }

  // Which request kinds use multishot (tests and benchmarks compare).
  bool multishot_accept() const noexcept { return ms_accept_; }
  bool multishot_recv() const noexcept { return ms_recv_; }
  bool multishot_poll() const noexcept { return ms_poll_; }

 private:
  // One request, one CQE; d's op_begin is done and this ends it.
  std::int64_t oneshot_io(fd_desc* d, const io_req& r, std::int64_t deadline) {
    // Fast path for sockets: a send usually fits in the socket buffer and a
    // recv after a full one usually finds more data. One non-blocking
    // syscall then does it all, with no park, no SQE and no reaping (the
    // io_uring op would cost the same syscall plus two switches).
    if (const std::int64_t n = try_now(d, r); n != -EAGAIN) {
      if (r.kind == op_kind::recv) d->rready = n > 0 && static_cast<std::size_t>(n) == r.len;
      op_end(d);
      return n;
    }
    op o;
    o.self = this;
    o.d = d;
    o.req = &r;
    o.g = current_g();
    o.deadline = deadline;
    o.when = deadline;
    o.fn = &deadline_fire;
    // The CQE, the unlockf, and the timer if any (see the file comment).
    o.refs.store(deadline != 0 ? 3 : 2, std::memory_order_relaxed);
    o.g->sched->gopark(&submit_unlockf, &o, wait_reason(r.kind));
    op_end(d);
    std::int64_t res = o.res;
    // The recv hint (try_now): a full buffer suggests more is queued. Only
    // the reading G touches it (one reader per conn at a time).
    if (r.kind == op_kind::recv) d->rready = res > 0 && static_cast<std::size_t>(res) == r.len;
    if (res == -ECANCELED || res == -EINTR) {
      if (o.timed_out.load(std::memory_order_acquire)) res = -ETIMEDOUT;
      else if (d->closing.load(std::memory_order_acquire)) res = -EBADF;
    }
    return res;
  }


 public:
  void poll(std::int64_t timeout_ns, glist& out) override {
    for (auto& r : rings_) reap(*r, out);
    if (!out.empty() || timeout_ns == 0) return;
    pollfd pfd{efd_, POLLIN, 0};
    timespec ts{};
    if (timeout_ns > 0) {
      ts.tv_sec = static_cast<time_t>(timeout_ns / 1'000'000'000);
      ts.tv_nsec = static_cast<long>(timeout_ns % 1'000'000'000);
    }
    // A CQE posted after the reap above signals efd_: ppoll returns.
    ::ppoll(&pfd, 1, timeout_ns > 0 ? &ts : nullptr, nullptr);
    std::uint64_t v;
    while (::read(efd_, &v, sizeof v) > 0) {
    }
    for (auto& r : rings_) reap(*r, out);
  }

  void wakeup() noexcept override {
    const std::uint64_t one = 1;
    [[maybe_unused]] ssize_t n = ::write(efd_, &one, sizeof one);
  }

 protected:
  int register_fd(fd_desc*) override { return 0; }
  // Right before the fd is closed, every op on it having returned: a
  // multishot request still armed (its arming G saw `closing` too late,
  // or release() closes without close()) is cancelled, and what it
  // queued is given back: accepted fds closed, buffers returned. Results
  // that come after are dropped the same way by the reaper (`closed`).
  void unregister_fd(fd_desc* d) noexcept override {
    auto* ms = static_cast<mshot*>(d->ms.load(std::memory_order_acquire));
    if (ms == nullptr) return;
    ring* armed_on = nullptr;
    {
      std::lock_guard<spinlock> lk(ms->mu);
      ms->closed = true;
      if (ms->armed) armed_on = ms->rg;
    }
    if (armed_on != nullptr) cancel_user_data(*armed_on, ms_tag(ms));
    drain(ms);
  }
  void cancel_fd(fd_desc* d) noexcept override {
    io_uring_sync_cancel_reg reg{};
    reg.fd = d->fd;
    reg.flags = IORING_ASYNC_CANCEL_FD | IORING_ASYNC_CANCEL_ALL;
    reg.timeout.tv_sec = -1;
    reg.timeout.tv_nsec = -1;
    // A multishot request ends too; its last CQE wakes the Gs parked on
    // its queue (they see `closing`), through the reaper like any op's.
    for (auto& r : rings_) io_uring_register_sync_cancel(&r->r, &reg);
  }
  // d is recycled: its mshot goes back to the pool, or, while its request
  // is still in flight, once the reaper sees the request's last CQE.
  void forget_fd(fd_desc* d) noexcept override {
    auto* ms = static_cast<mshot*>(d->ms.exchange(nullptr, std::memory_order_acq_rel));
    if (ms == nullptr) return;
    bool free_now;
    {
      std::lock_guard<spinlock> lk(ms->mu);
      ms->orphan = true;
      free_now = !ms->armed;
    }
    if (free_now) ms_free(ms);
  }

 private:
  struct ring {
    io_uring r{};
    bool inited = false;
    std::atomic<bool> reaping{false};  // the CQ's try-lock (one reaper at a time)
    // The provided-buffer ring of multishot recv (buffer group 0 of this
    // ring); null when recv does not use multishot. Buffers go back from
    // whichever G consumed them, on any P: buf_mu orders the producers.
    io_uring_buf_ring* br = nullptr;
    std::byte* bufs = nullptr;  // recv_bufs * recv_buf_size
    spinlock buf_mu;
  };

  // One operation, on the parked G's stack. The timer_node base is its
  // deadline timer.
  struct op : timer_node {
    uring_poller* self = nullptr;
    fd_desc* d = nullptr;
    const io_req* req = nullptr;
    g_base* g = nullptr;
    ring* rg = nullptr;
    m_base* m = nullptr;  // the M that submitted it
    std::int64_t deadline = 0;
    std::int32_t res = 0;
    // store-release by the unlockf before submitting, load-acquire by the
    // reaper and the timer: the kernel orders them, TSan sees this pair.
    std::atomic<bool> published{false};
    std::atomic<bool> timed_out{false};
    std::atomic<int> refs{0};
  };

  // ---- multishot ----

  // One queued multishot result. accept: res = the new fd or -errno.
  // recv: res = bytes in buffer `bid` of ring `rg` (from `off` on), 0 =
  // EOF, or -errno.
  struct ms_item {
    std::int32_t res = 0;
    std::uint16_t bid = 0;
    bool has_buf = false;
    std::uint32_t off = 0;
    ring* rg = nullptr;
  };
  struct mshot;
  // A G parked on an mshot's queue, on its stack; the timer_node base is
  // its deadline. refs: the unlockf, the waker (whoever takes it off the
  // mshot's waiter list: reaper, close, or the deadline), and the deadline
  // timer; the last to drop one readies the G.
  struct ms_wait : timer_node {
    uring_poller* self = nullptr;
    mshot* ms = nullptr;
    fd_desc* d = nullptr;
    g_base* g = nullptr;
    ms_wait* next = nullptr;  // mshot's waiter list
    std::uint64_t seq = 0;    // poll: mshot::events when the G's recv said EAGAIN
    std::int64_t deadline = 0;
    std::atomic<bool> timed_out{false};
    std::atomic<int> refs{0};
  };
  // The multishot state of one fd (fd_desc::ms). Poller-owned and
  // recycled: a CQE may name it after its fd is released, until the
  // request's last CQE (no IORING_CQE_F_MORE) is reaped.
  struct alignas(16) mshot {
    // Bumped (release) by each arm before its submission, load-acquired
    // first by the reaper: the kernel orders the two, but TSan cannot see
    // that (the op record's `published` does the same). A whole 8-byte
    // word, so no plain write shares its shadow cell.
    alignas(8) std::atomic<std::uint64_t> published{0};
    spinlock mu;  // guards everything below
    op_kind kind = op_kind::recv;
    bool poll = false;    // recv by readiness: a multishot POLL_ADD, no queue
    std::uint64_t events = 0;  // poll: CQEs so far (a G parks only if none came since its EAGAIN)
    bool armed = false;   // a request is in flight (until its last CQE is reaped)
    bool closed = false;  // the fd is closed: results are dropped
    bool orphan = false;  // the desc was recycled: free at the last CQE
    bool one_shot_next = false;  // ENOBUFS ended it: next read uses a one-shot recv
    bool throttled = false;      // the queue is full: cancelled, waiting for its last CQE
    ring* rg = nullptr;   // where the request is armed
    std::deque<ms_item> q;
    // Gs parked on an empty queue (several may accept on one listener),
    // FIFO through ms_wait::next.
    ms_wait* whead = nullptr;
    ms_wait* wtail = nullptr;
    mshot* next_free = nullptr;

    void wpush(ms_wait* w) noexcept {
      w->next = nullptr;
      if (wtail != nullptr) wtail->next = w;
      else whead = w;
      wtail = w;
    }
    ms_wait* wpop() noexcept {
      ms_wait* w = whead;
      if (w != nullptr) {
        whead = w->next;
        if (whead == nullptr) wtail = nullptr;
      }
      return w;
    }
    bool wremove(ms_wait* w) noexcept {
      ms_wait* prev = nullptr;
      for (ms_wait* c = whead; c != nullptr; prev = c, c = c->next) {
        if (c != w) continue;
        (prev != nullptr ? prev->next : whead) = c->next;
        if (wtail == c) wtail = prev;
        return true;
      }
      return false;
    }
  };
  // user_data of a multishot request: the mshot with bit 0 set (an op is
  // at least 8-aligned, so bit 0 tells the two apart).
  static std::uint64_t ms_tag(mshot* ms) noexcept { return reinterpret_cast<std::uint64_t>(ms) | 1u; }

  // ms_io's "not multishot this time: do the one-shot request".
  static constexpr std::int64_t use_oneshot = INT64_MIN;

  // GORT_URING_MULTISHOT: a comma list of none, accept, recv, poll, all
  // (= accept,recv); accept,recv when unset.
  static uring_multishot multishot_from_env() {
    const char* env = std::getenv("GORT_URING_MULTISHOT");
    if (env == nullptr || *env == '\0') return uring_multishot::all;
    unsigned bits = 0;
    bool bad = false;
    std::string_view v(env);
    while (!v.empty()) {
      const std::size_t comma = v.find(',');
      const std::string_view tok = v.substr(0, comma);
      if (tok == "accept") bits |= 1u;
      else if (tok == "recv") bits |= 2u;
      else if (tok == "poll") bits |= 4u;
      else if (tok == "all") bits |= 3u;
      else if (tok != "none") bad = true;
      v = comma == std::string_view::npos ? std::string_view() : v.substr(comma + 1);
    }
    if (bad) {
      static std::once_flag once;
      std::call_once(once, [env] {
        std::fprintf(stderr,
                     "gort: ignoring GORT_URING_MULTISHOT=%s (want a comma list of none, accept, recv, "
                     "poll, all)\n",
                     env);
      });
      return uring_multishot::all;
    }
    return static_cast<uring_multishot>(bits);
  }

  // Multishot as asked; recv into provided buffers only once every P ring
  // has its buffer ring.
  void choose_multishot(uring_multishot ms) {
    const unsigned bits = static_cast<unsigned>(ms);
    const bool acc = (bits & 1u) != 0;
    const bool pol = (bits & 4u) != 0;
    bool rcv = (bits & 2u) != 0 && !pol;
    if (rcv) {
      for (auto& r : rings_) {
        if (!setup_buf_ring(*r)) {
          rcv = false;  // an optimisation only: the one-shot recv works everywhere
          break;
        }
      }
    }
    ms_accept_ = acc;
    ms_recv_ = rcv;
    ms_poll_ = pol;
  }

  static bool setup_buf_ring(ring& rg) {
    const std::size_t ring_bytes = recv_bufs * sizeof(io_uring_buf);
    const std::size_t buf_bytes = std::size_t{recv_bufs} * recv_buf_size;
    void* br = ::mmap(nullptr, ring_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (br == MAP_FAILED) return false;
    void* bufs = ::mmap(nullptr, buf_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (bufs == MAP_FAILED) {
      ::munmap(br, ring_bytes);
      return false;
    }
    rg.br = static_cast<io_uring_buf_ring*>(br);
    rg.bufs = static_cast<std::byte*>(bufs);
    io_uring_buf_ring_init(rg.br);
    io_uring_buf_reg reg{};
    reg.ring_addr = reinterpret_cast<std::uint64_t>(br);
    reg.ring_entries = recv_bufs;
    reg.bgid = 0;
    if (io_uring_register_buf_ring(&rg.r, &reg, 0) < 0) return false;  // the destructor unmaps
    const int mask = io_uring_buf_ring_mask(recv_bufs);
    for (unsigned i = 0; i < recv_bufs; ++i)
      io_uring_buf_ring_add(rg.br, rg.bufs + std::size_t{i} * recv_buf_size, recv_buf_size,
                            static_cast<unsigned short>(i), mask, static_cast<int>(i));
    io_uring_buf_ring_advance(rg.br, static_cast<int>(recv_bufs));
    return true;
  }

  // Any thread: buffer bid of rg goes back to the kernel.
  static void put_buf(ring& rg, std::uint16_t bid) noexcept {
    std::lock_guard<spinlock> lk(rg.buf_mu);
    io_uring_buf_ring_add(rg.br, rg.bufs + std::size_t{bid} * recv_buf_size, recv_buf_size, bid,
                          io_uring_buf_ring_mask(recv_bufs), 0);
    io_uring_buf_ring_advance(rg.br, 1);
  }

  // d's mshot, made on first use and published under d->mu (two Gs may
  // accept on one listener at once).
  mshot* ms_get(fd_desc* d, op_kind kind) {
    if (void* p = d->ms.load(std::memory_order_acquire)) return static_cast<mshot*>(p);
    mshot* ms = mshots_.get();
    ms->kind = kind;
    ms->poll = kind == op_kind::recv && ms_poll_;
    ms->events = 0;
    ms->armed = ms->closed = ms->orphan = ms->one_shot_next = ms->throttled = false;
    ms->rg = nullptr;
    ms->whead = ms->wtail = nullptr;
    ms->next_free = nullptr;
    void* won;
    {
      std::lock_guard<spinlock> lk(d->mu);
      won = d->ms.load(std::memory_order_relaxed);
      if (won == nullptr) d->ms.store(ms, std::memory_order_release);
    }
    if (won == nullptr) return ms;
    ms_free(ms);  // another G published one first
    return static_cast<mshot*>(won);
  }
  void ms_free(mshot* ms) noexcept { mshots_.put(ms); }

  // The fd is closed: give back what the queue holds.
  void drain(mshot* ms) noexcept {
    std::deque<ms_item> q;
    {
      std::lock_guard<spinlock> lk(ms->mu);
      q.swap(ms->q);
    }
    for (const ms_item& it : q) release_item(ms->kind, it);
  }
  static void release_item(op_kind kind, const ms_item& it) noexcept {
    if (it.has_buf) put_buf(*it.rg, it.bid);
    else if (kind == op_kind::accept && it.res >= 0) ::close(it.res);
  }

  // Takes w (off its mshot's list) as its waker; its G goes on out when
  // that was the last ref.
  void drop_waker(ms_wait* w, glist& out) noexcept {
    nwait_.fetch_sub(1, std::memory_order_seq_cst);
    g_base* gp = w->g;
    int dec = 1;
    if (w->deadline != 0 && gp->sched->del_timer(w)) dec = 2;  // else it is firing
    if (w->refs.fetch_sub(dec, std::memory_order_acq_rel) == dec) out.push(gp);
  }
  // The same from a G: its G is readied at once.
  void wake_now(ms_wait* w) noexcept {
    glist l;
    drop_waker(w, l);
    while (g_base* gp = l.pop()) gp->sched->goready(gp);
  }

  // The G side of a multishot accept / recv. op_begin is done by io(),
  // which ends it, unless this returns use_oneshot: then the one-shot
  // request (oneshot_io) takes the op over.
  std::int64_t ms_io(fd_desc* d, const io_req& r, std::int64_t deadline) {
    mshot* ms = ms_get(d, r.kind);
    for (;;) {
      bool arm;
      ms_wait* next;
      std::uint64_t seq = 0;
      if (ms->poll) {
        // Readiness mode: the G reads; the request only says when to try
        // again. seq first, so an event after the EAGAIN is never missed.
        {
          std::lock_guard<spinlock> lk(ms->mu);
          seq = ms->events;
        }
        if (d->closing.load(std::memory_order_seq_cst)) return -EBADF;
        const ssize_t n = ::recv(d->fd, r.buf, r.len, MSG_DONTWAIT);
        if (n >= 0) return n;
        if (errno == EINTR) continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) return -errno;
      }
      {
        std::unique_lock<spinlock> lk(ms->mu);
        if (d->closing.load(std::memory_order_seq_cst)) return -EBADF;
        if (ms->poll) {
          if (ms->events != seq) continue;  // readable since the EAGAIN: try again
        } else if (!ms->q.empty()) {
          const std::int64_t n = r.kind == op_kind::accept ? take_accept(ms) : take_recv(ms, r);
          // More is queued and another G waits (several acceptors, or
          // two readers): it gets the wakeup no new result will bring.
          next = ms->q.empty() ? nullptr : ms->wpop();
          if (next == nullptr) return n;
          lk.unlock();
          wake_now(next);
          return n;
        }
        arm = !ms->armed;
        if (arm) {
          // Ended by ENOBUFS (the buffers of the ring it was armed on are
          // all queued somewhere): one plain recv into the caller's
          // buffer, then multishot again.
          if (std::exchange(ms->one_shot_next, false)) return use_oneshot;
          ms->armed = true;
          if (ms->kind == op_kind::accept) armed_accepts_.fetch_add(1, std::memory_order_relaxed);
        }
      }
      if (arm) {
        ms_arm(ms, d);
        continue;  // results may be queued already
      }
      ms_wait w;
      w.self = this;
      w.ms = ms;
      w.d = d;
      w.g = current_g();
      w.seq = seq;
      w.deadline = deadline;
      w.when = deadline;
      w.fn = &ms_deadline_fire;
      w.refs.store(deadline != 0 ? 3 : 2, std::memory_order_relaxed);
      if (deadline != 0) w.g->sched->add_timer(&w);  // may fire at once
      w.g->sched->gopark(&ms_park, &w, wait_reason(r.kind));
      if (w.timed_out.load(std::memory_order_acquire)) {
        if (d->closing.load(std::memory_order_seq_cst)) return -EBADF;
        // A result may have woken us as the deadline passed: it stays
        // queued, and another parked G gets the wakeup we do not use.
        pass_on(ms);
        return -ETIMEDOUT;
      }
    }
  }

  // G: wakes one parked G if results are queued (see ms_io's deadline).
  void pass_on(mshot* ms) noexcept {
    ms_wait* w = nullptr;
    {
      std::lock_guard<spinlock> lk(ms->mu);
      if (!ms->q.empty()) w = ms->wpop();
    }
    if (w != nullptr) wake_now(w);
  }

  // ms->mu held, queue not empty.
  static std::int64_t take_accept(mshot* ms) noexcept {
    const std::int32_t res = ms->q.front().res;
    ms->q.pop_front();
    return res;
  }
  // ms->mu held, queue not empty: copies as much as fits; an EOF stays
  // queued (every later read sees it), an error is reported once.
  std::int64_t take_recv(mshot* ms, const io_req& r) noexcept {
    auto* dst = static_cast<std::byte*>(r.buf);
    std::size_t n = 0;
    while (n < r.len && !ms->q.empty()) {
      ms_item& it = ms->q.front();
      if (!it.has_buf) {
        if (n != 0) break;  // data first; EOF / the error next time
        if (it.res == 0) return 0;
        const std::int32_t e = it.res;
        ms->q.pop_front();
        return e;
      }
      const std::size_t avail = static_cast<std::size_t>(it.res) - it.off;
      const std::size_t k = avail < r.len - n ? avail : r.len - n;
      std::memcpy(dst + n, it.rg->bufs + std::size_t{it.bid} * recv_buf_size + it.off, k);
      n += k;
      if (k == avail) {
        put_buf(*it.rg, it.bid);
        ms->q.pop_front();
      } else {
        it.off += static_cast<std::uint32_t>(k);
      }
    }
    return static_cast<std::int64_t>(n);
  }

  // Submits ms's request on this M's P's ring (the caller set ms->armed).
  // noinline: reads tls_m afresh (the G may have moved since its last park).
  [[gnu::noinline]] void ms_arm(mshot* ms, fd_desc* d) {
    m_base* mp = tls_m;
    GORT_ASSERT(mp != nullptr && mp->pid >= 0, "uring multishot: the M holds no P");
    ring& rg = *rings_[static_cast<std::size_t>(mp->pid)];
    {
      std::lock_guard<spinlock> lk(ms->mu);
      ms->rg = &rg;
    }
    io_uring_sqe* sqe = io_uring_get_sqe(&rg.r);
    while (sqe == nullptr) {
      submit(rg);
      sqe = io_uring_get_sqe(&rg.r);
    }
    if (ms->kind == op_kind::accept) {
      io_uring_prep_multishot_accept(sqe, d->fd, nullptr, nullptr, SOCK_CLOEXEC);
    } else if (ms->poll) {
      io_uring_prep_poll_multishot(sqe, d->fd, POLLIN | POLLRDHUP);
    } else {
      io_uring_prep_recv_multishot(sqe, d->fd, nullptr, 0, 0);
      sqe->flags |= IOSQE_BUFFER_SELECT;
      sqe->buf_group = 0;
    }
    io_uring_sqe_set_data64(sqe, ms_tag(ms));
    ms->published.fetch_add(1, std::memory_order_release);
    submit(rg);
    // Pairs with close_fd's seq_cst store: either its cancel came after
    // this submission, or we see `closing` here and cancel ourselves.
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (d->closing.load(std::memory_order_seq_cst)) cancel_user_data(rg, ms_tag(ms));
  }

  // The park's unlockf: parks only while the queue is empty, the request
  // armed, the fd open and the deadline not passed.
  static bool ms_park(g_base*, void* arg) {
    auto* w = static_cast<ms_wait*>(arg);
    mshot* ms = w->ms;
    bool wait;
    {
      std::lock_guard<spinlock> lk(ms->mu);
      wait = ms->q.empty() && ms->armed && (!ms->poll || ms->events == w->seq) &&
             !w->d->closing.load(std::memory_order_seq_cst) &&
             !w->timed_out.load(std::memory_order_seq_cst);
      if (wait) {
        ms->wpush(w);
        w->self->nwait_.fetch_add(1, std::memory_order_seq_cst);
      }
    }
    int dec = 1;
    if (!wait) {  // nobody will take w off the queue: drop the waker's ref too
      dec = 2;
      if (w->deadline != 0 && w->g->sched->del_timer(w)) dec = 3;
    }
    return w->refs.fetch_sub(dec, std::memory_order_acq_rel) != dec;
  }

  // Timer fn (any M): the deadline of a G parked on a multishot queue.
  static void ms_deadline_fire(timer_node* t) {
    auto* w = static_cast<ms_wait*>(t);
    w->timed_out.store(true, std::memory_order_seq_cst);
    bool took;
    {
      std::lock_guard<spinlock> lk(w->ms->mu);
      took = w->ms->wremove(w);
    }
    if (took) w->self->nwait_.fetch_sub(1, std::memory_order_seq_cst);
    const int dec = took ? 2 : 1;
    g_base* gp = w->g;
    if (w->refs.fetch_sub(dec, std::memory_order_acq_rel) == dec) gp->sched->goready(gp);
  }

  // Reaper: one CQE of a multishot request.
  void complete_ms(mshot* ms, const io_uring_cqe* cqe, ring& rg, glist& out) {
    (void)ms->published.load(std::memory_order_acquire);  // see mshot::published
    const bool more = (cqe->flags & IORING_CQE_F_MORE) != 0;
    ms_item it;
    it.res = cqe->res;
    if (cqe->flags & IORING_CQE_F_BUFFER) {
      const auto bid = static_cast<std::uint16_t>(cqe->flags >> IORING_CQE_BUFFER_SHIFT);
      if (it.res > 0) {
        it.has_buf = true;
        it.bid = bid;
        it.rg = &rg;
      } else {
        put_buf(rg, bid);  // a buffer with no data (some kernels' EOF / error)
      }
    }
    ms_wait* ws = nullptr;  // the Gs to wake, through next
    bool free_now = false, drop = false, throttle = false;
    op_kind kind;
    {
      std::lock_guard<spinlock> lk(ms->mu);
      kind = ms->kind;
      if (ms->poll) {
        // Readiness (or the request's end): every parked reader tries.
        ++ms->events;
        ws = std::exchange(ms->whead, nullptr);
        ms->wtail = nullptr;
        if (!more) {
          ms->armed = false;
          free_now = ms->orphan;
        }
      } else {
        // A result for the reader, or only the end of the request? (An
        // error such as EINVAL, accept on a socket that stopped listening,
        // is the reader's: the kernel floor, 6.0, has both requests.)
        const bool keep = kind == op_kind::accept
            ? it.res != -ECANCELED
            : it.has_buf || (it.res != -ECANCELED && it.res != -ENOBUFS);
        if (keep) {
          if (ms->closed) drop = true;
          else ms->q.push_back(it);
        }
        // Bounded: a listener nobody accepts on leaves connections in the
        // kernel's backlog, a connection nobody reads keeps at most a
        // quarter of its ring's buffers; the request is cancelled here and
        // re-armed once the queue is taken.
        if (more && !ms->closed && !ms->throttled &&
            ms->q.size() >= (kind == op_kind::accept ? accept_queue_max : recv_queue_max)) {
          ms->throttled = true;
          throttle = true;
        }
        if (!more) {
          // Ended: every parked G re-arms or returns.
          ms->armed = false;
          if (kind == op_kind::accept) armed_accepts_.fetch_sub(1, std::memory_order_relaxed);
          ms->throttled = false;
          if (it.res == -ENOBUFS) ms->one_shot_next = true;
          free_now = ms->orphan;
          ws = std::exchange(ms->whead, nullptr);
          ms->wtail = nullptr;
        } else if (keep && !drop) {
          ws = ms->wpop();  // one result, one G
          if (ws != nullptr) ws->next = nullptr;
        }
      }
    }
    if (throttle) cancel_user_data(rg, ms_tag(ms));  // its last CQE ends it
    if (drop) release_item(kind, it);
    while (ws != nullptr) {
      ms_wait* next = ws->next;
      drop_waker(ws, out);
      ws = next;
    }
    if (free_now) ms_free(ms);
  }

  static void cancel_user_data(ring& rg, std::uint64_t ud) noexcept {
    io_uring_sync_cancel_reg reg{};
    reg.addr = ud;
    reg.fd = -1;
    reg.timeout.tv_sec = -1;
    reg.timeout.tv_nsec = -1;
    io_uring_register_sync_cancel(&rg.r, &reg);  // -ENOENT: it ended already
  }

  // Which requests are multishot: fixed when the poller is made (recv and
  // poll never both).
  std::atomic<int> armed_accepts_{0};  // multishot accepts armed (ms->armed, accept)
  bool ms_accept_ = false;
  bool ms_recv_ = false;
  bool ms_poll_ = false;
  recycling_pool<mshot> mshots_;

  uring_poller() = default;

  static std::string errno_text(int e, const char* what) {
    const char* name = e == ENOSYS ? "ENOSYS" : e == EPERM ? "EPERM" : e == ENOMEM ? "ENOMEM"
                     : e == EINVAL ? "EINVAL" : e == EMFILE ? "EMFILE" : e == EACCES ? "EACCES" : "error";
    return std::string(name) + ": " + what + ": " + std::strerror(e);
  }

  // The fast path (see io()): -EAGAIN means "go through the ring".
  static std::int64_t try_now(fd_desc* d, const io_req& r) noexcept {
    ssize_t n;
    switch (r.kind) {
      case op_kind::send:
        n = ::send(d->fd, r.buf, r.len, MSG_DONTWAIT | MSG_NOSIGNAL);
        break;
      case op_kind::sendmsg:
        n = ::sendmsg(d->fd, r.msg, MSG_DONTWAIT | MSG_NOSIGNAL);
        break;
      case op_kind::recv:
        // Only right after a recv that filled its buffer: otherwise the
        // socket is usually empty and the attempt is a wasted syscall.
        if (!d->rready) return -EAGAIN;
        n = ::recv(d->fd, r.buf, r.len, MSG_DONTWAIT);
        break;
      default:
        return -EAGAIN;
    }
    if (n >= 0) return n;
    const int e = errno;
    return e == EWOULDBLOCK ? -EAGAIN : -e;
  }

  static const char* wait_reason(op_kind k) noexcept {
    switch (k) {
      case op_kind::read: case op_kind::recv: case op_kind::recvmsg: return "IO wait (read)";
      case op_kind::send: case op_kind::sendmsg: return "IO wait (write)";
      case op_kind::accept: return "IO wait (accept)";
      case op_kind::connect: return "IO wait (connect)";
      case op_kind::pread: case op_kind::pwrite: case op_kind::fsync: return "IO wait (file)";
    }
    return "IO wait";
  }

  static void prep(io_uring_sqe* sqe, const io_req& r, int fd) noexcept {
    const unsigned len = r.len > (1u << 30) ? (1u << 30) : static_cast<unsigned>(r.len);
    switch (r.kind) {
      case op_kind::read: io_uring_prep_read(sqe, fd, r.buf, len, static_cast<std::uint64_t>(-1)); break;
      case op_kind::recv: io_uring_prep_recv(sqe, fd, r.buf, len, 0); break;
      case op_kind::send: io_uring_prep_send(sqe, fd, r.buf, len, MSG_NOSIGNAL); break;
      case op_kind::accept: io_uring_prep_accept(sqe, fd, r.addr, r.addrlen, SOCK_CLOEXEC); break;
      case op_kind::connect: io_uring_prep_connect(sqe, fd, r.addr, r.addrlen_in); break;
      case op_kind::recvmsg: io_uring_prep_recvmsg(sqe, fd, r.msg, 0); break;
      case op_kind::sendmsg: io_uring_prep_sendmsg(sqe, fd, r.msg, MSG_NOSIGNAL); break;
      case op_kind::pread:
        io_uring_prep_read(sqe, fd, r.buf, len, static_cast<std::uint64_t>(r.off));
        break;
      case op_kind::pwrite:
        io_uring_prep_write(sqe, fd, r.buf, len, static_cast<std::uint64_t>(r.off));
        break;
      case op_kind::fsync: io_uring_prep_fsync(sqe, fd, 0); break;
    }
  }

  // The park's unlockf: the G is parked; submit its SQE on this M's P's
  // ring. Returns false (the G runs on) when everything it waits for
  // already happened.
  static bool submit_unlockf(g_base*, void* arg) {
    auto* o = static_cast<op*>(arg);
    uring_poller* self = o->self;
    m_base* mp = tls_m;
    GORT_ASSERT(mp != nullptr && mp->pid >= 0, "uring submit: the M holds no P");
    ring& rg = *self->rings_[static_cast<std::size_t>(mp->pid)];
    io_uring_sqe* sqe = io_uring_get_sqe(&rg.r);
    while (sqe == nullptr) {  // SQ full (only if submits failed): flush
      self->submit(rg);
      sqe = io_uring_get_sqe(&rg.r);
    }
    prep(sqe, *o->req, o->d->fd);
    io_uring_sqe_set_data(sqe, o);
    o->rg = &rg;
    o->m = mp;
    mp->io_submitted();
    self->nwait_.fetch_add(1, std::memory_order_seq_cst);
    if (o->deadline != 0) o->g->sched->add_timer(o);  // may fire at once
    o->published.store(true, std::memory_order_release);
    self->submit(rg);
    // Pairs with the seq_cst stores in deadline_fire and close_fd: either
    // they cancel after the submission, or we see their flag here.
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (o->timed_out.load(std::memory_order_seq_cst) ||
        o->d->closing.load(std::memory_order_seq_cst))
      cancel_op(rg, o);
    return o->refs.fetch_sub(1, std::memory_order_acq_rel) != 1;
  }

  // The SQ's holder. Submits everything queued, whatever it takes.
  void submit(ring& rg) {
    for (;;) {
      const int ret = io_uring_submit(&rg.r);
      if (ret >= 0) return;
      if (ret == -EINTR) continue;
      if (ret == -EAGAIN || ret == -EBUSY) {
        // CQ backlog (or kernel memory): make room by reaping, then retry.
        glist l;
        reap(rg, l);
        while (g_base* gp = l.pop()) gp->sched->goready(gp);
        ::sched_yield();
        continue;
      }
      GORT_FATAL("io_uring_submit: %s (errno %d); gort cannot continue without its netpoller "
                 "(GORT_POLLER=epoll selects the epoll backend)",
                 std::strerror(-ret), -ret);
    }
  }

  static void cancel_op(ring& rg, op* o) noexcept {
    io_uring_sync_cancel_reg reg{};
    reg.addr = reinterpret_cast<std::uint64_t>(o);
    reg.fd = -1;
    reg.timeout.tv_sec = -1;
    reg.timeout.tv_nsec = -1;
    io_uring_register_sync_cancel(&rg.r, &reg);  // -ENOENT: done or not yet submitted
  }

  // Timer fn (any M): the deadline passed.
  static void deadline_fire(timer_node* t) {
    auto* o = static_cast<op*>(t);
    o->timed_out.store(true, std::memory_order_seq_cst);
    if (o->published.load(std::memory_order_acquire)) cancel_op(*o->rg, o);
    g_base* gp = o->g;
    if (o->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) gp->sched->goready(gp);
  }

  // One reaper per ring at a time; a caller that finds the ring taken
  // returns at once and leaves what it would have found to the holder.
  // So the holder looks again after letting go: a CQE posted after its
  // last peek would otherwise stay in the ring with its eventfd signal
  // already drained by the sleeper (whose own reap found the ring taken),
  // and its G would never be woken (seen under TSan: net_test hung with
  // every M idle and the sleeper in ppoll).
  void reap(ring& rg, glist& out) {
    for (;;) {
      // exchange-acquire / store-release: the CQ head is ours in between.
      if (rg.reaping.load(std::memory_order_relaxed) ||
          rg.reaping.exchange(true, std::memory_order_acquire))
        return;
      io_uring_cqe* cqes[64];
      for (;;) {
        const unsigned n = io_uring_peek_batch_cqe(&rg.r, cqes, 64);
        if (n == 0) break;
        for (unsigned i = 0; i < n; ++i) {
          const std::uint64_t ud = io_uring_cqe_get_data64(cqes[i]);
          if (ud & 1u) complete_ms(reinterpret_cast<mshot*>(ud & ~std::uint64_t{1}), cqes[i], rg, out);
          else complete(reinterpret_cast<op*>(ud), cqes[i]->res, out);
        }
        io_uring_cq_advance(&rg.r, n);
      }
      const unsigned head = *rg.r.cq.khead;  // last written by us, while we hold the flag
      rg.reaping.store(false, std::memory_order_release);
      // StoreLoad: the release above, then the CQ tail (the kernel's; the
      // head may be the next holder's by now, so compare with ours). A
      // reaper that found the flag set did so before our store; whatever
      // was posted before this load we see now, and whatever comes after
      // it finds the flag clear (and signals the eventfd).
      std::atomic_thread_fence(std::memory_order_seq_cst);
      if (io_uring_smp_load_acquire(rg.r.cq.ktail) == head) return;
    }
  }

  void complete(op* o, std::int32_t res, glist& out) {
    if (o == nullptr) return;
    if (!o->published.load(std::memory_order_acquire))
      GORT_FATAL("io_uring: completion for an op that was never submitted");
    o->res = res;
    g_base* gp = o->g;
    m_base* mp = o->m;
    int dec = 1;
    if (o->deadline != 0 && gp->sched->del_timer(o)) dec = 2;  // else it is firing
    nwait_.fetch_sub(1, std::memory_order_seq_cst);
    mp->io_done();
    if (o->refs.fetch_sub(dec, std::memory_order_acq_rel) == dec) out.push(gp);
  }

  int efd_ = -1;
  std::vector<std::unique_ptr<ring>> rings_;  // one per P, fixed
};

}  // namespace detail
GORT_END_NAMESPACE
