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
#pragma once

#include <liburing.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "config.hpp"
#include "netpoll.hpp"
#include "note.hpp"
#include "runtime2.hpp"

GORT_BEGIN_NAMESPACE
namespace detail {

class uring_poller final : public netpoller_base {
 public:
  static constexpr unsigned sq_entries = 256;
  static constexpr unsigned cq_entries = 4 * sq_entries;

  // Returns null and says why (e.g. "ENOSYS: io_uring_setup: Function not
  // implemented") when io_uring cannot be used here.
  static std::unique_ptr<netpoller_base> create(unsigned procs, std::string& why) {
    std::unique_ptr<uring_poller> p(new uring_poller);
    p->efd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (p->efd_ < 0) {
      why = errno_text(errno, "eventfd");
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
        why = errno_text(-e, "io_uring_register_eventfd");
        return nullptr;
      }
      p->rings_.push_back(std::move(r));
    }
    // Sync cancel (Linux 6.0+) is how deadlines and close() cancel: probe
    // it with a key that matches nothing.
    io_uring_sync_cancel_reg reg{};
    reg.addr = 1;
    reg.fd = -1;
    reg.timeout.tv_sec = -1;
    reg.timeout.tv_nsec = -1;
    if (int e = io_uring_register_sync_cancel(&p->rings_[0]->r, &reg); e != -ENOENT) {
      why = e == -EINVAL ? std::string("the kernel lacks IORING_REGISTER_SYNC_CANCEL (needs Linux 6.0+)")
                         : errno_text(-e, "io_uring_register_sync_cancel");
      return nullptr;
    }
    return p;
  }

  ~uring_poller() override {
    for (auto& r : rings_)
      if (r->inited) io_uring_queue_exit(&r->r);
    if (efd_ >= 0) ::close(efd_);
  }

  const char* name() const noexcept override { return "io_uring"; }
  bool wants_nonblocking() const noexcept override { return false; }

  std::int64_t io(fd_desc* d, const io_req& r, std::int64_t deadline) override {
    if (!op_begin(d)) return -EBADF;
    if (deadline != 0 && deadline <= nanotime()) {
      op_end(d);
      return -ETIMEDOUT;
    }
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
  void unregister_fd(fd_desc*) noexcept override {}
  void cancel_fd(fd_desc* d) noexcept override {
    io_uring_sync_cancel_reg reg{};
    reg.fd = d->fd;
    reg.flags = IORING_ASYNC_CANCEL_FD | IORING_ASYNC_CANCEL_ALL;
    reg.timeout.tv_sec = -1;
    reg.timeout.tv_nsec = -1;
    for (auto& r : rings_) io_uring_register_sync_cancel(&r->r, &reg);
  }

 private:
  struct ring {
    io_uring r{};
    bool inited = false;
    std::atomic<bool> reaping{false};  // the CQ's try-lock (one reaper at a time)
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

  void reap(ring& rg, glist& out) {
    // exchange-acquire / store-release: the CQ head is ours in between.
    if (rg.reaping.load(std::memory_order_relaxed) ||
        rg.reaping.exchange(true, std::memory_order_acquire))
      return;
    io_uring_cqe* cqes[64];
    for (;;) {
      const unsigned n = io_uring_peek_batch_cqe(&rg.r, cqes, 64);
      if (n == 0) break;
      for (unsigned i = 0; i < n; ++i)
        complete(reinterpret_cast<op*>(io_uring_cqe_get_data(cqes[i])), cqes[i]->res, out);
      io_uring_cq_advance(&rg.r, n);
    }
    rg.reaping.store(false, std::memory_order_release);
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
