// gort/runtime.hpp: a runtime: Ps, Ms and the Gs they run.
//
//   gort::runtime rt;                          // Ps = CPUs (or GORT_PROCS)
//   gort::runtime rt(gort::config{.procs = 4});
//   int v = rt.run([] { ... return 42; });     // the main G; waits for it
//   rt.go([] { ... });                          // from any thread
//
// Several runtimes may exist at once; each owns its threads. The destructor
// waits until every G has finished, then stops and joins its threads.
#pragma once

#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <tuple>
#include <type_traits>
#include <utility>

#include "detail/config.hpp"
#include "detail/note.hpp"
#include "detail/proc.hpp"
#include "detail/runtime2.hpp"
#include "detail/task.hpp"
#include "traits.hpp"

GORT_BEGIN_NAMESPACE

namespace detail {
// Binds f and its arguments (decayed copies, like std::thread) into a task.
template <class F, class... Args>
task make_task(F&& f, Args&&... args) {
  task t;
  if constexpr (sizeof...(Args) == 0) {
    t.emplace(std::forward<F>(f));
  } else {
    t.emplace([fn = std::decay_t<F>(std::forward<F>(f)),
               tup = std::make_tuple(std::decay_t<Args>(std::forward<Args>(args))...)]() mutable {
      std::apply(fn, std::move(tup));
    });
  }
  return t;
}
}  // namespace detail

template <class Traits = default_traits>
class basic_runtime {
 public:
  using traits_type = Traits;

  basic_runtime() : basic_runtime(config{}) {}
  // Throws std::invalid_argument for a bad config, std::system_error if a
  // thread cannot be started.
  explicit basic_runtime(const config& cfg)
      : s_(std::make_unique<detail::basic_sched<Traits>>(cfg)) {}
  basic_runtime(const basic_runtime&) = delete;
  basic_runtime& operator=(const basic_runtime&) = delete;

  // Waits for every G (deadlock detection applies while it waits), then
  // stops the runtime's threads. Must not run on one of this runtime's Gs.
  ~basic_runtime() {
    if (s_->on_g())
      GORT_FATAL("runtime destroyed from one of its own Gs (it would wait for itself); "
                 "destroy it outside the runtime, where run() is called");
    s_->wait_all_gs();
  }

  // Runs f(args...) as a G and blocks the calling thread until it returns;
  // returns its value or rethrows its exception. Any thread that is not a G,
  // any number of times, from several threads at once. Throws
  // std::logic_error when called from inside a G (it would block an M).
  template <class F, class... Args>
  auto run(F&& f, Args&&... args) -> std::invoke_result_t<std::decay_t<F>, std::decay_t<Args>...> {
    using R = std::invoke_result_t<std::decay_t<F>, std::decay_t<Args>...>;
    if (detail::current_g() != nullptr)
      throw std::logic_error(
          "gort: runtime::run called from inside a G; spawn with gort::go and "
          "wait on a channel or wait_group instead");
    struct record {
      detail::note done;
      std::exception_ptr error;
      std::conditional_t<std::is_void_v<R>, char, std::optional<R>> value;
    } rec;
    auto bound = [fn = std::decay_t<F>(std::forward<F>(f)),
                  tup = std::make_tuple(std::decay_t<Args>(std::forward<Args>(args))...),
                  r = &rec]() mutable {
      try {
        if constexpr (std::is_void_v<R>) std::apply(fn, std::move(tup));
        else r->value.emplace(std::apply(fn, std::move(tup)));
      } catch (...) {
        r->error = std::current_exception();
      }
      r->done.wakeup();
    };
    detail::task t;
    t.emplace(std::move(bound));
    s_->spawn_task(std::move(t));
    rec.done.sleep();
    if (rec.error) std::rethrow_exception(rec.error);
    if constexpr (!std::is_void_v<R>) return std::move(*rec.value);
  }

  // Starts f(args...) as a new G. Any thread. An exception escaping f is
  // fatal: "gort: fatal: uncaught exception in G <id>: <what>" (Go's panic).
  // Returns the new G's id.
  template <class F, class... Args>
  std::uint64_t go(F&& f, Args&&... args) {
    return s_->spawn_task(detail::make_task(std::forward<F>(f), std::forward<Args>(args)...));
  }

  runtime_stats stats() const { return s_->stats(); }

  // Sends the scheduler's events to s from now on (null: stop). Any
  // thread; s must outlive the runtime: after set_trace(nullptr) or
  // another sink, an M may still be inside s for a moment (gort/trace.hpp).
  void set_trace(trace::sink* s) noexcept { s_->set_trace(s); }
  unsigned procs() const noexcept { return s_->procs(); }

 protected:
  // For runtimes built on this one (gort::testing::sim_runtime).
  detail::basic_sched<Traits>& sched() noexcept { return *s_; }

 private:
  std::unique_ptr<detail::basic_sched<Traits>> s_;
};

using runtime = basic_runtime<default_traits>;

GORT_END_NAMESPACE
