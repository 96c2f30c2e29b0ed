// gort/detail/task.hpp: the type-erased body of a G: a move-only
// `void()` callable that lives inside the G when it is small (no allocation
// for the common lambda), on the heap otherwise.
#pragma once

#include <cstddef>
#include <new>
#include <type_traits>
#include <utility>

#include "config.hpp"

GORT_BEGIN_NAMESPACE
namespace detail {

class task {
 public:
  static constexpr std::size_t inline_size = 48;

  task() noexcept = default;
  task(const task&) = delete;
  task& operator=(const task&) = delete;
  task(task&& o) noexcept { take(o); }
  task& operator=(task&& o) noexcept {
    if (this != &o) {
      reset();
      take(o);
    }
    return *this;
  }
  ~task() { reset(); }

  // Stores f (decayed). Never throws for callables that fit inline and are
  // nothrow-move-constructible; may throw std::bad_alloc otherwise.
  template <class F>
  void emplace(F&& f) {
    using fn = std::decay_t<F>;
    reset();
    if constexpr (sizeof(fn) <= inline_size && alignof(fn) <= alignof(std::max_align_t) &&
                  std::is_nothrow_move_constructible_v<fn>) {
      ::new (static_cast<void*>(buf_)) fn(std::forward<F>(f));
      vt_ = &inline_vtable<fn>;
    } else {
      *reinterpret_cast<fn**>(buf_) = new fn(std::forward<F>(f));
      vt_ = &heap_vtable<fn>;
    }
  }

  explicit operator bool() const noexcept { return vt_ != nullptr; }
  void operator()() { vt_->invoke(buf_); }
  void reset() noexcept {
    if (vt_ != nullptr) {
      vt_->destroy(buf_);
      vt_ = nullptr;
    }
  }

 private:
  struct vtable {
    void (*invoke)(void*);
    void (*destroy)(void*) noexcept;
    void (*relocate)(void* dst, void* src) noexcept;  // move, then destroy src
  };
  template <class F>
  static constexpr vtable inline_vtable{
      [](void* p) { (*static_cast<F*>(p))(); },
      [](void* p) noexcept { static_cast<F*>(p)->~F(); },
      [](void* dst, void* src) noexcept {
        ::new (dst) F(std::move(*static_cast<F*>(src)));
        static_cast<F*>(src)->~F();
      }};
  template <class F>
  static constexpr vtable heap_vtable{
      [](void* p) { (**static_cast<F**>(p))(); },
      [](void* p) noexcept { delete *static_cast<F**>(p); },
      [](void* dst, void* src) noexcept { *static_cast<F**>(dst) = *static_cast<F**>(src); }};

  void take(task& o) noexcept {
    if (o.vt_ != nullptr) {
      o.vt_->relocate(buf_, o.buf_);
      vt_ = std::exchange(o.vt_, nullptr);
    }
  }

  alignas(std::max_align_t) unsigned char buf_[inline_size];
  const vtable* vt_ = nullptr;
};

}  // namespace detail
GORT_END_NAMESPACE
