// Exception state across switches (detail/context.hpp keeps the C++
// runtime's per-thread exception globals per context).
#include <gort/detail/coroutine.hpp>

#include <catch2/catch.hpp>
#include <exception>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using gort::detail::coroutine;

TEST_CASE("coroutines parked inside catch blocks keep their own exception",
          "[coroutine]") {
  gort::stack_allocator alloc;
  constexpr int n = 16;
  std::vector<std::string> rethrown(n);
  std::vector<int> uncaught_inside(n, -1);
  std::vector<std::unique_ptr<coroutine>> cs;
  for (int i = 0; i < n; ++i) {
    cs.push_back(std::make_unique<coroutine>(alloc, 64 * 1024, [&, i](coroutine& self) {
      try {
        throw std::runtime_error("e" + std::to_string(i));
      } catch (...) {
        self.suspend();  // parked with a caught exception
        try {
          throw;  // rethrows *this* coroutine's exception
        } catch (const std::runtime_error& e) {
          rethrown[i] = e.what();
        }
        uncaught_inside[i] = std::uncaught_exceptions();
      }
    }));
  }
  for (auto& c : cs) c->resume();
  // Resume them from other threads, in reverse, while this thread holds an
  // exception of its own in a catch block.
  try {
    throw std::logic_error("main");
  } catch (const std::logic_error&) {
    std::thread t([&] {
      for (int i = n; i-- > 0;) cs[i]->resume();
    });
    t.join();
    CHECK(std::current_exception() != nullptr);
    try {
      throw;
    } catch (const std::logic_error& e) {
      CHECK(std::string(e.what()) == "main");
    }
  }
  for (int i = 0; i < n; ++i) {
    CHECK(rethrown[i] == "e" + std::to_string(i));
    CHECK(uncaught_inside[i] == 0);
    CHECK(cs[i]->done());
  }
  CHECK(std::current_exception() == nullptr);
}

TEST_CASE("uncaught_exceptions is per coroutine during unwinding",
          "[coroutine]") {
  gort::stack_allocator alloc;
  int seen_in_dtor = -1;
  int seen_in_other = -1;
  coroutine other(alloc, 64 * 1024, [&](coroutine& self) {
    for (;;) {
      seen_in_other = std::uncaught_exceptions();
      self.suspend();
    }
  });
  struct probe {
    int* out;
    coroutine* other;
    ~probe() {
      *out = std::uncaught_exceptions();
      // Switching away during unwinding must not lend our count to others.
      other->resume();
    }
  };
  coroutine c(alloc, 64 * 1024, [&](coroutine&) {
    try {
      probe p{&seen_in_dtor, &other};
      throw 1;
    } catch (int) {
    }
  });
  c.resume();
  CHECK(seen_in_dtor == 1);
  CHECK(seen_in_other == 0);
}
