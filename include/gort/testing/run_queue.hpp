// gort/testing/run_queue.hpp: a conformance suite for run-queue policies.
//
//   auto r = gort::testing::check_run_queue<my_queue<my_g, 256>>();
//   if (!r.ok) std::puts(r.report().c_str());
//   gort::testing::require_run_queue<my_queue<my_g, 256>>();   // throws
//
// It tests what the gort::run_queue_policy concept (gort/policy.hpp) cannot:
//   sequential  an empty queue is empty; put succeeds up to `capacity` and
//               then fails, leaving the queue unchanged; get returns every G
//               put, exactly once; on a full queue grab_half_for_overflow
//               moves 1..capacity/2 Gs out (never 0: the runtime would spin)
//               and writes nothing past out[capacity/2]; steal_into moves
//               1..about half into an empty thief and returns one of them;
//               a random mix of all of them against a model. After each
//               put while filling, each steal and each mix step, empty()
//               agrees with size() (the runtime idles a P on empty() alone).
//   concurrent  the owner puts, gets and overflows as the runtime does while
//               `stealers` threads steal into queues of their own, for
//               `stress_time`; every G is taken exactly once (a G taken
//               twice, or never, is reported), size() stays in
//               [0, capacity], and each G's put happens-before its take
//               (under TSan a missing release/acquire pair is a report).
//               Once the owner stops, a victim that steal_into finds
//               nothing in while empty() says false is a failure after a
//               bounded number of tries: the suite always ends.
// It needs no test framework: the result says ok and lists what failed in
// words, so Catch2 (`REQUIRE(r.ok)` + `INFO(r.report())`), GoogleTest
// (`ASSERT_TRUE(r.ok) << r.report()`) or a plain main can use it; the
// require_ variant throws run_queue_check_error with the same report.
//
// Q is a queue of G* (G is deduced from Q::get()). The Gs it is fed are
// objects of type Obj (default G), made by the suite with Obj's default
// constructor; Obj must be G or derive from it. A queue that looks into
// its Gs (a priority in the G's payload) names the real type as Obj and
// passes an init(Obj&, std::size_t index) that fills in what it reads;
// the suite calls init before each put, on the putting thread. The queue
// must not require anything of the Gs beyond what init sets up.
//
// Runs on any threads, not on a G (the stealers are std::threads).
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <vector>

#include "../policy.hpp"

GORT_BEGIN_NAMESPACE
namespace testing {

struct run_queue_check_options {
  // How long the concurrent part runs (default 1 s; TSan builds stay in
  // bounds: the time is wall clock, not a count of operations).
  std::chrono::milliseconds stress_time{1000};
  // Threads stealing concurrently with the owner; 0 skips the concurrent
  // part.
  unsigned stealers = 3;
  // Seeds the owner's mix of operations (and the sequential random mix).
  std::uint64_t seed = 1;
  // Failures kept in the report; later ones are counted, not listed.
  std::size_t max_failures = 20;
};

struct run_queue_check_result {
  bool ok = true;
  std::vector<std::string> failures;  // each "<part>: <what went wrong>"
  std::size_t failures_dropped = 0;   // beyond max_failures
  // What the concurrent part did, for a test to assert it did something.
  std::uint64_t stress_puts = 0;
  std::uint64_t stress_steals = 0;    // successful steal_into calls
  std::uint64_t stress_overflows = 0; // successful grab_half_for_overflow
  // One failure per line, or "ok".
  std::string report() const {
    if (ok) return "ok";
    std::string s;
    for (const std::string& f : failures) s += f + "\n";
    if (failures_dropped != 0) s += "(" + std::to_string(failures_dropped) + " more)\n";
    return s;
  }
};

class run_queue_check_error : public std::runtime_error {
 public:
  explicit run_queue_check_error(run_queue_check_result r)
      : std::runtime_error("gort::testing::check_run_queue failed:\n" + r.report()),
        result_(std::move(r)) {}
  const run_queue_check_result& result() const noexcept { return result_; }

 private:
  run_queue_check_result result_;
};

// The G type of a queue: what its get() returns a pointer to.
template <class Q>
using run_queue_g_t = std::remove_pointer_t<decltype(std::declval<Q&>().get())>;

// The default init: nothing to fill in.
struct no_init {
  template <class Obj>
  void operator()(Obj&, std::size_t) const noexcept {}
};

namespace detail_rq {

struct reporter {
  std::mutex mu;
  run_queue_check_result* r = nullptr;
  std::size_t max = 0;
  std::atomic<bool> failed{false};  // read without mu by the stress loop
  bool any() const noexcept { return failed.load(std::memory_order_relaxed); }
  void fail(std::string what) {
    std::lock_guard<std::mutex> lk(mu);
    failed.store(true, std::memory_order_relaxed);
    r->ok = false;
    if (r->failures.size() < max) r->failures.push_back(std::move(what));
    else ++r->failures_dropped;
  }
};

inline std::uint64_t next_rand(std::uint64_t& s) noexcept {  // splitmix64
  std::uint64_t z = (s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// A pool of Gs with a per-G count of how often it is queued now.
template <class G, class Obj>
struct pool {
  std::vector<Obj> objs;
  std::vector<int> queued;  // sequential parts only
  explicit pool(std::size_t n) : objs(n), queued(n, 0) {}
  G* at(std::size_t i) { return static_cast<G*>(&objs[i]); }
  std::size_t in_queues = 0;  // the sum of queued[]
  // Index of gp, or -1 when it is not one of ours. The G subobject sits at
  // the same offset in every Obj: one subtraction.
  long index(const G* gp) const {
    if (objs.empty()) return -1;
    const auto a = reinterpret_cast<std::uintptr_t>(gp);
    const auto b = reinterpret_cast<std::uintptr_t>(static_cast<const G*>(&objs[0]));
    if (a < b || (a - b) % sizeof(Obj) != 0 || (a - b) / sizeof(Obj) >= objs.size()) return -1;
    return static_cast<long>((a - b) / sizeof(Obj));
  }
};

template <class Q, class G, class Obj, class Init>
class checker {
  static constexpr std::uint32_t cap = static_cast<std::uint32_t>(Q::capacity);

 public:
  checker(reporter& rep, const run_queue_check_options& o, Init& init)
      : rep_(rep), o_(o), init_(init) {}

  // Takes gp out of the model; reports a G that is not ours or not queued.
  void take(pool<G, Obj>& p, G* gp, const char* part, const char* by) {
    const long i = p.index(gp);
    if (i < 0) {
      rep_.fail(std::string(part) + ": " + by + " returned a pointer that was never put");
      return;
    }
    if (p.queued[static_cast<std::size_t>(i)] == 0) {
      rep_.fail(std::string(part) + ": " + by + " returned G #" + std::to_string(i) +
                ", which is not in the queue (duplicated or already taken)");
      return;
    }
    --p.queued[static_cast<std::size_t>(i)];
    --p.in_queues;
  }
  bool put(Q& q, pool<G, Obj>& p, std::size_t i) {
    init_(p.objs[i], i);
    if (!q.put(p.at(i))) return false;
    ++p.queued[i];
    ++p.in_queues;
    return true;
  }
  // Drains q with get (bounded), taking each G.
  void drain(Q& q, pool<G, Obj>& p, const char* part) {
    for (std::uint32_t k = 0; k <= cap + 1; ++k) {
      G* gp = q.get();
      if (gp == nullptr) return;
      take(p, gp, part, "get");
    }
    rep_.fail(std::string(part) + ": get returned more Gs than capacity");
  }
  void expect_all_taken(pool<G, Obj>& p, const char* part) {
    std::size_t lost = 0;
    for (int c : p.queued) lost += c != 0;
    if (lost != 0)
      rep_.fail(std::string(part) + ": " + std::to_string(lost) +
                " G(s) put were never returned (lost)");
    std::fill(p.queued.begin(), p.queued.end(), 0);
    p.in_queues = 0;
  }
  void expect(bool cond, const std::string& what) {
    if (!cond) rep_.fail(what);
  }
  // Owner only, with no thief running. empty() must agree with size(): the
  // runtime decides "no work here" from empty() alone (handoffp, pidleput,
  // the spinning M's re-check), so an empty() that says true while a G is
  // queued idles a P that holds it. Reports a disagreement under `part`
  // (and the mix's step, if one is given).
  bool expect_empty_agrees(const Q& q, std::string_view part, long step = -1) {
    const bool e = q.empty();
    const auto s = static_cast<std::uint32_t>(q.size());
    if (e == (s == 0)) return true;
    rep_.fail(std::string(part) + ": empty() is " + (e ? "true" : "false") + " but size() is " +
              std::to_string(s) + (step < 0 ? "" : " (step " + std::to_string(step) + ")"));
    return false;
  }

  void empty_queue() {
    auto q = std::make_unique<Q>(), thief = std::make_unique<Q>();
    expect(q->empty(), "empty: a new queue is not empty()");
    expect(q->size() == 0, "empty: a new queue has size() " + std::to_string(q->size()));
    expect(q->get() == nullptr, "empty: get() on a new queue is not null");
    expect(q->steal_into(*thief) == nullptr, "empty: steal_into from a new queue is not null");
    expect(thief->empty(), "empty: steal_into from an empty queue changed the thief");
  }

  void fill_and_drain() {
    pool<G, Obj> p(cap + 1);
    auto q = std::make_unique<Q>();
    std::uint32_t filled = 0;
    for (; filled < cap; ++filled) {
      if (!put(*q, p, filled)) {
        rep_.fail("fill: put #" + std::to_string(filled + 1) + " failed below capacity " +
                  std::to_string(cap));
        break;
      }
      if (q->size() != filled + 1) {
        rep_.fail("fill: size() is " + std::to_string(q->size()) + " after " +
                  std::to_string(filled + 1) + " puts");
        ++filled;
        break;
      }
      if (!expect_empty_agrees(*q, "fill")) {
        ++filled;
        break;
      }
    }
    if (filled == cap) {
      expect(!q->empty(), "fill: a full queue says empty()");
      init_(p.objs[cap], cap);
      if (q->put(p.at(cap))) {
        ++p.queued[cap];
        ++p.in_queues;
        rep_.fail("fill: put succeeded on a full queue (capacity " + std::to_string(cap) +
                  ": it must return false)");
      }
      expect(q->size() == cap,
             "fill: a failed put changed size() to " + std::to_string(q->size()));
    }
    drain(*q, p, "fill");
    expect(q->empty() && q->size() == 0, "fill: the queue is not empty after get returned null");
    expect_all_taken(p, "fill");
    // Reusable after a drain.
    for (std::uint32_t i = 0; i < cap; ++i) {
      if (!put(*q, p, i)) {
        rep_.fail("fill: put failed on a drained queue below capacity");
        break;
      }
      if (!expect_empty_agrees(*q, "refill")) break;
    }
    drain(*q, p, "refill");
    expect_all_taken(p, "refill");
  }

  void overflow() {
    pool<G, Obj> p(cap + 1);
    auto q = std::make_unique<Q>();
    for (std::uint32_t i = 0; i < cap; ++i) put(*q, p, i);
    init_(p.objs[cap], cap);
    if (q->put(p.at(cap))) {
      ++p.queued[cap];
      ++p.in_queues;
    }
    // A canary past the N/2 Gs the runtime's buffer has room for.
    std::vector<G*> out(cap / 2 + 2, nullptr);
    G* const canary = reinterpret_cast<G*>(alignof(G));
    out[cap / 2] = out[cap / 2 + 1] = canary;
    const std::uint32_t n = q->grab_half_for_overflow(out.data());
    if (n == 0) {
      rep_.fail("overflow: grab_half_for_overflow returned 0 on a full queue with no thief "
                "(the runtime would retry put forever)");
    } else if (n > cap / 2) {
      rep_.fail("overflow: grab_half_for_overflow returned " + std::to_string(n) +
                " > capacity / 2 = " + std::to_string(cap / 2));
    } else {
      expect(out[cap / 2] == canary && out[cap / 2 + 1] == canary,
             "overflow: grab_half_for_overflow wrote past out[capacity / 2]");
      for (std::uint32_t i = 0; i < n; ++i) take(p, out[i], "overflow", "grab_half_for_overflow");
      expect(q->size() == cap - n, "overflow: size() is " + std::to_string(q->size()) +
                                       " after grabbing " + std::to_string(n) + " of " +
                                       std::to_string(cap));
      expect_empty_agrees(*q, "overflow");
      init_(p.objs[cap], cap);
      if (p.queued[cap] == 0) {
        if (q->put(p.at(cap))) {
          ++p.queued[cap];
          ++p.in_queues;
        } else {
          rep_.fail("overflow: put still fails after grab_half_for_overflow made room");
        }
      }
    }
    drain(*q, p, "overflow");
    expect_all_taken(p, "overflow");
  }

  void steal() {
    const std::uint32_t sizes[] = {1, 2, 3, 5, 10, cap / 2, cap - 1, cap};
    for (std::uint32_t k : sizes) {
      if (k == 0 || k > cap) continue;
      const std::string part = "steal from " + std::to_string(k);
      pool<G, Obj> p(k);
      auto victim = std::make_unique<Q>(), thief = std::make_unique<Q>();
      for (std::uint32_t i = 0; i < k; ++i) put(*victim, p, i);
      G* gp = victim->steal_into(*thief);
      if (gp == nullptr) {
        rep_.fail(part + ": steal_into returned null from a non-empty queue");
      } else {
        const std::uint32_t moved = 1 + thief->size();
        expect(moved <= k / 2 + 1 && moved <= std::max<std::uint32_t>(1, cap / 2),
               part + ": steal_into moved " + std::to_string(moved) + " Gs (want about half)");
        expect(victim->size() == k - moved, part + ": victim has size() " +
                                                std::to_string(victim->size()) + " after " +
                                                std::to_string(moved) + " were stolen");
        take(p, gp, part.c_str(), "steal_into");
      }
      expect_empty_agrees(*victim, part + " (victim)");
      expect_empty_agrees(*thief, part + " (thief)");
      drain(*thief, p, (part + " (thief)").c_str());
      drain(*victim, p, (part + " (victim)").c_str());
      expect_all_taken(p, part.c_str());
    }
  }

  // A random mix of every operation on two queues, each owned in turn.
  void random_mix() {
    const std::size_t n = 2 * cap + 2;
    pool<G, Obj> p(n);
    std::vector<std::size_t> free;
    for (std::size_t i = 0; i < n; ++i) free.push_back(i);
    std::unique_ptr<Q> qs[2] = {std::make_unique<Q>(), std::make_unique<Q>()};
    std::vector<G*> out(cap / 2 + 1);
    std::uint64_t rng = o_.seed ^ 0x5eed;
    auto give_back = [&](G* gp) {
      const long i = p.index(gp);
      if (i >= 0 && p.queued[static_cast<std::size_t>(i)] == 0)
        free.push_back(static_cast<std::size_t>(i));
    };
    for (int step = 0; step < 20000 && !rep_.any(); ++step) {
      const std::uint64_t r = next_rand(rng);
      Q& q = *qs[r & 1];
      Q& other = *qs[(r & 1) ^ 1];
      switch ((r >> 1) % 8) {
        case 0: case 1: case 2: case 3: {
          if (free.empty()) break;
          const std::size_t i = free.back();
          if (put(q, p, i)) free.pop_back();
          else if (q.size() != cap)
            rep_.fail("mix: put failed at size() " + std::to_string(q.size()) + " < capacity");
          else if (const std::uint32_t m = q.grab_half_for_overflow(out.data()); m == 0)
            rep_.fail("mix: grab_half_for_overflow returned 0 on a full queue");
          else
            for (std::uint32_t k = 0; k < m; ++k) {
              take(p, out[k], "mix", "grab_half_for_overflow");
              give_back(out[k]);
            }
          break;
        }
        case 4: case 5:
          if (G* gp = q.get()) {
            take(p, gp, "mix", "get");
            give_back(gp);
          }
          break;
        default:
          // Only into an empty thief, as the runtime does.
          if (!other.empty()) break;
          if (G* gp = q.steal_into(other)) {
            take(p, gp, "mix", "steal_into");
            give_back(gp);
          }
          break;
      }
      const std::size_t in0 = p.in_queues;
      const std::size_t sizes = qs[0]->size() + qs[1]->size();
      if (sizes != in0) {
        rep_.fail("mix: the queues' size() add up to " + std::to_string(sizes) + " but " +
                  std::to_string(in0) + " Gs are in them (step " + std::to_string(step) + ")");
        break;
      }
      if (!expect_empty_agrees(*qs[0], "mix", step) || !expect_empty_agrees(*qs[1], "mix", step))
        break;
    }
    drain(*qs[0], p, "mix");
    drain(*qs[1], p, "mix");
    expect_all_taken(p, "mix");
  }

  // The owner puts, gets and overflows; stealers steal into their own
  // queues and drain them. Each G carries a state (0 free, 1 queued) that
  // the taker flips back with a CAS: a failed CAS is a duplicate, a G still
  // queued at the end is lost. ticket[i] is a plain write before put and a
  // plain read after the take: a queue that does not order them is a data
  // race under TSan, and a wrong value here.
  void stress(run_queue_check_result& res) {
    const std::size_t n = std::size_t{4} * cap * (o_.stealers + 1) + 64;
    std::vector<Obj> objs(n);
    std::unique_ptr<std::atomic<int>[]> state(new std::atomic<int>[n]);
    std::vector<std::uint64_t> ticket(n, 0);
    for (std::size_t i = 0; i < n; ++i) state[i].store(0, std::memory_order_relaxed);
    auto victim = std::make_unique<Q>();
    std::atomic<bool> done{false};     // the owner's last put is behind it
    std::atomic<bool> drained{false};  // and so is its last get
    std::atomic<bool> stuck_reported{false};
    std::atomic<std::uint64_t> steals{0};
    const G* base = static_cast<const G*>(&objs[0]);
    auto index_of = [&](const G* gp) -> long {
      // Obj derives from G: the G subobject of objs[i] sits at the same
      // offset in each, so this is one subtraction.
      const auto a = reinterpret_cast<std::uintptr_t>(gp);
      const auto b = reinterpret_cast<std::uintptr_t>(base);
      if (a < b || (a - b) % sizeof(Obj) != 0 || (a - b) / sizeof(Obj) >= n) return -1;
      return static_cast<long>((a - b) / sizeof(Obj));
    };
    // Any thread: gp was just taken from a queue by `by`.
    auto taken = [&](const G* gp, std::uint64_t expect_min, const char* by) {
      const long i = index_of(gp);
      if (i < 0) {
        rep_.fail(std::string("stress: ") + by + " returned a pointer that was never put");
        return;
      }
      const auto u = static_cast<std::size_t>(i);
      const std::uint64_t t = ticket[u];  // plain read: ordered by the queue
      int one = 1;
      // CAS acq_rel: pairs with the owner's CAS 0 -> 1 before the next put.
      if (!state[u].compare_exchange_strong(one, 0, std::memory_order_acq_rel)) {
        rep_.fail(std::string("stress: ") + by + " returned G #" + std::to_string(i) +
                  " that is not queued (taken twice)");
        return;
      }
      if (t < expect_min)
        rep_.fail(std::string("stress: ") + by + " returned G #" + std::to_string(i) +
                  " with a stale ticket (its put is not visible to the taker)");
    };
    auto size_ok = [&](std::uint32_t s, const char* who) {
      if (s > cap)
        rep_.fail(std::string("stress: size() seen by ") + who + " is " + std::to_string(s) +
                  " > capacity");
    };
    // A thief stops when the victim is empty() after the owner's last put.
    // A queue whose empty() never says so again would keep the thieves (and
    // the owner's join) waiting forever: after the owner stopped, a victim
    // that steal_into finds nothing in while empty() says false is counted,
    // and after stuck_rounds such rounds in a row it is a failure and the
    // thieves stop. The count starts at once when size() is 0 (no put can
    // come, so a correct empty() follows size() within one round), and for
    // a non-zero size() once the owner has drained the queue too (P4: a
    // steal from a non-empty victim takes at least one G). So a correct
    // queue is never counted twice in a row; 200 only absorbs oddities, and
    // is few enough that on a loaded machine, where each yield may cost a
    // time slice, the bound stays well under a second.
    constexpr unsigned stuck_rounds = 200;
    auto stuck = [&](std::uint32_t s) {
      // relaxed: only picks the one thief that reports; rep_ locks.
      if (stuck_reported.exchange(true, std::memory_order_relaxed)) return;
      if (s == 0)
        rep_.fail("stress: empty() is false but size() is 0, " + std::to_string(stuck_rounds) +
                  " times in a row after the owner's last put (steal_into found nothing)");
      else
        rep_.fail("stress: empty() is false and size() is " + std::to_string(s) +
                  ", but steal_into found nothing " + std::to_string(stuck_rounds) +
                  " times in a row after the owner drained the queue with get");
    };
    std::vector<std::thread> thieves;
    for (unsigned t = 0; t < o_.stealers; ++t)
      thieves.emplace_back([&] {
        auto mine = std::make_unique<Q>();
        unsigned idle = 0;  // rounds in a row counted towards stuck_rounds
        for (;;) {
          // load-acquire: pairs with the owner's store-release after its
          // last put, so an empty victim after it is really empty.
          const bool last = done.load(std::memory_order_acquire);
          size_ok(static_cast<std::uint32_t>(victim->size()), "a thief");
          if (G* gp = victim->steal_into(*mine)) {
            idle = 0;
            steals.fetch_add(1, std::memory_order_relaxed);
            taken(gp, 1, "steal_into");
            for (std::uint32_t k = 0; k <= cap; ++k) {
              G* x = mine->get();
              if (x == nullptr) break;
              taken(x, 1, "get (thief's own queue)");
            }
            if (!mine->empty()) rep_.fail("stress: a thief's queue is not empty after draining");
          } else if (last && victim->empty()) {
            return;
          } else {
            if (last) {
              const auto s = static_cast<std::uint32_t>(victim->size());
              // load-acquire: pairs with the owner's store-release after
              // its last get.
              if (s == 0 || drained.load(std::memory_order_acquire)) {
                if (++idle == stuck_rounds) {
                  stuck(s);
                  return;
                }
              } else {
                idle = 0;
              }
            }
            std::this_thread::yield();
          }
        }
      });
    std::uint64_t rng = o_.seed;
    std::vector<G*> out(cap / 2 + 1);
    std::size_t cursor = 0;
    std::uint64_t seq = 0;
    const auto until = std::chrono::steady_clock::now() + o_.stress_time;
    while (!rep_.any() && std::chrono::steady_clock::now() < until) {
      const std::uint64_t r = next_rand(rng);
      const unsigned burst = 1 + static_cast<unsigned>(r % (cap + cap / 2));
      for (unsigned b = 0; b < burst; ++b) {
        // A free G: the owner alone flips 0 -> 1.
        std::size_t i = cursor;
        int zero = 0;
        std::size_t tries = 0;
        while (!state[i].compare_exchange_strong(zero, 1, std::memory_order_acq_rel)) {
          zero = 0;
          i = (i + 1) % n;
          if (++tries == n) break;
        }
        if (tries == n) break;  // all queued somewhere: let thieves catch up
        cursor = (i + 1) % n;
        init_(objs[i], i);
        ticket[i] = ++seq;  // plain write, published by put
        ++res.stress_puts;
        G* gp = static_cast<G*>(&objs[i]);
        for (int spin = 0; !victim->put(gp); ++spin) {
          // The runtime's runqputslow: move half out, or retry put.
          const std::uint32_t m = victim->grab_half_for_overflow(out.data());
          if (m > cap / 2) {
            rep_.fail("stress: grab_half_for_overflow returned more than capacity / 2");
            break;
          }
          if (m != 0) {
            ++res.stress_overflows;
            for (std::uint32_t k = 0; k < m; ++k) taken(out[k], 1, "grab_half_for_overflow");
          }
          if (spin == 1000000) {
            rep_.fail("stress: put keeps failing and grab_half_for_overflow keeps returning 0");
            break;
          }
        }
      }
      const unsigned gets = static_cast<unsigned>((r >> 32) % (cap / 2 + 1));
      for (unsigned k = 0; k < gets; ++k) {
        G* gp = victim->get();
        if (gp == nullptr) break;
        taken(gp, 1, "get");
      }
      size_ok(static_cast<std::uint32_t>(victim->size()), "the owner");
    }
    // Stop: the owner drains what the thieves leave.
    done.store(true, std::memory_order_release);
    for (std::uint64_t k = 0; k < std::uint64_t{cap} + 1; ++k) {
      G* gp = victim->get();
      if (gp == nullptr) break;
      taken(gp, 1, "get");
    }
    // store-release: pairs with the thieves' load-acquire of drained.
    drained.store(true, std::memory_order_release);
    for (std::thread& t : thieves) t.join();
    for (std::uint64_t k = 0; k < std::uint64_t{cap} + 1; ++k) {
      G* gp = victim->get();
      if (gp == nullptr) break;
      taken(gp, 1, "get");
    }
    std::size_t lost = 0;
    for (std::size_t i = 0; i < n; ++i) lost += state[i].load(std::memory_order_acquire) != 0;
    if (lost != 0)
      rep_.fail("stress: " + std::to_string(lost) + " G(s) put were never taken (lost)");
    res.stress_steals = steals.load(std::memory_order_relaxed);
  }

 private:
  reporter& rep_;
  const run_queue_check_options& o_;
  Init& init_;
};

}  // namespace detail_rq

// Runs the suite on Q (see the top of this file). Never throws for a
// failed check; the result lists every failure in words.
template <class Q, class Obj = run_queue_g_t<Q>, class Init = no_init>
run_queue_check_result check_run_queue(const run_queue_check_options& opts = {},
                                       Init init = {}) {
  using G = run_queue_g_t<Q>;
  static_assert(run_queue_policy<Q, G>,
                "check_run_queue<Q>: Q does not model gort::run_queue_policy<Q, G> "
                "(gort/policy.hpp lists the members)");
  static_assert(std::is_same_v<Obj, G> || std::is_base_of_v<G, Obj>,
                "check_run_queue<Q, Obj>: Obj must be G or derive from it");
  static_assert(std::is_default_constructible_v<Obj>,
                "check_run_queue<Q, Obj>: the suite makes its Gs with Obj's default constructor");
  run_queue_check_result res;
  detail_rq::reporter rep;
  rep.r = &res;
  rep.max = opts.max_failures;
  detail_rq::checker<Q, G, Obj, Init> c(rep, opts, init);
  c.empty_queue();
  c.fill_and_drain();
  c.overflow();
  c.steal();
  c.random_mix();
  if (opts.stealers != 0 && res.ok) c.stress(res);
  return res;
}

// The same, throwing run_queue_check_error (its what() is the report).
template <class Q, class Obj = run_queue_g_t<Q>, class Init = no_init>
void require_run_queue(const run_queue_check_options& opts = {}, Init init = {}) {
  run_queue_check_result r = check_run_queue<Q, Obj, Init>(opts, std::move(init));
  if (!r.ok) throw run_queue_check_error(std::move(r));
}

}  // namespace testing
GORT_END_NAMESPACE
