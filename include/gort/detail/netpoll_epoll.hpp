// gort/detail/netpoll_epoll.hpp: the epoll netpoller (Go's netpoll_epoll.go
// and the pollDesc protocol of netpoll.go), the fallback when io_uring is
// missing or refused, and GORT_POLLER=epoll.
//
// Sockets are non-blocking and registered once, edge-triggered, for both
// directions. A G tries the syscall; on EAGAIN it parks in the fd's read or
// write slot. An event takes the op from the slot and readies its G, or,
// if nobody waits, leaves a `ready` mark that the next park consumes
// instead of sleeping (an edge that came between the EAGAIN and the park
// is never lost). All of it under the fd's spinlock.
//
// op.refs counts who still touches the op record on the parked G's stack:
// the waker that takes it from the slot (an event, close, or the deadline)
// and the deadline timer when armed. The last one readies the G.
//
// Regular files cannot be polled: their reads and writes run as blocking
// calls (entersyscall / exitsyscall, so the P goes on without this M).
#pragma once

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <climits>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>

#include "config.hpp"
#include "netpoll.hpp"
#include "runtime2.hpp"

GORT_BEGIN_NAMESPACE
namespace detail {

class epoll_poller final : public netpoller_base {
 public:
  // pwait2 false: use epoll_pwait even where epoll_pwait2 works (tests of
  // the path kernels before 5.11 take).
  static std::unique_ptr<netpoller_base> create(std::string& why, bool pwait2 = true) {
    std::unique_ptr<epoll_poller> p(new epoll_poller);
    p->epfd_ = ::epoll_create1(EPOLL_CLOEXEC);
    p->efd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (p->epfd_ < 0 || p->efd_ < 0) {
      why = std::string("epoll/eventfd: ") + std::strerror(errno);
      return nullptr;
    }
    epoll_event ev{};
    ev.events = EPOLLIN;  // level-triggered: poll() drains it
    ev.data.ptr = &p->efd_;
    if (::epoll_ctl(p->epfd_, EPOLL_CTL_ADD, p->efd_, &ev) != 0) {
      why = std::string("epoll_ctl: ") + std::strerror(errno);
      return nullptr;
    }
    // epoll_pwait2 (nanosecond timeouts) is Linux 5.11+, and a seccomp
    // filter may refuse it: then epoll_pwait, timeouts rounded up to ms.
    epoll_event probe;
    const timespec zero{};
    p->pwait2_ = pwait2 && (::epoll_pwait2(p->epfd_, &probe, 1, &zero, nullptr) >= 0 ||
                            (errno != ENOSYS && errno != EPERM));
    return p;
  }

  ~epoll_poller() override {
    if (epfd_ >= 0) ::close(epfd_);
    if (efd_ >= 0) ::close(efd_);
  }

  const char* name() const noexcept override { return "epoll"; }
  bool wants_nonblocking() const noexcept override { return true; }

  std::int64_t io(fd_desc* d, const io_req& r, std::int64_t deadline) override {
    if (!op_begin(d)) return -EBADF;
    std::int64_t res;
    if (d->is_file) {
      res = file_io(d, r);
    } else {
      const bool wr = r.kind == op_kind::send || r.kind == op_kind::sendmsg ||
                      r.kind == op_kind::connect;
      bool connecting = false;
      for (;;) {
        if (d->closing.load(std::memory_order_acquire)) {
          res = -EBADF;
          break;
        }
        if (deadline != 0 && nanotime() >= deadline) {
          res = -ETIMEDOUT;
          break;
        }
        const std::uint32_t seq = (wr ? d->wseq : d->rseq).load(std::memory_order_acquire);
        res = connecting ? connect_result(d->fd) : attempt(d->fd, r);
        if (r.kind == op_kind::connect && !connecting && res == -EINPROGRESS) {
          connecting = true;
          res = -EAGAIN;
        }
        if (res == -EINTR) continue;
        if (res != -EAGAIN && res != -EWOULDBLOCK) break;
        wait(d, wr, deadline, r.kind, seq);
      }
    }
    op_end(d);
    return res;
  }

  void poll(std::int64_t timeout_ns, glist& out) override {
    epoll_event evs[128];
    int n;
    if (pwait2_) {
      timespec ts{};
      if (timeout_ns > 0) {
        ts.tv_sec = static_cast<time_t>(timeout_ns / 1'000'000'000);
        ts.tv_nsec = static_cast<long>(timeout_ns % 1'000'000'000);
      }
      n = ::epoll_pwait2(epfd_, evs, 128, timeout_ns < 0 ? nullptr : &ts, nullptr);
    } else {
      // Rounded up: woken before the timer is due, the sleeper would poll
      // again and again until it is.
      std::int64_t ms = timeout_ns < 0 ? -1 : 0;
      if (timeout_ns > 0) ms = std::min<std::int64_t>((timeout_ns + 999'999) / 1'000'000, INT_MAX);
      n = ::epoll_pwait(epfd_, evs, 128, static_cast<int>(ms), nullptr);
    }
    // EINTR (a signal): the caller looks again. Anything else is a bug
    // here, and returning would make every idle M spin.
    if (n < 0 && errno != EINTR) GORT_FATAL("netpoll: epoll_pwait: %s", std::strerror(errno));
    for (int i = 0; i < n; ++i) {
      if (evs[i].data.ptr == &efd_) {
        // Only a blocking poll consumes a wakeup (Go's netpoll reads the
        // break fd only when delay != 0): a non-blocking look by any M
        // (findrunnable, sysmon) must not eat the one meant for the M
        // asleep here, or that M sleeps on to its old deadline.
        if (timeout_ns != 0) {
          std::uint64_t v;
          while (::read(efd_, &v, sizeof v) > 0) {
          }
        }
        continue;
      }
      auto* d = static_cast<fd_desc*>(evs[i].data.ptr);
      (void)d->gen.load(std::memory_order_acquire);  // pairs with fd_alloc's release
      const std::uint32_t e = evs[i].events;
      const bool rd = e & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR);
      const bool wr = e & (EPOLLOUT | EPOLLHUP | EPOLLERR);
      op* ro = nullptr;
      op* wo = nullptr;
      {
        std::lock_guard<spinlock> lk(d->mu);
        if (rd) {
          d->rseq.fetch_add(1, std::memory_order_release);
          ro = static_cast<op*>(std::exchange(d->rwait, nullptr));
          if (ro == nullptr) d->rready = true;
        }
        if (wr) {
          d->wseq.fetch_add(1, std::memory_order_release);
          wo = static_cast<op*>(std::exchange(d->wwait, nullptr));
          if (wo == nullptr) d->wready = true;
        }
      }
      take_all(ro, &out);
      take_all(wo, &out);
    }
  }

  void wakeup() noexcept override {
    const std::uint64_t one = 1;
    [[maybe_unused]] ssize_t n = ::write(efd_, &one, sizeof one);
  }

 protected:
  int register_fd(fd_desc* d) override {
    if (d->is_file) return 0;
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
    ev.data.ptr = d;
    return ::epoll_ctl(epfd_, EPOLL_CTL_ADD, d->fd, &ev) == 0 ? 0 : -errno;
  }
  void unregister_fd(fd_desc* d) noexcept override {
    if (!d->is_file) ::epoll_ctl(epfd_, EPOLL_CTL_DEL, d->fd, nullptr);
  }
  void cancel_fd(fd_desc* d) noexcept override {
    op* ro;
    op* wo;
    {
      std::lock_guard<spinlock> lk(d->mu);
      ro = static_cast<op*>(std::exchange(d->rwait, nullptr));
      wo = static_cast<op*>(std::exchange(d->wwait, nullptr));
    }
    take_all(ro, nullptr);
    take_all(wo, nullptr);
  }

 private:
  struct op : timer_node {
    epoll_poller* self = nullptr;
    fd_desc* d = nullptr;
    g_base* g = nullptr;
    bool wr = false;
    bool armed = false;            // d->mu: the deadline timer was added
    std::uint32_t seq = 0;         // d's event count in this direction before the attempt
    op* next = nullptr;            // d->mu: the fd's list of ops waiting in this direction
    std::atomic<int> refs{0};
  };

  epoll_poller() = default;

  static std::int64_t attempt(int fd, const io_req& r) noexcept {
    ssize_t n = -1;
    switch (r.kind) {
      case op_kind::read: n = ::read(fd, r.buf, r.len); break;
      case op_kind::recv: n = ::recv(fd, r.buf, r.len, 0); break;
      case op_kind::send: n = ::send(fd, r.buf, r.len, MSG_NOSIGNAL); break;
      case op_kind::accept: n = ::accept4(fd, r.addr, r.addrlen, SOCK_CLOEXEC | SOCK_NONBLOCK); break;
      case op_kind::connect: n = ::connect(fd, r.addr, r.addrlen_in); break;
      case op_kind::recvmsg: n = ::recvmsg(fd, r.msg, 0); break;
      case op_kind::sendmsg: n = ::sendmsg(fd, r.msg, MSG_NOSIGNAL); break;
      default: return -EINVAL;
    }
    return n >= 0 ? n : -errno;
  }

  // After a write event on a connecting socket. A socket registered before
  // its connect() reports EPOLLOUT|EPOLLHUP while still unconnected, so an
  // event can precede the connection (Go's issues 14548 and 19289): with
  // no error pending, getpeername says whether it is really connected,
  // else wait again.
  static std::int64_t connect_result(int fd) noexcept {
    int err = 0;
    socklen_t len = sizeof err;
    if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) return -errno;
    if (err == 0) {
      sockaddr_storage peer;
      socklen_t plen = sizeof peer;
      if (::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &plen) == 0) return 0;
      return errno == ENOTCONN ? -EAGAIN : -errno;
    }
    return err == EINPROGRESS || err == EALREADY || err == EINTR ? -EAGAIN : -err;
  }

  // Files: a blocking call with the P handed back meanwhile.
  static std::int64_t file_io(fd_desc* d, const io_req& r) {
    sched_base* s = current_g()->sched;
    s->entersyscall();
    ssize_t n;
    switch (r.kind) {
      case op_kind::pread:
        n = r.off >= 0 ? ::pread(d->fd, r.buf, r.len, r.off) : ::read(d->fd, r.buf, r.len);
        break;
      case op_kind::pwrite:
        n = r.off >= 0 ? ::pwrite(d->fd, r.buf, r.len, r.off) : ::write(d->fd, r.buf, r.len);
        break;
      case op_kind::fsync: n = ::fsync(d->fd); break;
      default: n = -1; errno = EINVAL; break;
    }
    const int e = errno;
    s->exitsyscall();
    return n >= 0 ? n : -e;
  }

  // Parks the current G until d is ready in its direction, the deadline
  // passes or d closes; the caller then retries and checks.
  void wait(fd_desc* d, bool wr, std::int64_t deadline, op_kind k, std::uint32_t seq) {
    op o;
    o.seq = seq;
    o.self = this;
    o.d = d;
    o.g = current_g();
    o.wr = wr;
    o.when = deadline;
    o.fn = &deadline_fire;
    o.refs.store(deadline != 0 ? 2 : 1, std::memory_order_relaxed);
    const char* reason = k == op_kind::accept ? "IO wait (accept)"
                       : k == op_kind::connect ? "IO wait (connect)"
                       : wr ? "IO wait (write)" : "IO wait (read)";
    o.g->sched->gopark(&park_unlockf, &o, reason);
  }

  static bool park_unlockf(g_base*, void* arg) {
    auto* o = static_cast<op*>(arg);
    fd_desc* d = o->d;
    std::lock_guard<spinlock> lk(d->mu);
    bool& ready = o->wr ? d->wready : d->rready;
    if (ready) {  // an edge came after the EAGAIN: retry instead
      ready = false;
      return false;
    }
    // An edge came after the EAGAIN and woke other waiters (see fd_desc).
    if ((o->wr ? d->wseq : d->rseq).load(std::memory_order_relaxed) != o->seq) return false;
    if (d->closing.load(std::memory_order_acquire)) return false;
    // Several Gs may wait in one direction (accepts on one listener): a
    // list, and an event wakes them all (each retries; edge-triggered, so
    // waking fewer could strand one with data left to take).
    void*& slot = o->wr ? d->wwait : d->rwait;
    o->next = static_cast<op*>(slot);
    slot = o;
    o->self->nwait_.fetch_add(1, std::memory_order_seq_cst);
    if (o->when != 0) {
      o->armed = true;
      o->g->sched->add_timer(o);  // its fn takes d->mu: waits for us
    }
    return true;
  }

  // Whoever took the list of ops at o out of its slot (under d->mu).
  void take_all(op* o, glist* out) {
    while (o != nullptr) {
      op* next = o->next;  // o may be gone once its G runs
      taken(o, out);
      o = next;
    }
  }
  // Whoever took o out of its slot (under d->mu). out: the poller's list,
  // or null to goready directly.
  void taken(op* o, glist* out) {
    g_base* gp = o->g;
    int dec = 1;
    if (o->armed && gp->sched->del_timer(o)) dec = 2;  // else it is firing
    nwait_.fetch_sub(1, std::memory_order_seq_cst);
    if (o->refs.fetch_sub(dec, std::memory_order_acq_rel) != dec) return;
    if (out != nullptr) out->push(gp);
    else gp->sched->goready(gp);
  }

  static void deadline_fire(timer_node* t) {
    auto* o = static_cast<op*>(t);
    fd_desc* d = o->d;
    bool took = false;
    {
      std::lock_guard<spinlock> lk(d->mu);
      void*& slot = o->wr ? d->wwait : d->rwait;
      op* prev = nullptr;
      for (op* c = static_cast<op*>(slot); c != nullptr; prev = c, c = c->next) {
        if (c != o) continue;
        if (prev != nullptr) prev->next = c->next;
        else slot = c->next;
        took = true;
        break;
      }
    }
    g_base* gp = o->g;
    if (took) o->self->nwait_.fetch_sub(1, std::memory_order_seq_cst);
    const int dec = took ? 2 : 1;
    if (o->refs.fetch_sub(dec, std::memory_order_acq_rel) == dec) gp->sched->goready(gp);
  }

  int epfd_ = -1;
  bool pwait2_ = true;  // epoll_pwait2 works here (else epoll_pwait)
  int efd_ = -1;
};

}  // namespace detail
GORT_END_NAMESPACE
