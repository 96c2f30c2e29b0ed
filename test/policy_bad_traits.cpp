// Must NOT compile: a traits' run_queue without steal_into. Compiled by
// policy_compile_fail.py, which checks that the error names the missing
// member and where the concept is documented (gort/policy.hpp).
#include <gort/runtime.hpp>

#include <cstdint>

template <class G, std::uint32_t N>
struct no_steal_queue {
  static constexpr std::uint32_t capacity = N;
  bool put(G*) noexcept { return false; }
  G* get() noexcept { return nullptr; }
  std::uint32_t grab_half_for_overflow(G**) noexcept { return 0; }
  std::uint32_t size() const noexcept { return 0; }
  bool empty() const noexcept { return true; }
};

struct bad_traits : gort::default_traits {
  template <class G, std::uint32_t N>
  using run_queue = no_steal_queue<G, N>;
};

int main() {
  gort::basic_runtime<bad_traits> rt;
  return 0;
}
