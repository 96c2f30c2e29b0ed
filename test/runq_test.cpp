// Stress test of the lock-free local run queue (detail/runq.hpp): one owner
// putting and getting, several thieves stealing half at a time; every item
// is taken exactly once. Runs under TSan in .ci/run.
#include <gort/detail/runq.hpp>

#include <atomic>
#include <catch2/catch.hpp>
#include <memory>
#include <thread>
#include <vector>

namespace {
struct item {
  int id;
};
using queue = gort::detail::runq<item, 256>;
}  // namespace

TEST_CASE("runq: sequential FIFO, capacity and overflow half", "[runq]") {
  queue q;
  std::vector<item> items(300);
  for (int i = 0; i < 300; ++i) items[i].id = i;
  for (int i = 0; i < 256; ++i) REQUIRE(q.put(&items[i]));
  CHECK_FALSE(q.put(&items[256]));  // full
  CHECK(q.size() == 256);
  item* batch[128];
  CHECK(q.grab_half_for_overflow(batch) == 128);
  for (int i = 0; i < 128; ++i) CHECK(batch[i]->id == i);  // the oldest half
  CHECK(q.size() == 128);
  for (int i = 128; i < 256; ++i) CHECK(q.get()->id == i);
  CHECK(q.get() == nullptr);
  CHECK(q.empty());
}

TEST_CASE("runq: steal_into takes half and returns one", "[runq]") {
  queue victim, thief;
  std::vector<item> items(10);
  for (int i = 0; i < 10; ++i) {
    items[i].id = i;
    victim.put(&items[i]);
  }
  item* got = victim.steal_into(thief);
  REQUIRE(got != nullptr);
  CHECK(got->id == 4);       // the last of the 5 stolen
  CHECK(thief.size() == 4);  // 0..3 left in the thief's queue
  CHECK(victim.size() == 5);
  queue empty, other;
  CHECK(empty.steal_into(other) == nullptr);
}

TEST_CASE("runq: get_exclusive (one P: no thieves) keeps FIFO and wraps", "[runq]") {
  queue q;
  std::vector<item> items(1000);
  for (int i = 0; i < 1000; ++i) items[i].id = i;
  CHECK(q.get_exclusive() == nullptr);
  // Put 3, take up to 5: 1000 items through a 256-slot ring, so head and
  // tail wrap several times.
  int next_put = 0, next_get = 0;
  while (next_get < 1000) {
    for (int k = 0; k < 3 && next_put < 1000; ++k) REQUIRE(q.put(&items[next_put++]));
    for (int k = 0; k < 5 && next_get < next_put; ++k) {
      item* it = q.get_exclusive();
      REQUIRE(it != nullptr);
      REQUIRE(it->id == next_get++);
    }
    if (next_put == 1000)
      while (item* it = q.get_exclusive()) REQUIRE(it->id == next_get++);
  }
  CHECK(q.empty());
  // Mixed with get(): the two take from the same head.
  for (int i = 0; i < 4; ++i) q.put(&items[i]);
  CHECK(q.get()->id == 0);
  CHECK(q.get_exclusive()->id == 1);
  CHECK(q.get()->id == 2);
  CHECK(q.get_exclusive()->id == 3);
  CHECK(q.get_exclusive() == nullptr);
}

TEST_CASE("runq: get_exclusive with a concurrent size() reader", "[runq][stress]") {
  // sysmon and schedtrace read size() of a one-P runtime's queue while its
  // owner uses get_exclusive: no race (TSan), and never more than N.
  queue q;
  std::vector<item> items(256);
  std::atomic<bool> done{false};
  std::atomic<bool> bad{false};
  std::thread reader([&] {
    while (!done.load()) if (q.size() > 256) bad.store(true);
  });
  long taken = 0;
  for (int round = 0; round < 2000; ++round) {
    for (int i = 0; i < 100; ++i) q.put(&items[(round + i) % 256]);
    while (q.get_exclusive() != nullptr) ++taken;
  }
  done.store(true);
  reader.join();
  CHECK_FALSE(bad.load());
  CHECK(taken == 2000L * 100);
}

TEST_CASE("runq: owner vs concurrent stealers, nothing lost or duplicated",
          "[runq][stress]") {
  constexpr int n_items = 200000;
  const int n_thieves = GENERATE(1, 2, 4);
  std::vector<item> items(n_items);
  for (int i = 0; i < n_items; ++i) items[i].id = i;
  std::unique_ptr<std::atomic<int>[]> seen(new std::atomic<int>[n_items]);
  for (int i = 0; i < n_items; ++i) seen[i].store(0);
  queue victim;
  std::atomic<bool> done{false};
  std::atomic<long> taken{0};
  auto take = [&](item* it) {
    seen[it->id].fetch_add(1, std::memory_order_relaxed);
    taken.fetch_add(1, std::memory_order_relaxed);
  };
  std::vector<std::thread> thieves;
  for (int t = 0; t < n_thieves; ++t)
    thieves.emplace_back([&] {
      queue mine;
      while (!done.load(std::memory_order_acquire) || !victim.empty()) {
        if (item* it = victim.steal_into(mine)) {
          take(it);
          while (item* x = mine.get()) take(x);
        }
      }
    });
  int next = 0;
  while (next < n_items) {
    // Put a burst, then take a few back as the owner would.
    for (int k = 0; k < 64 && next < n_items; ++k) {
      if (!victim.put(&items[next])) {
        item* batch[128];
        if (std::uint32_t m = victim.grab_half_for_overflow(batch))
          for (std::uint32_t i = 0; i < m; ++i) take(batch[i]);
        continue;
      }
      ++next;
    }
    for (int k = 0; k < 16; ++k)
      if (item* it = victim.get()) take(it);
  }
  while (item* it = victim.get()) take(it);
  done.store(true, std::memory_order_release);
  for (auto& t : thieves) t.join();
  CHECK(taken.load() == n_items);
  int bad = 0;
  for (int i = 0; i < n_items; ++i)
    if (seen[i].load() != 1) ++bad;
  CHECK(bad == 0);
}
