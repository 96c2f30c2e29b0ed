// gort/select.hpp: Go's select.
//
//   int i = gort::select(
//       gort::on_recv(a, [](std::optional<int> v) { ... }),  // nullopt: closed
//       gort::on_send(b, 42, [] { ... }),
//       gort::on_recv(*gort::after(100ms), [](auto) { ... }),  // timeout
//       gort::on_default([] { ... }));                         // never block
//
// Returns the index of the case taken (its position in the call). If
// several cases are ready, one is chosen uniformly at random; with a default
// case select never blocks; without, it parks on every channel at once and
// exactly one case fires. A send case on a closed channel throws
// channel_closed, as Go panics. The case's function runs after the select
// has released every channel. select(token, cases...) also returns when a
// stop is requested, throwing operation_canceled.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <optional>
#include <stop_token>
#include <tuple>
#include <type_traits>
#include <utility>

#include "chan.hpp"
#include "detail/config.hpp"
#include "detail/waitq.hpp"

GORT_BEGIN_NAMESPACE

template <class T, class F>
struct recv_case {
  chan<T>* ch;
  F fn;
  std::optional<T> slot{};
};
template <class T, class F>
struct send_case {
  chan<T>* ch;
  T value;
  F fn;
};
template <class F>
struct default_case {
  F fn;
};

template <class T, class F>
recv_case<T, std::decay_t<F>> on_recv(chan<T>& ch, F&& fn) {
  return {&ch, std::forward<F>(fn)};
}
template <class T, class U, class F>
send_case<T, std::decay_t<F>> on_send(chan<T>& ch, U&& value, F&& fn) {
  return {&ch, T(std::forward<U>(value)), std::forward<F>(fn)};
}
template <class F>
default_case<std::decay_t<F>> on_default(F&& fn) {
  return {std::forward<F>(fn)};
}

namespace detail {

template <class C>
struct case_traits {
  static constexpr bool is_default = false;
};
template <class F>
struct case_traits<default_case<F>> {
  static constexpr bool is_default = true;
};

// The runtime's rand32 on a G (a deterministic runtime's seeded stream:
// a replay makes the same choices); a thread's own PRNG elsewhere.
inline std::uint32_t select_rand() noexcept {
  if (g_base* gp = current_g()) return gp->sched->rand32();
  thread_local std::uint64_t x = 0x9E3779B97F4A7C15ull ^ reinterpret_cast<std::uintptr_t>(&x);
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  return static_cast<std::uint32_t>(x >> 32);
}

// Type-erased view of one case for the select algorithm.
struct case_view {
  chan_base* base = nullptr;  // null: default case
  bool is_send = false;
  void* c = nullptr;          // the case object
  // lock held: complete now if ready; *to_wake gets the partner.
  bool (*try_now)(void* c, waiter** to_wake) = nullptr;
  void* elem = nullptr;       // for the waiter: T* (send) or optional<T>* (recv)
};

template <class T, class F>
case_view view_of(recv_case<T, F>& rc) {
  case_view v;
  v.base = &rc.ch->base();
  v.c = &rc;
  v.elem = &rc.slot;
  v.try_now = [](void* c, waiter** w) {
    auto* r = static_cast<recv_case<T, F>*>(c);
    return r->ch->recv_locked(r->slot, w);
  };
  return v;
}
template <class T, class F>
case_view view_of(send_case<T, F>& sc) {
  case_view v;
  v.base = &sc.ch->base();
  v.is_send = true;
  v.c = &sc;
  v.elem = &sc.value;
  v.try_now = [](void* c, waiter** w) {
    auto* s = static_cast<send_case<T, F>*>(c);
    return s->ch->send_locked(s->value, w);
  };
  return v;
}
template <class F>
case_view view_of(default_case<F>&) {
  return {};
}

template <class T, class F>
void run_case(recv_case<T, F>& rc) {
  rc.fn(std::move(rc.slot));
}
template <class T, class F>
void run_case(send_case<T, F>& sc) {
  sc.fn();
}
template <class F>
void run_case(default_case<F>& dc) {
  dc.fn();
}

struct select_locks {
  std::array<chan_base*, 64> order{};
  std::size_t n = 0;
  void lock_all() {
    for (std::size_t i = 0; i < n; ++i) order[i]->lock.lock();
  }
  void unlock_all() {
    for (std::size_t i = n; i-- > 0;) order[i]->lock.unlock();
  }
};

inline bool select_unlock_all(g_base*, void* arg) {
  static_cast<select_locks*>(arg)->unlock_all();
  return true;
}

// The algorithm (Go's selectgo). Returns the index that fired, or -1 for
// "default", or -2 for "canceled".
template <std::size_t N>
int selectgo(std::array<case_view, N>& cv, bool has_default, std::stop_token* token) {
  // Poll order: a uniformly random permutation of the channel cases.
  std::array<int, N> poll{};
  std::size_t np = 0;
  for (std::size_t i = 0; i < N; ++i)
    if (cv[i].base != nullptr) poll[np++] = static_cast<int>(i);
  if constexpr (N > 1)  // (GCC 12 warns about poll[1] of a one-case select)
    for (std::size_t i = np; i > 1; --i) std::swap(poll[i - 1], poll[select_rand() % i]);
  // Lock order: each channel once, by address (no deadlock between selects).
  select_locks locks;
  for (std::size_t i = 0; i < N; ++i)
    if (cv[i].base != nullptr) locks.order[locks.n++] = cv[i].base;
  std::sort(locks.order.begin(), locks.order.begin() + locks.n);
  locks.n = static_cast<std::size_t>(std::unique(locks.order.begin(), locks.order.begin() + locks.n) -
                                     locks.order.begin());

  select_state state;
  std::array<waiter, N> ws{};
  note thread_note;
  // A stop request claims the select like a channel would.
  auto on_stop = [&] {
    locks.lock_all();
    bool expected = false;
    const bool won = state.done.compare_exchange_strong(expected, true, std::memory_order_acq_rel);
    waiter* any = nullptr;
    if (won) {
      state.fired = -2;
      for (std::size_t i = 0; i < N; ++i)
        if (ws[i].queued) {
          any = &ws[i];
          break;
        }
    }
    locks.unlock_all();
    if (any != nullptr) wake(any);
  };
  std::optional<std::stop_callback<decltype(on_stop)>> cb;
  if (token != nullptr) cb.emplace(*token, on_stop);

  locks.lock_all();
  if (state.done.load(std::memory_order_acquire)) {  // stopped already
    locks.unlock_all();
    return -2;
  }
  // Pass 1: anything ready now?
  for (std::size_t k = 0; k < np; ++k) {
    case_view& c = cv[static_cast<std::size_t>(poll[k])];
    if (c.is_send && c.base->closed) {
      locks.unlock_all();
      throw channel_closed();
    }
    waiter* partner = nullptr;
    if (c.try_now(c.c, &partner)) {
      state.done.store(true, std::memory_order_release);
      locks.unlock_all();
      if (partner != nullptr) wake(partner);
      return poll[k];
    }
  }
  if (has_default) {
    locks.unlock_all();
    return -1;
  }
  // Pass 2: queue on every channel and park; the first waker claims us.
  g_base* gp = current_g();
  for (std::size_t i = 0; i < N; ++i) {
    if (cv[i].base == nullptr) continue;
    waiter& w = ws[i];
    w.g = gp;
    w.thread_note = gp == nullptr ? &thread_note : nullptr;
    w.elem = cv[i].elem;
    w.sel = &state;
    w.case_index = static_cast<int>(i);
    (cv[i].is_send ? cv[i].base->sendq : cv[i].base->recvq).push_back(&w);
  }
  if (gp != nullptr) {
    gp->sched->gopark(&select_unlock_all, &locks, "select");
  } else {
    locks.unlock_all();
    thread_note.sleep();
  }
  // Pass 3: dequeue from the channels that did not fire.
  locks.lock_all();
  for (std::size_t i = 0; i < N; ++i)
    if (cv[i].base != nullptr && ws[i].queued)
      (cv[i].is_send ? cv[i].base->sendq : cv[i].base->recvq).remove(&ws[i]);
  locks.unlock_all();
  const int fired = state.fired;
  if (fired >= 0 && cv[static_cast<std::size_t>(fired)].is_send &&
      !ws[static_cast<std::size_t>(fired)].success)
    throw channel_closed();  // woken by close
  return fired;
}

template <class Tuple, std::size_t... I>
int select_impl(std::stop_token* token, Tuple& cases, std::index_sequence<I...>) {
  constexpr std::size_t n = sizeof...(I);
  static_assert(n >= 1, "gort::select needs at least one case");
  constexpr int ndefault =
      (0 + ... + (case_traits<std::remove_cvref_t<std::tuple_element_t<I, Tuple>>>::is_default ? 1 : 0));
  static_assert(ndefault <= 1, "gort::select: at most one on_default case");
  static_assert(n <= 64, "gort::select: at most 64 cases");
  std::array<case_view, n> cv{view_of(std::get<I>(cases))...};
  int fired = selectgo<n>(cv, ndefault == 1, token);
  if (fired == -2) throw operation_canceled();
  if (fired == -1) {  // the default case
    int idx = 0;
    ((case_traits<std::remove_cvref_t<std::tuple_element_t<I, Tuple>>>::is_default ? (idx = static_cast<int>(I)) : 0), ...);
    fired = idx;
  }
  ((static_cast<int>(I) == fired ? (run_case(std::get<I>(cases)), 0) : 0), ...);
  return fired;
}

}  // namespace detail

template <class... Cases>
int select(Cases&&... cases) {
  auto t = std::forward_as_tuple(cases...);
  return detail::select_impl(nullptr, t, std::index_sequence_for<Cases...>{});
}

template <class... Cases>
int select(std::stop_token token, Cases&&... cases) {
  auto t = std::forward_as_tuple(cases...);
  return detail::select_impl(&token, t, std::index_sequence_for<Cases...>{});
}

GORT_END_NAMESPACE
