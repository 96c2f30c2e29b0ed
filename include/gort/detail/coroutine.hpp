// gort/detail/coroutine.hpp: an asymmetric stackful coroutine.
//
// The smallest user of the context switch: resume() runs the body until it
// calls suspend() or returns. The scheduler does not use this class (a G
// switches G-to-G and to its M's g0 directly); it exists for the foundation
// tests, the switch benchmark and anyone who wants one coroutine without a
// scheduler. Not thread-safe: one thread at a time may resume it, though
// successive resumes may come from different threads.
#pragma once

#include <atomic>
#include <cstdint>
#include <exception>
#include <functional>
#include <utility>

#include "../stack.hpp"
#include "config.hpp"
#include "context.hpp"
#include "overflow.hpp"

GORT_BEGIN_NAMESPACE
namespace detail {

// Thrown inside a suspended coroutine that is destroyed, to unwind its stack
// (run its destructors) before the stack is freed. Do not catch it, or
// rethrow it if you do (catch (...) { throw; } is fine).
struct forced_unwind {};

inline std::atomic<std::uint64_t> next_coroutine_id{1};

template <bool PreserveFP = true>
class basic_coroutine {
 public:
  using body_fn = std::function<void(basic_coroutine&)>;

  // Throws what stack_allocator::allocate throws.
  basic_coroutine(stack_allocator& alloc, std::size_t stack_size, body_fn body)
      : alloc_(alloc), body_(std::move(body)) {
    info_.kind = "coroutine";
    info_.id = next_coroutine_id.fetch_add(1, std::memory_order_relaxed);
    stack_ = alloc_.allocate(stack_size);
    info_.stk = stack_.bounds();
    self_.make(&info_, &entry);
  }
  basic_coroutine(const basic_coroutine&) = delete;
  basic_coroutine& operator=(const basic_coroutine&) = delete;

  ~basic_coroutine() {
    if (started_ && !done_) {  // unwind the suspended body
      unwinding_ = true;
      switch_in();
    }
    alloc_.deallocate(stack_);
  }

  // Runs the body until it suspends or returns. Returns false once the body
  // has returned. An exception that escapes the body is rethrown here.
  bool resume() {
    if (done_) return false;
    if (running_) GORT_FATAL("coroutine %llu: resume() from inside itself",
                             static_cast<unsigned long long>(info_.id));
    switch_in();
    if (error_) std::rethrow_exception(std::exchange(error_, nullptr));
    return !done_;
  }

  // Called by the body: returns to resume()'s caller.
  void suspend() {
    running_ = false;
    switch_context<PreserveFP>(self_, caller_, nullptr, eh_);
    running_ = true;
    if (unwinding_) throw forced_unwind{};
  }

  bool done() const noexcept { return done_; }
  std::uint64_t id() const noexcept { return info_.id; }
  const gort::stack& stack() const noexcept { return stack_; }

 private:
  void switch_in() {
    thread_altstack::ensure();
    started_ = running_ = true;
    eh_ = thread_eh_globals();  // suspend() runs on this thread too
    // The caller's context has no stack record (caller_.stk is null, so
    // that ASan learns a thread stack's bounds at the first switch), but
    // the caller may itself run on a coroutine's or a G's stack: check that
    // one on the way out, and give it back to the overflow handler when
    // the body suspends, or an overflow there would be a bare SIGSEGV.
    const stack_info* outer = running_stack();
    if (outer != nullptr) check_stack_on_switch_out(*outer);
    switch_context<PreserveFP>(caller_, self_, this, eh_);
    set_running_stack(outer);
  }

  static void entry(transfer t) noexcept {
    // t.data's switch_record names the caller; finish_switch stores its sp.
    auto* self = static_cast<basic_coroutine*>(
        static_cast<switch_record*>(t.data)->data);
    finish_switch(t, self->self_);
    if (!self->unwinding_) {
      try {
        self->body_(*self);
      } catch (const forced_unwind&) {
      } catch (...) {
        self->error_ = std::current_exception();
      }
    }
    self->done_ = true;
    self->running_ = false;
    switch_context<PreserveFP>(self->self_, self->caller_, nullptr, self->eh_,
                               true);
    GORT_FATAL("coroutine %llu resumed after it finished",
               static_cast<unsigned long long>(self->info_.id));
  }

  stack_allocator& alloc_;
  body_fn body_;
  gort::stack stack_;
  stack_info info_;
  context self_;
  context caller_;
  std::exception_ptr error_;
  eh_globals* eh_ = nullptr;  // the resuming thread's exception state
  bool started_ = false;
  bool running_ = false;
  bool done_ = false;
  bool unwinding_ = false;
};

using coroutine = basic_coroutine<true>;

}  // namespace detail
GORT_END_NAMESPACE
