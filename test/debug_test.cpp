// The debuggers' G list (gort/detail/debug.hpp): every G struct of every
// runtime is on debug_allgs while its runtime lives, and leaves with it.
// test/gdb/ checks what gdb makes of it; this checks the list itself.
#include <atomic>
#include <catch2/catch.hpp>
#include <cstdint>
#include <mutex>
#include <set>
#include <vector>

#include <gort/gort.hpp>

namespace {
using gort::detail::allg_node;
using gort::detail::debug_allgs;

std::uint64_t listed_count() {
  std::lock_guard<std::mutex> lk(debug_allgs.mu);
  return debug_allgs.count;
}

// The nodes on the list, walked as a debugger does (first, next).
std::set<const allg_node*> listed_nodes() {
  std::lock_guard<std::mutex> lk(debug_allgs.mu);
  std::set<const allg_node*> out;
  const allg_node* prev = nullptr;
  for (const allg_node* n = debug_allgs.first; n != nullptr; n = n->next) {
    REQUIRE(n->prev == prev);  // the back links agree
    out.insert(n);
    prev = n;
  }
  REQUIRE(out.size() == debug_allgs.count);
  return out;
}

// Spawns n Gs that each record their own node, and waits for them.
template <class Runtime>
std::vector<const allg_node*> spawn_and_record(Runtime& rt, int n) {
  std::vector<const allg_node*> nodes(static_cast<std::size_t>(n));
  rt.run([&] {
    gort::wait_group wg;
    for (int i = 0; i < n; ++i) {
      wg.add(1);
      gort::go([&, i] {
        nodes[static_cast<std::size_t>(i)] = &gort::detail::current_g()->allg;
        wg.done();
      });
    }
    wg.wait();
  });
  return nodes;
}
}  // namespace

TEST_CASE("debug_allgs: a runtime's G structs are listed while it lives", "[debug]") {
  const std::uint64_t before = listed_count();
  std::vector<const allg_node*> nodes;
  {
    gort::runtime rt(gort::config{.procs = 2});
    nodes = spawn_and_record(rt, 200);
    const auto listed = listed_nodes();
    for (const allg_node* n : nodes) CHECK(listed.count(n) == 1);
    // G structs are reused: at most one per G spawned (plus the main G).
    CHECK(listed_count() > before);
    CHECK(listed_count() <= before + 201);
  }
  CHECK(listed_count() == before);
  const auto listed = listed_nodes();
  for (const allg_node* n : nodes) CHECK(listed.count(n) == 0);
}

TEST_CASE("debug_allgs: two runtimes at once, destroyed in either order", "[debug]") {
  const std::uint64_t before = listed_count();
  auto a = std::make_unique<gort::runtime>(gort::config{.procs = 1});
  auto b = std::make_unique<gort::runtime>(gort::config{.procs = 2});
  const auto na = spawn_and_record(*a, 10);
  const auto nb = spawn_and_record(*b, 10);
  {
    const auto listed = listed_nodes();
    for (const allg_node* n : na) CHECK(listed.count(n) == 1);
    for (const allg_node* n : nb) CHECK(listed.count(n) == 1);
  }
  a.reset();  // the older runtime goes first: b's Gs stay listed
  {
    const auto listed = listed_nodes();
    for (const allg_node* n : na) CHECK(listed.count(n) == 0);
    for (const allg_node* n : nb) CHECK(listed.count(n) == 1);
  }
  b.reset();
  CHECK(listed_count() == before);
}
