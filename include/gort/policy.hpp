// gort/policy.hpp: the run-queue policy concept (what a traits'
// `run_queue<G, N>` must provide) and the G payload accessor a policy uses.
//
// Each P has one local run queue. The scheduler talks to it through seven
// members; gort's own queue (detail/runq.hpp, Go's lock-free runq) is the
// default, and a traits struct may swap in another:
//
//   struct my_traits : gort::default_traits {
//     template <class G, std::uint32_t N>
//     using run_queue = my_queue<G, N>;
//   };
//
// basic_runtime<my_traits> then checks my_queue<detail::g_base, N> against
// run_queue_policy (below), one member at a time, with a message naming the
// member that is missing or has the wrong type. gort::testing::
// check_run_queue<Q>() (gort/testing/run_queue.hpp) checks what a concept
// cannot: that no G is lost or duplicated when thieves race the owner.
// Tutorial: docs/testing.md; reference: docs/api/policy.md.
//
// Who calls what. A queue has one OWNER: the M holding its P. A P changes
// hands (handoffp, acquirep) only through a release/acquire pair, so at any
// moment one thread is the owner. THIEVES are the owners of other Ps, in
// findrunnable's steal loop, any number at once.
//
//   member                           caller            runs concurrently with
//   put(G*) -> bool                  owner only        steal_into, size, empty
//   get() -> G*                      owner only        steal_into, size, empty
//   grab_half_for_overflow(G**)      owner only        steal_into, size, empty
//   victim.steal_into(Q& thief)      thief, owner of   the victim's owner (put,
//     -> G*                          `thief`           get, grab) and other
//                                                      thieves of the victim
//   size() const, empty() const      any thread        everything
//   static capacity                  compile time
//
// What each must guarantee (the R-rules of detail/runq.hpp, generalised):
//   (P1) No G is lost or duplicated: every G put is returned exactly once,
//        by get, by grab_half_for_overflow (in `out`), by steal_into (its
//        result, or moved into the thief's queue, where the thief's get
//        returns it later), and never by two callers, however they race.
//   (P2) Capacity: with no thief running, put succeeds while size() <
//        capacity and returns false, leaving the queue unchanged, when
//        size() == capacity. A put that fails while a thief makes room is
//        allowed: the runtime then calls grab_half_for_overflow, which
//        returns 0 if the queue is no longer full, and retries put.
//   (P3) grab_half_for_overflow(out), owner only, after put failed: moves
//        the Gs that should run LAST (gort's queue: the older half) out of
//        the queue into out[0..n) and returns n, 1 <= n <= capacity / 2; or
//        returns 0 and changes nothing if the queue is not full any more.
//        The runtime appends them, in out's order, to the global queue.
//   (P4) steal_into(thief): moves about half of this queue (at least one G
//        if it is not empty, at most capacity / 2 in all) into `thief`,
//        which its caller owns and which is empty, and returns one of them
//        for the caller to run at once (not left in `thief`); null if it
//        found nothing. It must not wait for the victim's owner: a thief
//        that blocks on a busy victim stalls an idle P. A lock held for a
//        few instructions is fine; a lock held across anything that can
//        park or sleep is not.
//   (P5) size() and empty() never block and never tear: a snapshot that
//        may be stale by the time it returns, but was true at some moment.
//        The runtime reads another P's empty() to decide whether to stay
//        awake, and re-reads after a fence (DESIGN.md invariant 2), so an
//        empty() that says "empty" while a G was put before the fence loses
//        a wakeup. Publish a put (release) before it is visible to size().
//   (P6) put, get and grab_half_for_overflow never allocate, never throw,
//        and never block on anything a thief holds for long; they run on
//        the scheduler's g0 stack, sometimes under the scheduler lock.
// Not required: FIFO order (the policy chooses what runs next), fairness
// between Gs (the global queue is checked every global_queue_fairness
// schedules; a policy that can starve a G says so), a particular G coming
// back from steal_into.
//
// What the queue does NOT see: runnext. A G readied by the running G (a
// spawn, a channel wake) goes to the P's runnext slot first and reaches the
// queue only when the next one displaces it; gort::go from a G therefore
// runs the newest child first whatever the queue does.
#pragma once

#include <concepts>
#include <cstdint>
#include <type_traits>

#include "detail/config.hpp"

GORT_BEGIN_NAMESPACE

namespace detail {
template <class Traits>
struct basic_g;

// One concept per member, so that the static_asserts below can say which
// one is missing.
template <class Q>
concept rq_has_capacity = requires {
  { Q::capacity } -> std::convertible_to<std::uint32_t>;
} && (static_cast<std::uint32_t>(Q::capacity) >= 2);
template <class Q, class G>
concept rq_has_put = requires(Q& q, G* gp) {
  { q.put(gp) } -> std::same_as<bool>;
};
template <class Q, class G>
concept rq_has_get = requires(Q& q) {
  { q.get() } -> std::same_as<G*>;
};
template <class Q, class G>
concept rq_has_grab = requires(Q& q, G** out) {
  { q.grab_half_for_overflow(out) } -> std::same_as<std::uint32_t>;
};
template <class Q, class G>
concept rq_has_steal = requires(Q& victim, Q& thief) {
  { victim.steal_into(thief) } -> std::same_as<G*>;
};
template <class Q>
concept rq_has_size = requires(const Q& q) {
  { q.size() } -> std::convertible_to<std::uint32_t>;
  { q.empty() } -> std::same_as<bool>;
};
}  // namespace detail

// Q is a run queue of G*s that a P can own (see the table above). Models
// the syntax only; gort::testing::check_run_queue<Q>() tests the rest.
template <class Q, class G>
concept run_queue_policy =
    std::is_default_constructible_v<Q> && std::is_destructible_v<Q> &&
    detail::rq_has_capacity<Q> && detail::rq_has_put<Q, G> && detail::rq_has_get<Q, G> &&
    detail::rq_has_grab<Q, G> && detail::rq_has_steal<Q, G> && detail::rq_has_size<Q>;

namespace detail {
// basic_sched's check of a traits' queue, Q = run_queue<g_base, N>: one
// static_assert per member, each naming what to write. Returns true so
// that it can sit in a static_assert itself.
template <class Q, class G, std::uint32_t N>
consteval bool check_run_queue_policy() {
  static_assert(std::is_default_constructible_v<Q>,
                "gort traits: run_queue<G, N> must be default-constructible (one per P, "
                "made empty); see gort/policy.hpp, docs/api/policy.md");
  static_assert(rq_has_capacity<Q>,
                "gort traits: run_queue<G, N> needs `static constexpr std::uint32_t "
                "capacity` >= 2 (how many Gs it holds); see gort/policy.hpp, docs/api/policy.md");
  static_assert(rq_has_put<Q, G>,
                "gort traits: run_queue<G, N> needs `bool put(G* gp)` (owner only; false, "
                "queue unchanged, when full); see gort/policy.hpp, docs/api/policy.md");
  static_assert(rq_has_get<Q, G>,
                "gort traits: run_queue<G, N> needs `G* get()` (owner only; null when "
                "empty); see gort/policy.hpp, docs/api/policy.md");
  static_assert(rq_has_grab<Q, G>,
                "gort traits: run_queue<G, N> needs `std::uint32_t grab_half_for_overflow("
                "G** out)` (owner only, after put failed); see gort/policy.hpp, "
                "docs/api/policy.md");
  static_assert(rq_has_steal<Q, G>,
                "gort traits: run_queue<G, N> needs `G* steal_into(run_queue& thief)` (runs "
                "on a thief, concurrently with the owner); see gort/policy.hpp, "
                "docs/api/policy.md");
  static_assert(rq_has_size<Q>,
                "gort traits: run_queue<G, N> needs `std::uint32_t size() const` and `bool "
                "empty() const` (any thread, never block); see gort/policy.hpp, "
                "docs/api/policy.md");
  if constexpr (rq_has_capacity<Q>)
    static_assert(Q::capacity / 2 <= N / 2,
                  "gort traits: run_queue<G, N>::capacity / 2 must not exceed N / 2: "
                  "grab_half_for_overflow fills a buffer of N / 2 + 1 Gs; see gort/policy.hpp");
  return run_queue_policy<Q, G>;
}
}  // namespace detail

// The traits' g_payload of the G that gp points to, for a run-queue policy
// that orders Gs by something the user stored there (a priority, a
// deadline, a NUMA node). gp must be a G of a basic_runtime<Traits> (the
// pointers the runtime hands to its run queue are); the queue must not
// keep the reference past the G's time in the queue. Any thread that holds
// gp through a queue; the payload is written when the G is made (see
// default_traits::g_payload) and gort never writes it while the G is queued.
template <class Traits, class G>
const typename Traits::g_payload& payload_of(const G* gp) noexcept {
  return static_cast<const detail::basic_g<Traits>*>(gp)->payload;
}

GORT_END_NAMESPACE
