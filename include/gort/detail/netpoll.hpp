// gort/detail/netpoll.hpp: the netpoller interface (Go's netpoll.go).
//
// A G that does I/O parks; the netpoller completes the operation and hands
// the G back to the scheduler. Two backends implement the interface:
//
//   uring_poller (netpoll_uring.hpp)  one io_uring per P. The G's request is
//       an SQE submitted from the park's unlockf (the G is already parked,
//       so its completion can never find it running); the CQE's user_data
//       points at the op record on the parked G's stack.
//   epoll_poller (netpoll_epoll.hpp)  Go's design: non-blocking fds
//       registered once, edge-triggered; a G tries the syscall and parks on
//       the fd's read or write slot when it would block.
//
// The scheduler sees only three things (proc.hpp): poll(timeout) to reap
// completions (timeout 0 from findrunnable and sysmon; blocking from the
// one M that sleeps until the next timer, Go's lastpoll rule, invariant 6),
// wakeup() to break that M out (netpollBreak), and waiters() so that a G
// waiting for I/O is never taken for a deadlock. The Gs a poll returns are
// still `waiting`; the scheduler makes them runnable (injectglist,
// invariant 7: never dropped).
//
// Choosing a backend: GORT_POLLER=uring|epoll forces one; by default
// io_uring, and epoll with one line on stderr when io_uring is missing or
// refused (ENOSYS, EPERM from seccomp or io_uring_disabled) or too old.
// basic_runtime creates its poller on first use, so a runtime that does no
// I/O opens no ring.
#pragma once

#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "config.hpp"
#include "note.hpp"
#include "runtime2.hpp"
#include "timers.hpp"
#include "waitq.hpp"

GORT_BEGIN_NAMESPACE
namespace detail {

// A list of Gs through their one intrusive link (schedlink); a G readied
// by the poller is on no other queue.
struct glist {
  g_base* head = nullptr;
  g_base* tail = nullptr;
  int n = 0;
  void push(g_base* gp) noexcept {
    gp->schedlink = nullptr;
    if (tail != nullptr) tail->schedlink = gp;
    else head = gp;
    tail = gp;
    ++n;
  }
  g_base* pop() noexcept {
    g_base* gp = head;
    if (gp != nullptr) {
      head = gp->schedlink;
      if (head == nullptr) tail = nullptr;
      gp->schedlink = nullptr;
      --n;
    }
    return gp;
  }
  bool empty() const noexcept { return head == nullptr; }
};

// Records of T (with a `T* next_free` member) recycled through a free
// list and never freed while the pool lives: a late event may still name
// one that was given back. get() and put() from any thread.
template <class T>
class recycling_pool {
 public:
  T* get() {
    std::lock_guard<std::mutex> lk(mu_);
    if (T* t = free_) {
      free_ = t->next_free;
      return t;
    }
    all_.push_back(std::make_unique<T>());
    return all_.back().get();
  }
  void put(T* t) noexcept {
    std::lock_guard<std::mutex> lk(mu_);
    t->next_free = free_;
    free_ = t;
  }
  // Every record, given back or not (the owner's destructor).
  template <class F>
  void for_each(F&& f) {
    std::lock_guard<std::mutex> lk(mu_);
    for (auto& t : all_) f(*t);
  }

 private:
  std::mutex mu_;
  std::vector<std::unique_ptr<T>> all_;  // mu_
  T* free_ = nullptr;                    // mu_
};

// One I/O request, as the public layer (net.hpp, fs.hpp) describes it.
enum class op_kind : std::uint8_t {
  read,     // read(2) on a pollable fd (pipe, eventfd): buf, len
  recv,     // stream socket read: buf, len
  send,     // stream socket write: buf, len (MSG_NOSIGNAL)
  accept,   // addr/addrlen out (may be null; io_uring's multishot accept
            // never fills them); result: the new fd (close-on-exec)
  connect,  // addr/addrlen in; result 0
  recvmsg,  // msg
  sendmsg,  // msg
  pread,    // file read at off (off < 0: the file position)
  pwrite,   // file write at off (off < 0: the file position)
  fsync,    // file
};

struct io_req {
  op_kind kind = op_kind::recv;
  void* buf = nullptr;
  std::size_t len = 0;
  std::int64_t off = -1;
  sockaddr* addr = nullptr;  // accept: out; connect: in
  socklen_t* addrlen = nullptr;  // accept: in/out
  socklen_t addrlen_in = 0;      // connect
  msghdr* msg = nullptr;
};

// Per-fd state shared by the public objects and the backends (Go's
// pollDesc + fdMutex). Owned by the poller, reused, never freed while the
// poller lives: an epoll event may still carry a pointer to a closed one
// (it then causes one spurious retry, never a use after free).
struct fd_desc {
  int fd = -1;
  bool is_file = false;
  // Ops in progress on fd; close() waits for them (Go's fdMutex refs).
  // seq_cst with `closing`: an op increments then reads closing; close
  // stores closing then reads refs (each sees the other).
  std::atomic<int> refs{0};
  std::atomic<bool> closing{false};
  // close_fd calls still touching this desc. release_fd waits for zero: an
  // op woken by close() may return -EBADF (and its caller destroy the
  // object) before close_fd has finished with the desc (it had not parked
  // yet); without the wait the desc could be recycled under it and the fd
  // leak or a new fd with the same number be closed.
  std::atomic<int> closers{0};
  // Deadlines, nanotime(); 0: none. Read when an op starts.
  std::atomic<std::int64_t> rdeadline{0};
  std::atomic<std::int64_t> wdeadline{0};

  spinlock mu;                 // guards what follows
  // mu: the G in close() waiting for refs == 0 (a close_wait on its stack);
  // whoever drops the last ref closes the fd (see close_fd).
  void* closer = nullptr;
  // epoll backend (mu): the ops parked for readability / writability (a
  // list through the epoll op), and readiness that came while nobody
  // waited (Go's pdReady). The io_uring
  // backend uses rready alone, as the reading G's "try recv first" hint.
  void* rwait = nullptr;
  void* wwait = nullptr;
  bool rready = false;
  bool wready = false;
  // epoll backend: bumped (under mu) by every event in that direction. A
  // G reads it before its syscall and parks only if it is unchanged: an
  // event that woke other waiters between its EAGAIN and its park (no
  // `ready` mark is left then) makes it retry instead of sleeping.
  std::atomic<std::uint32_t> rseq{0};
  std::atomic<std::uint32_t> wseq{0};
  fd_desc* next_free = nullptr;  // the poller's free list
  // The io_uring backend's multishot state for this fd (accept on a
  // listener, recv on a connection), or null. Published once under mu by
  // the first G that needs it, cleared when the desc is recycled (see
  // uring_poller::mshot); the record outlives the desc while a multishot
  // request is still in flight.
  std::atomic<void*> ms{nullptr};
  // Bumped (store-release) each time the desc is set up for an fd; an
  // epoll reaper load-acquires it before touching the desc. The kernel
  // already orders epoll_ctl before the event; this makes it visible to
  // TSan too.
  std::atomic<std::uint32_t> gen{0};
};

class netpoller_base {
 public:
  virtual ~netpoller_base() = default;
  virtual const char* name() const noexcept = 0;
  // Any thread: completions may be arriving that no G waits for but that
  // must be reaped to keep a bound (io_uring's armed multishot accepts:
  // their queue cap applies as they are reaped). sysmon's periodic poll
  // covers them as it covers waiters; they do not count for checkdead.
  virtual bool wants_reaping() const noexcept { return false; }

  // ---- the G side (net.hpp, fs.hpp) ----
  // Sockets made for this poller should be non-blocking (epoll) or not
  // (io_uring arms its own poll).
  virtual bool wants_nonblocking() const noexcept = 0;
  // Current G: starts tracking fd. Returns -errno on failure (the fd is
  // then still the caller's to close).
  fd_desc* open_fd(int fd, bool is_file, int* err) {
    fd_desc* d = fd_alloc(fd, is_file);
    if (int e = register_fd(d); e != 0) {
      fd_free(d);
      *err = e;
      return nullptr;
    }
    *err = 0;
    return d;
  }
  // Current G: one operation, parking the G until it completes. deadline:
  // nanotime() (0: none). Returns the result, or -errno; -ETIMEDOUT when
  // the deadline passed first, -EBADF when the fd is being closed. Always
  // waits for the kernel to be done with the op's buffers.
  virtual std::int64_t io(fd_desc* d, const io_req& r, std::int64_t deadline) = 0;
  // Current G: close(). Marks d closing, cancels every op on it, and closes
  // the fd once they have all returned: the last op to return closes it
  // before it returns (so an op that reports -EBADF has seen the fd
  // closed, and its caller may release d at once), or close_fd does when
  // no op is in progress. d stays valid (every later op on it fails with
  // -EBADF) until release_fd. Returns 0, -errno from close(2), or -EBADF
  // if it was already closed.
  int close_fd(fd_desc* d);
  // Any thread, when the owning object dies: closes d if still open (it
  // must have no op in progress then), and recycles it.
  void release_fd(fd_desc* d) {
    while (d->closers.load(std::memory_order_acquire) != 0)  // see fd_desc::closers
      yield_any();
    if (!d->closing.exchange(true, std::memory_order_seq_cst)) {
      unregister_fd(d);
      ::close(d->fd);
    }
    forget_fd(d);
    fd_free(d);
  }

  // Op bookkeeping for close_fd (Go's fdMutex). begin: false if closing.
  bool op_begin(fd_desc* d) noexcept {
    d->refs.fetch_add(1, std::memory_order_seq_cst);
    if (!d->closing.load(std::memory_order_seq_cst)) return true;
    op_end(d);
    return false;
  }
  void op_end(fd_desc* d) noexcept;

  // ---- the scheduler side ----
  // Any M: reaps what completed, blocking at most timeout_ns (< 0: until
  // something completes or wakeup(); 0: not at all). Readied Gs go on out,
  // still in status waiting. Several Ms may poll at once; at most one with
  // a timeout (the scheduler's rule).
  virtual void poll(std::int64_t timeout_ns, glist& out) = 0;
  // Any thread: a blocked poll() returns soon (Go's netpollBreak).
  virtual void wakeup() noexcept = 0;
  // Any thread: Gs parked on I/O (checkdead must not call them dead).
  std::int64_t waiters() const noexcept { return nwait_.load(std::memory_order_seq_cst); }

 protected:
  virtual int register_fd(fd_desc* d) = 0;  // -errno
  virtual void unregister_fd(fd_desc* d) noexcept = 0;
  // Makes every op parked on d return (they see -EBADF).
  virtual void cancel_fd(fd_desc* d) noexcept = 0;
  // d is being recycled (closed, no op in progress): drop the backend's
  // state for it.
  virtual void forget_fd(fd_desc*) noexcept {}

  fd_desc* fd_alloc(int fd, bool is_file) {
    fd_desc* d = descs_.get();
    std::lock_guard<spinlock> lk(d->mu);
    d->fd = fd;
    d->is_file = is_file;
    d->refs.store(0, std::memory_order_relaxed);
    d->closing.store(false, std::memory_order_relaxed);
    d->closers.store(0, std::memory_order_relaxed);
    d->rdeadline.store(0, std::memory_order_relaxed);
    d->wdeadline.store(0, std::memory_order_relaxed);
    d->closer = nullptr;
    d->rwait = d->wwait = nullptr;
    d->rready = d->wready = false;
    d->next_free = nullptr;
    d->ms.store(nullptr, std::memory_order_relaxed);
    d->gen.fetch_add(1, std::memory_order_release);
    return d;
  }
  void fd_free(fd_desc* d) {
    d->fd = -1;
    descs_.put(d);
  }

  std::atomic<std::int64_t> nwait_{0};

 private:
  recycling_pool<fd_desc> descs_;
};

namespace netpoll_impl {
// A G in close_fd waiting for the ops in progress; on its stack.
struct close_wait {
  fd_desc* d = nullptr;
  g_base* g = nullptr;
  int result = 0;
  bool done = false;  // the last op closed the fd and set result
};

// unlockf of close: parks the closer unless the last op already ended.
inline bool close_park(g_base*, void* arg) {
  auto* cw = static_cast<close_wait*>(arg);
  std::lock_guard<spinlock> lk(cw->d->mu);
  if (cw->d->refs.load(std::memory_order_seq_cst) == 0) return false;
  cw->d->closer = cw;
  return true;
}
}  // namespace netpoll_impl

inline void netpoller_base::op_end(fd_desc* d) noexcept {
  if (d->refs.fetch_sub(1, std::memory_order_seq_cst) != 1) return;
  if (!d->closing.load(std::memory_order_seq_cst)) return;
  netpoll_impl::close_wait* cw;
  {
    std::lock_guard<spinlock> lk(d->mu);
    cw = static_cast<netpoll_impl::close_wait*>(std::exchange(d->closer, nullptr));
  }
  if (cw == nullptr) return;  // close_fd has not parked: it closes itself
  // The last op out closes the fd, before its own caller sees -EBADF.
  unregister_fd(d);
  cw->result = ::close(d->fd) == 0 ? 0 : -errno;
  cw->done = true;
  g_base* gp = cw->g;  // cw may be gone once gp runs
  gp->sched->goready(gp);
}

inline int netpoller_base::close_fd(fd_desc* d) {
  // Held until the last touch of d (release_fd waits for it).
  d->closers.fetch_add(1, std::memory_order_seq_cst);
  const auto done = [d](int r) {
    d->closers.fetch_sub(1, std::memory_order_release);
    return r;
  };
  // seq_cst exchange, then read refs (op_begin does the mirror image).
  if (d->closing.exchange(true, std::memory_order_seq_cst)) return done(-EBADF);
  cancel_fd(d);
  netpoll_impl::close_wait cw;
  cw.d = d;
  cw.g = current_g();
  if (d->refs.load(std::memory_order_seq_cst) != 0) {
    GORT_ASSERT(cw.g != nullptr, "close_fd: not on a G");
    cw.g->sched->gopark(&netpoll_impl::close_park, &cw, "IO close");
  }
  if (cw.done) return done(cw.result);  // the last op closed it
  unregister_fd(d);
  return done(::close(d->fd) == 0 ? 0 : -errno);
}

// Makes the poller for a runtime (traits::poller::create); see
// netpoll_uring.hpp / netpoll_epoll.hpp and default_poller in
// netpoll_select.hpp.
}  // namespace detail
GORT_END_NAMESPACE
