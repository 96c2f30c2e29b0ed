// gort::testing::check_run_queue (gort/testing/run_queue.hpp): passes on
// gort's own run queue, at several capacities and as the runtime
// instantiates it, and fails with a message that names the problem on
// queues with planted bugs, sequential and concurrent ones. Runs under
// TSan in .ci/run, where the stress part also checks that each put
// happens-before its take.
#include <gort/policy.hpp>
#include <gort/runtime.hpp>
#include <gort/testing/run_queue.hpp>
#include <gort/traits.hpp>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <thread>

#include "test_util.hpp"

using namespace std::chrono_literals;

namespace {

struct item {
  int id = 0;
};

bool mentions(const gort::testing::run_queue_check_result& r, const std::string& what) {
  for (const std::string& f : r.failures)
    if (f.find(what) != std::string::npos) return true;
  return false;
}

// A queue under a mutex with one planted bug (or none).
enum class bug {
  none,
  dup_on_steal,
  drop_when_full,
  grab_returns_zero,
  racy_steal,
  size_off,
  empty_below_two,     // empty() is size() < 2: a P with one G would go idle
  stale_empty,         // once a steal has drained it, empty() never says true again
  stale_empty_remote,  // the same, only for steals from another thread than the maker's
  stuck_last,          // after a steal from another thread, neither get nor steal_into
                       // takes the last G
};

template <class G, std::uint32_t N, bug B>
class planted {
 public:
  static constexpr std::uint32_t capacity = N;
  bool put(G* gp) noexcept {
    std::lock_guard<std::mutex> lk(mu_);
    if (q_.size() == N) return B == bug::drop_when_full;  // the bug: "true", gp dropped
    q_.push_back(gp);
    return true;
  }
  G* get() noexcept {
    std::lock_guard<std::mutex> lk(mu_);
    if (q_.empty() || (B == bug::stuck_last && remote_ && q_.size() == 1)) return nullptr;
    G* gp = q_.front();
    q_.pop_front();
    return gp;
  }
  std::uint32_t grab_half_for_overflow(G** out) noexcept {
    if constexpr (B == bug::grab_returns_zero) return 0;
    std::lock_guard<std::mutex> lk(mu_);
    if (q_.size() < N) return 0;
    for (std::uint32_t i = 0; i < N / 2; ++i) {
      out[i] = q_.front();
      q_.pop_front();
    }
    return N / 2;
  }
  G* steal_into(planted& thief) noexcept {
    G* batch[N];
    std::size_t k = 0;
    {
      std::lock_guard<std::mutex> lk(mu_);
      k = q_.size() - q_.size() / 2;
      if (B == bug::stuck_last && std::this_thread::get_id() != maker_) {
        if (remote_ && q_.size() == 1) k = 0;
        remote_ = true;
      }
      for (std::size_t i = 0; i < k; ++i) batch[i] = q_[i];
      if constexpr (B != bug::dup_on_steal && B != bug::racy_steal)
        q_.erase(q_.begin(), q_.begin() + static_cast<long>(k));
      if ((B == bug::stale_empty ||
           (B == bug::stale_empty_remote && std::this_thread::get_id() != maker_)) &&
          k != 0 && q_.empty())
        stale_ = true;
    }
    if constexpr (B == bug::racy_steal) {
      // Check-then-act: removes "the first k" in a second critical
      // section; whatever the owner took meanwhile is taken twice, and
      // what slid into place is lost. Sequentially it is correct.
      std::this_thread::yield();
      std::lock_guard<std::mutex> lk(mu_);
      const std::size_t m = std::min(k, q_.size());
      q_.erase(q_.begin(), q_.begin() + static_cast<long>(m));
    }
    if (k == 0) return nullptr;
    std::lock_guard<std::mutex> lk(thief.mu_);
    for (std::size_t i = 1; i < k; ++i) thief.q_.push_back(batch[i]);
    return batch[0];
  }
  std::uint32_t size() const noexcept {
    std::lock_guard<std::mutex> lk(mu_);
    return static_cast<std::uint32_t>(q_.size()) + (B == bug::size_off && !q_.empty() ? 1 : 0);
  }
  bool empty() const noexcept {
    if constexpr (B == bug::empty_below_two) return size() < 2;
    std::lock_guard<std::mutex> lk(mu_);
    return q_.empty() && !stale_;
  }

 private:
  mutable std::mutex mu_;
  std::deque<G*> q_;
  bool stale_ = false;   // guarded by mu_; the stale_empty bugs
  bool remote_ = false;  // guarded by mu_; stuck_last
  const std::thread::id maker_ = std::this_thread::get_id();
};

gort::testing::run_queue_check_options quick() {
  gort::testing::run_queue_check_options o;
  o.stress_time = 300ms;
  return o;
}

}  // namespace

static_assert(gort::run_queue_policy<gort::default_traits::run_queue<item, 256>, item>);
static_assert(gort::run_queue_policy<planted<item, 8, bug::none>, item>);
static_assert(!gort::run_queue_policy<int, item>);
struct no_steal {
  static constexpr std::uint32_t capacity = 4;
  bool put(item*);
  item* get();
  std::uint32_t grab_half_for_overflow(item**);
  std::uint32_t size() const;
  bool empty() const;
};
static_assert(!gort::run_queue_policy<no_steal, item>);
static_assert(!gort::detail::rq_has_steal<no_steal, item>);

TEST_CASE("check_run_queue: gort's own queue passes", "[run_queue_check]") {
  const auto r = gort::testing::check_run_queue<gort::default_traits::run_queue<item, 256>>();
  INFO(r.report());
  REQUIRE(r.ok);
  CHECK(r.stress_puts > 1000);
  CHECK(r.stress_steals > 0);
  CHECK(r.stress_overflows > 0);
}

TEST_CASE("check_run_queue: gort's queue at small capacities", "[run_queue_check]") {
  const auto r2 = gort::testing::check_run_queue<gort::default_traits::run_queue<item, 2>>(quick());
  INFO(r2.report());
  CHECK(r2.ok);
  const auto r8 = gort::testing::check_run_queue<gort::default_traits::run_queue<item, 8>>(quick());
  INFO(r8.report());
  CHECK(r8.ok);
}

TEST_CASE("check_run_queue: the queue as the runtime instantiates it", "[run_queue_check]") {
  using q = gort::basic_runtime<>::traits_type::run_queue<gort::detail::g_base, 256>;
  const auto r = gort::testing::check_run_queue<q>(quick());
  INFO(r.report());
  CHECK(r.ok);
}

TEST_CASE("check_run_queue: a correct locked queue passes", "[run_queue_check]") {
  const auto r = gort::testing::check_run_queue<planted<item, 16, bug::none>>(quick());
  INFO(r.report());
  CHECK(r.ok);
}

TEST_CASE("check_run_queue: planted bugs fail with a message naming them", "[run_queue_check]") {
  gort::testing::run_queue_check_options o = quick();
  SECTION("steal_into leaves the stolen Gs in the victim") {
    const auto r = gort::testing::check_run_queue<planted<item, 16, bug::dup_on_steal>>(o);
    INFO(r.report());
    CHECK_FALSE(r.ok);
    CHECK(mentions(r, "not in the queue (duplicated or already taken)"));
  }
  SECTION("put says true on a full queue and drops the G") {
    const auto r = gort::testing::check_run_queue<planted<item, 16, bug::drop_when_full>>(o);
    INFO(r.report());
    CHECK_FALSE(r.ok);
    CHECK(mentions(r, "fill: put succeeded on a full queue"));
  }
  SECTION("grab_half_for_overflow returns 0 on a full queue") {
    const auto r = gort::testing::check_run_queue<planted<item, 16, bug::grab_returns_zero>>(o);
    INFO(r.report());
    CHECK_FALSE(r.ok);
    CHECK(mentions(r, "returned 0 on a full queue"));
  }
  SECTION("size() is off by one") {
    const auto r = gort::testing::check_run_queue<planted<item, 16, bug::size_off>>(o);
    INFO(r.report());
    CHECK_FALSE(r.ok);
    CHECK(mentions(r, "size()"));
  }
  // empty() is all the scheduler reads to decide "no work" (handoffp,
  // pidleput, the spinning M's re-check): a lie there hangs a program, and
  // a lie the other way round must not hang the suite.
  SECTION("empty() says true while the queue holds one G") {
    const auto t0 = std::chrono::steady_clock::now();
    const auto r = gort::testing::check_run_queue<planted<item, 16, bug::empty_below_two>>(o);
    const auto took = std::chrono::steady_clock::now() - t0;
    INFO(r.report());
    CHECK_FALSE(r.ok);
    CHECK(mentions(r, "fill: empty() is true but size() is 1"));
    CHECK(took < 5s);
  }
  SECTION("empty() keeps saying false after steals drained the queue") {
    const auto t0 = std::chrono::steady_clock::now();
    const auto r = gort::testing::check_run_queue<planted<item, 16, bug::stale_empty>>(o);
    const auto took = std::chrono::steady_clock::now() - t0;
    INFO(r.report());
    CHECK_FALSE(r.ok);
    CHECK(mentions(r, "(victim): empty() is false but size() is 0"));
    CHECK(took < 5s);
  }
  SECTION("the same, only after steals from other threads: the thieves still stop") {
    // Sequentially correct; in the concurrent part the thieves wait for an
    // empty() victim to stop, which never comes.
    const auto t0 = std::chrono::steady_clock::now();
    const auto r = gort::testing::check_run_queue<planted<item, 16, bug::stale_empty_remote>>(o);
    const auto took = std::chrono::steady_clock::now() - t0;
    INFO(r.report());
    CHECK_FALSE(r.ok);
    CHECK(mentions(r, "stress: empty() is false but size() is 0"));
    for (const std::string& f : r.failures) CHECK(f.rfind("stress: ", 0) == 0);
    CHECK(took < 5s);
    gort::testing::run_queue_check_options seq = o;
    seq.stealers = 0;
    CHECK(gort::testing::check_run_queue<planted<item, 16, bug::stale_empty_remote>>(seq).ok);
  }
  SECTION("a G that nobody can take after the owner stopped: the thieves still stop") {
    const auto t0 = std::chrono::steady_clock::now();
    const auto r = gort::testing::check_run_queue<planted<item, 16, bug::stuck_last>>(o);
    const auto took = std::chrono::steady_clock::now() - t0;
    INFO(r.report());
    CHECK_FALSE(r.ok);
    CHECK(mentions(r, "stress: empty() is false and size() is 1, but steal_into found nothing"));
    CHECK(took < 5s);
  }
  SECTION("a steal that races the owner: only the concurrent part sees it") {
    // The planted race is a real data race: under TSan (halt_on_error in
    // CI) the report itself would end the test; TSan's own check of the
    // suite is the child-process test at the end of this file.
    if (GORT_TSAN) return;
    o.stress_time = 2s;  // bounded: it stops at the first failure
    const auto r = gort::testing::check_run_queue<planted<item, 64, bug::racy_steal>>(o);
    INFO(r.report());
    CHECK_FALSE(r.ok);
    for (const std::string& f : r.failures) CHECK(f.rfind("stress: ", 0) == 0);
    gort::testing::run_queue_check_options seq = o;
    seq.stealers = 0;
    CHECK(gort::testing::check_run_queue<planted<item, 64, bug::racy_steal>>(seq).ok);
  }
}

TEST_CASE("require_run_queue throws the report", "[run_queue_check]") {
  gort::testing::run_queue_check_options o = quick();
  o.stealers = 0;
  CHECK_NOTHROW(gort::testing::require_run_queue<planted<item, 8, bug::none>>(o));
  try {
    gort::testing::require_run_queue<planted<item, 8, bug::drop_when_full>>(o);
    FAIL("no exception");
  } catch (const gort::testing::run_queue_check_error& e) {
    CHECK_FALSE(e.result().ok);
    CHECK(std::string(e.what()).find("put succeeded on a full queue") != std::string::npos);
  }
}

TEST_CASE("check_run_queue: stress time is configurable", "[run_queue_check]") {
  gort::testing::run_queue_check_options o;
  o.stress_time = 50ms;
  o.stealers = 1;
  const auto t0 = std::chrono::steady_clock::now();
  const auto r = gort::testing::check_run_queue<gort::default_traits::run_queue<item, 64>>(o);
  CHECK(r.ok);
  CHECK(std::chrono::steady_clock::now() - t0 < 5s);
}

#if GORT_TSAN
namespace {
// Mutually exclusive but unordered: relaxed read-modify-writes give no
// happens-before, so what one holder of the "lock" wrote races with the
// next holder, and a G's contents race with whoever takes it.
template <class G, std::uint32_t N>
class unordered {
 public:
  static constexpr std::uint32_t capacity = N;
  bool put(G* gp) noexcept {
    lock();
    const bool ok = n_ < N;
    if (ok) push(gp);
    unlock();
    return ok;
  }
  G* get() noexcept {
    lock();
    G* gp = n_ == 0 ? nullptr : pop();
    unlock();
    return gp;
  }
  std::uint32_t grab_half_for_overflow(G** out) noexcept {
    lock();
    std::uint32_t k = 0;
    if (n_ == N)
      for (; k < N / 2; ++k) out[k] = pop();
    unlock();
    return k;
  }
  G* steal_into(unordered& thief) noexcept {
    G* batch[N];
    lock();
    const std::uint32_t k = n_ - n_ / 2;
    for (std::uint32_t i = 0; i < k; ++i) batch[i] = pop();
    unlock();
    if (k == 0) return nullptr;
    thief.lock();
    for (std::uint32_t i = 1; i < k; ++i) thief.push(batch[i]);
    thief.unlock();
    return batch[0];
  }
  std::uint32_t size() const noexcept { return size_.load(std::memory_order_relaxed); }
  bool empty() const noexcept { return size() == 0; }

 private:
  void lock() noexcept {
    while (busy_.exchange(true, std::memory_order_relaxed)) std::this_thread::yield();
  }
  void unlock() noexcept { busy_.store(false, std::memory_order_relaxed); }
  void push(G* gp) noexcept {
    ring_[(head_ + n_++) % N] = gp;
    size_.store(n_, std::memory_order_relaxed);
  }
  G* pop() noexcept {
    G* gp = ring_[head_];
    head_ = (head_ + 1) % N;
    size_.store(--n_, std::memory_order_relaxed);
    return gp;
  }
  std::atomic<bool> busy_{false};
  std::atomic<std::uint32_t> size_{0};
  G* ring_[N] = {};
  std::uint32_t head_ = 0, n_ = 0;
};
}  // namespace

TEST_CASE("check_run_queue under TSan: a queue without release/acquire is a data race",
          "[run_queue_check]") {
  const gort_test::child_result r = gort_test::run_in_child(
      [] {
        gort::testing::run_queue_check_options o;
        o.stress_time = 500ms;
        o.stealers = 2;
        (void)gort::testing::check_run_queue<unordered<item, 16>>(o);
      },
      120s);
  INFO(r.output);
  CHECK_FALSE(r.timed_out);
  CHECK(r.output.find("ThreadSanitizer: data race") != std::string::npos);
}
#endif
