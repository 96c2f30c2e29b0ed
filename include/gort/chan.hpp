// gort/chan.hpp: Go's channels.
//
//   gort::chan<int> ch(0);          // unbuffered: a send waits for a receiver
//   gort::chan<std::string> q(128); // buffered
//   ch.send(v);                     // blocks; throws channel_closed if closed
//   std::optional<int> v = ch.recv();   // nullopt once closed and drained
//   for (int x : ch) { ... }        // until closed and drained
//   ch.close();
//
// Blocking parks the G (never its M); on a thread that is not a G the call
// blocks the thread instead. Senders, and receivers, are served FIFO.
// Thread-safe; T may be move-only. A channel must outlive every operation on
// it (as in Go, where the GC keeps it alive).
#pragma once

#include <cstddef>
#include <exception>
#include <memory>
#include <new>
#include <optional>
#include <stdexcept>
#include <stop_token>
#include <type_traits>
#include <utility>

#include "detail/config.hpp"
#include "detail/waitq.hpp"

GORT_BEGIN_NAMESPACE

// Thrown by send on a closed channel (Go panics) and by a second close.
class channel_closed : public std::logic_error {
 public:
  channel_closed() : std::logic_error("gort: send on closed channel") {}
  explicit channel_closed(const char* what) : std::logic_error(what) {}
};

// Thrown when a stop_token's stop request ends a blocking call.
class operation_canceled : public std::runtime_error {
 public:
  operation_canceled() : std::runtime_error("gort: operation canceled (stop requested)") {}
};

namespace detail {

// The part of a channel select needs without knowing T.
class chan_base {
 public:
  spinlock lock;
  waitq recvq;  // blocked receivers (elem: std::optional<T>*)
  waitq sendq;  // blocked senders (elem: T*)
  bool closed = false;
};

// Removes w from its queue if it is still there and wakes it as canceled
// (for std::stop_callback). Returns whether it did.
inline bool cancel_waiter(spinlock& l, waitq& q, waiter& w) {
  l.lock();
  const bool queued = w.queued;
  if (queued) {
    q.remove(&w);
    w.canceled = true;
  }
  l.unlock();
  if (queued) wake(&w);
  return queued;
}

}  // namespace detail

template <class T>
class chan : private detail::chan_base {
  static_assert(std::is_move_constructible_v<T>, "gort::chan<T>: T must be move-constructible");
  // A value moves into a receiver's slot or the buffer with the channel
  // locked and its partner G already taken off its queue: a throw there
  // could be neither undone nor reported to the partner.
  static_assert(std::is_nothrow_move_constructible_v<T>,
                "gort::chan<T>: T's move constructor must not throw (declare it noexcept, "
                "or send a std::unique_ptr<T>)");

 public:
  using value_type = T;

  // capacity 0: unbuffered (rendezvous). Throws std::invalid_argument for a
  // negative capacity.
  explicit chan(long capacity = 0) : cap_(check_capacity(capacity)) {
    if (cap_ != 0)
      buf_ = static_cast<T*>(::operator new(sizeof(T) * cap_, std::align_val_t{alignof(T)}));
  }
  chan(const chan&) = delete;
  chan& operator=(const chan&) = delete;
  ~chan() {
    while (count_ != 0) pop_buffer();
    if (buf_ != nullptr) ::operator delete(buf_, std::align_val_t{alignof(T)});
  }

  // Blocks until v is received or buffered. Throws channel_closed if the
  // channel is (or gets) closed.
  void send(T v) { send_impl(v, nullptr); }
  // The same; a stop request throws operation_canceled (v not sent).
  void send(T v, std::stop_token st) { send_impl(v, &st); }

  // Blocks until a value arrives; nullopt once closed and drained.
  std::optional<T> recv() { return recv_impl(nullptr); }
  // The same; a stop request throws operation_canceled.
  std::optional<T> recv(std::stop_token st) { return recv_impl(&st); }

  // Never block. try_send returns false if the value could not be sent now
  // (v is left as it was); throws channel_closed on a closed channel.
  bool try_send(T& v) {
    lock.lock();
    if (closed) {
      lock.unlock();
      throw channel_closed();
    }
    return try_send_locked(v);  // releases the lock
  }
  bool try_send(T&& v) { return try_send(v); }
  // nullopt if no value is ready now (use closed_and_drained() to tell).
  std::optional<T> try_recv() {
    lock.lock();
    std::optional<T> out;
    try_recv_locked(out);  // releases the lock
    return out;
  }

  // Closes the channel: blocked receivers get nullopt (after the buffer
  // drains), blocked senders throw channel_closed. Closing twice throws.
  void close() {
    lock.lock();
    if (closed) {
      lock.unlock();
      throw channel_closed("gort: close of closed channel");
    }
    closed = true;
    detail::waiter* wake_list = nullptr;
    while (detail::waiter* w = recvq.pop_front()) {
      w->success = false;  // the slot stays nullopt
      w->next = wake_list;
      wake_list = w;
    }
    while (detail::waiter* w = sendq.pop_front()) {
      w->success = false;
      w->next = wake_list;
      wake_list = w;
    }
    lock.unlock();
    while (wake_list != nullptr) {
      detail::waiter* w = wake_list;
      wake_list = w->next;
      detail::wake(w);
    }
  }

  std::size_t size() {
    lock.lock();
    const std::size_t n = count_;
    lock.unlock();
    return n;
  }
  std::size_t capacity() const noexcept { return cap_; }
  bool is_closed() {
    lock.lock();
    const bool c = closed;
    lock.unlock();
    return c;
  }

  // Range-for: receives until the channel is closed and drained.
  class iterator {
   public:
    using value_type = T;
    using difference_type = std::ptrdiff_t;
    explicit iterator(chan* c) : c_(c) { ++*this; }
    iterator() = default;
    T& operator*() { return *v_; }
    iterator& operator++() {
      v_ = c_->recv();
      return *this;
    }
    bool operator==(std::default_sentinel_t) const { return !v_.has_value(); }

   private:
    chan* c_ = nullptr;
    std::optional<T> v_;
  };
  iterator begin() { return iterator(this); }
  std::default_sentinel_t end() { return {}; }

  // ---- for select (gort/select.hpp) and timers ----
  detail::chan_base& base() noexcept { return *this; }

  // With the lock held, never releasing it: send now if a receiver waits
  // or the buffer has room. *to_wake: a receiver to wake once the lock is
  // released. Returns whether the value was sent. (Closed: the caller's
  // business.)
  bool send_locked(T& v, detail::waiter** to_wake) {
    if (detail::waiter* w = recvq.pop_front()) {
      static_cast<std::optional<T>*>(w->elem)->emplace(std::move(v));
      w->success = true;
      *to_wake = w;
      return true;
    }
    if (count_ < cap_) {
      push_buffer(std::move(v));
      return true;
    }
    return false;
  }
  // With the lock held, never releasing it: receive now (a value, or
  // nullopt if closed and drained). *to_wake: a sender to wake.
  bool recv_locked(std::optional<T>& out, detail::waiter** to_wake) {
    if (detail::waiter* w = sendq.pop_front()) {
      T* sv = static_cast<T*>(w->elem);
      if (cap_ == 0) {
        out.emplace(std::move(*sv));
      } else {  // buffer full: take the oldest, the sender's value goes last
        out.emplace(std::move(buf_[head_]));
        pop_buffer();
        push_buffer(std::move(*sv));
      }
      w->success = true;
      *to_wake = w;
      return true;
    }
    if (count_ != 0) {
      out.emplace(std::move(buf_[head_]));
      pop_buffer();
      return true;
    }
    return closed;
  }
  // With the lock held: send or receive now, then release the lock (and
  // wake the partner). Otherwise keep the lock and return false.
  bool try_send_keep(T& v) {
    detail::waiter* w = nullptr;
    if (!send_locked(v, &w)) return false;
    lock.unlock();
    if (w != nullptr) detail::wake(w);
    return true;
  }
  bool try_recv_keep(std::optional<T>& out) {
    detail::waiter* w = nullptr;
    if (!recv_locked(out, &w)) return false;
    lock.unlock();
    if (w != nullptr) detail::wake(w);
    return true;
  }
  bool try_send_locked(T& v) {
    if (try_send_keep(v)) return true;
    lock.unlock();
    return false;
  }
  bool try_recv_locked(std::optional<T>& out) {
    if (try_recv_keep(out)) return true;
    lock.unlock();
    return false;
  }

 private:
  static std::size_t check_capacity(long c) {
    if (c < 0) throw std::invalid_argument("gort: chan capacity must not be negative");
    return static_cast<std::size_t>(c);
  }

  // No `%`: a 64-bit division costs more than the rest of a buffered op.
  void push_buffer(T&& v) {
    std::size_t i = head_ + count_;
    if (i >= cap_) i -= cap_;
    ::new (static_cast<void*>(&buf_[i])) T(std::move(v));
    ++count_;
  }
  void pop_buffer() noexcept {
    buf_[head_].~T();
    if (++head_ == cap_) head_ = 0;
    --count_;
  }

  // Without a stop token: nothing to set up before the lock, and the
  // waiter is built only when the G must block.
  void send_impl(T& v, std::nullptr_t) {
    lock.lock();
    if (closed) {
      lock.unlock();
      throw channel_closed();
    }
    if (try_send_keep(v)) return;
    detail::waiter w;
    w.elem = &v;
    sendq.push_back(&w);
    detail::block(w, lock, "chan send");
    if (!w.success) throw channel_closed();
  }

  std::optional<T> recv_impl(std::nullptr_t) {
    std::optional<T> out;
    lock.lock();
    if (try_recv_keep(out)) return out;
    detail::waiter w;
    w.elem = &out;
    recvq.push_back(&w);
    detail::block(w, lock, "chan receive");
    return out;
  }

  // A stop request removes the waiter and wakes it as canceled. The
  // callback is registered before the lock is taken (it may run at once,
  // and takes the lock itself); the stop_requested() check under the lock
  // closes the window before the waiter is queued.
  void send_impl(T& v, std::stop_token* st) {
    detail::waiter w;
    auto on_stop = [&] { detail::cancel_waiter(lock, sendq, w); };
    std::optional<std::stop_callback<decltype(on_stop)>> cb;
    if (st != nullptr) cb.emplace(*st, on_stop);
    lock.lock();
    if (closed) {
      lock.unlock();
      throw channel_closed();
    }
    if (st != nullptr && st->stop_requested()) {
      lock.unlock();
      throw operation_canceled();
    }
    if (try_send_keep(v)) return;
    w.elem = &v;
    sendq.push_back(&w);
    detail::block(w, lock, "chan send");
    if (w.canceled) throw operation_canceled();
    if (!w.success) throw channel_closed();
  }

  std::optional<T> recv_impl(std::stop_token* st) {
    std::optional<T> out;
    detail::waiter w;
    auto on_stop = [&] { detail::cancel_waiter(lock, recvq, w); };
    std::optional<std::stop_callback<decltype(on_stop)>> cb;
    if (st != nullptr) cb.emplace(*st, on_stop);
    lock.lock();
    if (st != nullptr && st->stop_requested()) {
      lock.unlock();
      throw operation_canceled();
    }
    if (try_recv_keep(out)) return out;
    w.elem = &out;
    recvq.push_back(&w);
    detail::block(w, lock, "chan receive");
    if (w.canceled) throw operation_canceled();
    return out;
  }

  const std::size_t cap_;
  T* buf_ = nullptr;
  std::size_t head_ = 0;   // guarded by lock
  std::size_t count_ = 0;  // guarded by lock
};

GORT_END_NAMESPACE
