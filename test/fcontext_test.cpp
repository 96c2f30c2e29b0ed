// ABI tests of the x86-64 context switch (detail/arch/x86_64/fcontext.hpp),
// on the bare switch functions and through the coroutine that wraps it.
#include <gort/detail/arch/fcontext.hpp>
#include <gort/detail/coroutine.hpp>

#include <catch2/catch.hpp>
#include <cfenv>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>

using gort::detail::basic_coroutine;
using gort::detail::coroutine;

namespace {

constexpr std::size_t kStack = 64 * 1024;

// Loads distinct magic values into every callee-saved register, calls
// fn(arg), then checks that each register still holds its value. Returns 0
// if all survived, else a bit per clobbered register. Written in asm so that
// the compiler cannot keep the values anywhere else.
extern "C" [[gnu::naked]] std::uint64_t callee_saved_survive(
    void (*)(void*), void*, std::uint64_t /*seed*/) {
  __asm__(
      "pushq %rbx\n\t"
      "pushq %rbp\n\t"
      "pushq %r12\n\t"
      "pushq %r13\n\t"
      "pushq %r14\n\t"
      "pushq %r15\n\t"
      "subq $8, %rsp\n\t"  // 16-byte alignment at the call
      "movq %rdi, %rax\n\t"
      "movq %rsi, %rdi\n\t"
      "movq %rdx, %rbx\n\t"
      "leaq 1(%rdx), %rbp\n\t"
      "leaq 2(%rdx), %r12\n\t"
      "leaq 3(%rdx), %r13\n\t"
      "leaq 4(%rdx), %r14\n\t"
      "leaq 5(%rdx), %r15\n\t"
      "movq %rdx, (%rsp)\n\t"  // keep the seed
      "call *%rax\n\t"
      "movq (%rsp), %rdx\n\t"
      "xorl %eax, %eax\n\t"
      "xorl %ecx, %ecx\n\t"
      "cmpq %rdx, %rbx\n\t setne %cl\n\t orq %rcx, %rax\n\t"
      "leaq 1(%rdx), %rsi\n\t cmpq %rsi, %rbp\n\t setne %cl\n\t shlq $1, %rcx\n\t orq %rcx, %rax\n\t xorl %ecx, %ecx\n\t"
      "leaq 2(%rdx), %rsi\n\t cmpq %rsi, %r12\n\t setne %cl\n\t shlq $2, %rcx\n\t orq %rcx, %rax\n\t xorl %ecx, %ecx\n\t"
      "leaq 3(%rdx), %rsi\n\t cmpq %rsi, %r13\n\t setne %cl\n\t shlq $3, %rcx\n\t orq %rcx, %rax\n\t xorl %ecx, %ecx\n\t"
      "leaq 4(%rdx), %rsi\n\t cmpq %rsi, %r14\n\t setne %cl\n\t shlq $4, %rcx\n\t orq %rcx, %rax\n\t xorl %ecx, %ecx\n\t"
      "leaq 5(%rdx), %rsi\n\t cmpq %rsi, %r15\n\t setne %cl\n\t shlq $5, %rcx\n\t orq %rcx, %rax\n\t"
      "addq $8, %rsp\n\t"
      "popq %r15\n\t"
      "popq %r14\n\t"
      "popq %r13\n\t"
      "popq %r12\n\t"
      "popq %rbp\n\t"
      "popq %rbx\n\t"
      "ret\n\t");
}

void suspend_thunk(void* c) { static_cast<coroutine*>(c)->suspend(); }
void resume_thunk(void* c) { static_cast<coroutine*>(c)->resume(); }

std::uint16_t read_x87_cw() {
  std::uint16_t cw;
  __asm__ volatile("fnstcw %0" : "=m"(cw));
  return cw;
}
void write_x87_cw(std::uint16_t cw) { __asm__ volatile("fldcw %0" : : "m"(cw)); }
std::uint32_t read_mxcsr() {
  std::uint32_t v;
  __asm__ volatile("stmxcsr %0" : "=m"(v));
  return v;
}

}  // namespace

TEST_CASE("callee-saved registers survive switches in both directions",
          "[fcontext]") {
  gort::stack_allocator alloc;
  std::uint64_t inside = ~0ull;
  coroutine c(alloc, kStack, [&](coroutine& self) {
    // Inside the coroutine: suspend with our magic values live; the caller
    // runs its own check with other values meanwhile.
    inside = callee_saved_survive(&suspend_thunk, &self, 0x1111000000000000ull);
  });
  const std::uint64_t outside =
      callee_saved_survive(&resume_thunk, &c, 0x2222000000000000ull);
  CHECK(outside == 0);
  c.resume();
  CHECK(c.done());
  CHECK(inside == 0);
}

namespace {

// The same check on the bare switch, for each of its four flavours (FP
// control words kept or not, resumed by jmp or by ret), called directly:
// two contexts take turns calling callee_saved_survive and switching away
// from inside it.
using jump_fn = gort_v0_transfer (*)(void*, void*) noexcept;

template <jump_fn Jump>
struct raw_flavour {
  static inline void* other = nullptr;         // the context to switch to
  static inline std::uint64_t inside = ~0ull;  // the fresh context's verdict

  static void thunk(void*) { other = Jump(other, nullptr).fctx; }
  static void entry(gort::detail::transfer t) noexcept {
    other = t.fctx;
    inside = callee_saved_survive(&thunk, nullptr, 0x3333000000000000ull);
    Jump(other, nullptr);  // back for good; never resumed
    std::abort();
  }
  static void run() {
    gort::stack_allocator alloc;
    gort::stack s = alloc.allocate(kStack);
    other = gort::detail::make_fcontext(s.hi, &entry);
    inside = ~0ull;
    // Switch in; the fresh context switches back from inside its own check.
    const std::uint64_t outside = callee_saved_survive(&thunk, nullptr, 0x4444000000000000ull);
    CHECK(outside == 0);
    // Switch in again: its check completes, then it switches back.
    Jump(other, nullptr);
    CHECK(inside == 0);
    alloc.deallocate(s);  // abandoned at its last switch; nothing to unwind
  }
};

// Each FP-keeping function keeps both control words per context: a fresh
// context sets its own rounding mode (MXCSR and x87) and x87 precision and
// switches away; the caller still has its own, changes them, and switches
// back in; the context finds its own again, and the caller its new ones
// after. (Compared as raw words: glibc's fegetround reads the x87 word only.)
template <jump_fn Jump>
struct fp_flavour {
  static constexpr std::uint32_t control = 0xffc0;  // MXCSR control bits
  static inline void* other = nullptr;
  static inline std::uint32_t inner_mx = 0, inner_mx_after = 0;
  static inline std::uint16_t inner_cw = 0, inner_cw_after = 0;

  static void entry(gort::detail::transfer t) noexcept {
    std::fesetround(FE_UPWARD);
    write_x87_cw(static_cast<std::uint16_t>(read_x87_cw() & ~0x0300));  // PC=00
    inner_mx = read_mxcsr() & control;
    inner_cw = read_x87_cw();
    other = Jump(t.fctx, nullptr).fctx;
    inner_mx_after = read_mxcsr() & control;
    inner_cw_after = read_x87_cw();
    Jump(other, nullptr);  // back for good; never resumed
    std::abort();
  }
  static void run() {
    gort::stack_allocator alloc;
    gort::stack s = alloc.allocate(kStack);
    const int outer_round = std::fegetround();
    const std::uint16_t outer_cw = read_x87_cw();
    const std::uint32_t outer_mx = read_mxcsr() & control;
    void* ctx = Jump(gort::detail::make_fcontext(s.hi, &entry), nullptr).fctx;
    CHECK((read_mxcsr() & control) == outer_mx);  // the context's words stayed there
    CHECK(read_x87_cw() == outer_cw);
    std::fesetround(FE_DOWNWARD);
    write_x87_cw(static_cast<std::uint16_t>((read_x87_cw() & ~0x0300) | 0x0200));  // PC=10
    const std::uint32_t mine_mx = read_mxcsr() & control;
    const std::uint16_t mine_cw = read_x87_cw();
    REQUIRE(mine_mx != inner_mx);
    REQUIRE(mine_cw != inner_cw);
    Jump(ctx, nullptr);
    CHECK(inner_mx_after == inner_mx);
    CHECK(inner_cw_after == inner_cw);
    CHECK((read_mxcsr() & control) == mine_mx);
    CHECK(read_x87_cw() == mine_cw);
    std::fesetround(outer_round);
    write_x87_cw(outer_cw);
    alloc.deallocate(s);
  }
};

}  // namespace

TEST_CASE("callee-saved registers survive every flavour of the bare switch",
          "[fcontext]") {
  SECTION("FP kept, jmp") { raw_flavour<&gort_v0_jump_fcontext>::run(); }
  SECTION("FP kept, ret") { raw_flavour<&gort_v0_jump_fcontext_ret>::run(); }
  SECTION("nofp, jmp") { raw_flavour<&gort_v0_jump_fcontext_nofp>::run(); }
  SECTION("nofp, ret") { raw_flavour<&gort_v0_jump_fcontext_nofp_ret>::run(); }
}

TEST_CASE("both FP-keeping flavours keep MXCSR and the x87 word per context",
          "[fcontext]") {
  SECTION("jmp") { fp_flavour<&gort_v0_jump_fcontext>::run(); }
  SECTION("ret") { fp_flavour<&gort_v0_jump_fcontext_ret>::run(); }
}

TEST_CASE("floating-point values survive a switch", "[fcontext]") {
  gort::stack_allocator alloc;
  double seen = 0;
  coroutine c(alloc, kStack, [&](coroutine& self) {
    volatile double a = 1.0 / 3.0;
    volatile long double b = 2.0L / 7.0L;
    volatile float f = 0.1f;
    self.suspend();
    seen = a + static_cast<double>(b) + f;
  });
  c.resume();
  volatile double noise = std::sqrt(17.0) * 3.0;  // use the FP unit here
  (void)noise;
  c.resume();
  CHECK(seen == Approx(1.0 / 3.0 + 2.0 / 7.0 + 0.1).epsilon(1e-6));
}

TEST_CASE("MXCSR rounding mode is per coroutine by default", "[fcontext]") {
  gort::stack_allocator alloc;
  const int outer = std::fegetround();
  int inner_after = -1;
  coroutine c(alloc, kStack, [&](coroutine& self) {
    std::fesetround(FE_UPWARD);
    self.suspend();
    inner_after = std::fegetround();
  });
  c.resume();
  // The coroutine's rounding mode did not leak into the caller.
  CHECK(std::fegetround() == outer);
  std::fesetround(FE_DOWNWARD);
  c.resume();
  CHECK(inner_after == FE_UPWARD);
  CHECK(std::fegetround() == FE_DOWNWARD);
  std::fesetround(outer);
}

TEST_CASE("MXCSR exception flags are per coroutine by default", "[fcontext]") {
  gort::stack_allocator alloc;
  constexpr std::uint32_t ze = 0x4;  // divide-by-zero, raised by SSE division
  std::feclearexcept(FE_ALL_EXCEPT);
  std::uint32_t inside_after = 0;
  coroutine c(alloc, kStack, [&](coroutine& self) {
    CHECK((read_mxcsr() & 0x3f) == 0);  // a fresh context starts with none raised
    volatile double z = 0.0;
    volatile double r = 1.0 / z;
    (void)r;
    self.suspend();
    inside_after = read_mxcsr();
  });
  c.resume();
  CHECK((read_mxcsr() & ze) == 0);  // the coroutine's flag stayed with it
  c.resume();
  CHECK((inside_after & ze) != 0);  // and it found it again
  std::feclearexcept(FE_ALL_EXCEPT);
}

TEST_CASE("nofp flavour leaves MXCSR exception flags to the thread", "[fcontext]") {
  gort::stack_allocator alloc;
  using nofp = basic_coroutine<false>;
  std::feclearexcept(FE_ALL_EXCEPT);
  nofp c(alloc, kStack, [&](nofp& self) {
    volatile double z = 0.0;
    volatile double r = 1.0 / z;  // raises FE_DIVBYZERO in SSE
    (void)r;
    self.suspend();
  });
  c.resume();
  CHECK((read_mxcsr() & 0x4) != 0);  // ZE visible to the caller after the switch
  c.resume();
  std::feclearexcept(FE_ALL_EXCEPT);
}

TEST_CASE("x87 control word is per coroutine by default", "[fcontext]") {
  gort::stack_allocator alloc;
  const std::uint16_t outer = read_x87_cw();
  const std::uint16_t single_precision = (outer & ~0x0300) | 0x0000;  // PC=00
  std::uint16_t inner_after = 0;
  coroutine c(alloc, kStack, [&](coroutine& self) {
    write_x87_cw(single_precision);
    self.suspend();
    inner_after = read_x87_cw();
  });
  c.resume();
  CHECK(read_x87_cw() == outer);
  c.resume();
  CHECK(inner_after == single_precision);
  CHECK(read_x87_cw() == outer);
}

TEST_CASE("nofp flavour shares the FP control state with the thread (Go's behaviour)",
          "[fcontext]") {
  gort::stack_allocator alloc;
  const int outer = std::fegetround();
  using nofp = basic_coroutine<false>;
  nofp c(alloc, kStack, [&](nofp& self) {
    std::fesetround(FE_TOWARDZERO);
    self.suspend();
  });
  c.resume();
  CHECK(std::fegetround() == FE_TOWARDZERO);  // leaked, as documented
  c.resume();
  std::fesetround(outer);
}

TEST_CASE("snprintf(%f) and over-aligned locals work on a coroutine stack",
          "[fcontext]") {
  gort::stack_allocator alloc;
  std::string text;
  std::uintptr_t addr = 1;
  coroutine c(alloc, kStack, [&](coroutine& self) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%f %.3e", 3.14159, 2.5e-10);
    text = buf;
    alignas(64) volatile char line[64] = {};
    line[0] = 1;
    addr = reinterpret_cast<std::uintptr_t>(&line[0]);
    self.suspend();
    alignas(32) volatile double v[4] = {1, 2, 3, 4};
    addr |= reinterpret_cast<std::uintptr_t>(&v[0]) % 32;
  });
  c.resume();
  CHECK(text == "3.141590 2.500e-10");
  CHECK(addr % 64 == 0);
  c.resume();
  CHECK(addr % 64 == 0);
}

TEST_CASE("make_fcontext leaves a 16-byte aligned stack at entry",
          "[fcontext]") {
  gort::stack_allocator alloc;
  std::uintptr_t frame_mod = 1;
  coroutine c(alloc, kStack, [&](coroutine&) {
    // Any 16-byte aligned type proves alignment of the frame.
    alignas(16) volatile char x[16] = {};
    frame_mod = reinterpret_cast<std::uintptr_t>(&x[0]) % 16;
  });
  c.resume();
  CHECK(frame_mod == 0);
}

TEST_CASE("nested coroutines resume and suspend in order", "[fcontext]") {
  gort::stack_allocator alloc;
  std::string trace;
  coroutine outer(alloc, kStack, [&](coroutine& o) {
    trace += "o1 ";
    coroutine inner(alloc, kStack, [&](coroutine& i) {
      trace += "i1 ";
      i.suspend();
      trace += "i2 ";
    });
    inner.resume();
    o.suspend();
    trace += "o2 ";
    inner.resume();
    CHECK(inner.done());
    trace += "o3";
  });
  outer.resume();
  trace += "m ";
  outer.resume();
  CHECK(outer.done());
  CHECK(trace == "o1 i1 m o2 i2 o3");
}

TEST_CASE("a million switches in a loop", "[fcontext]") {
  gort::stack_allocator alloc;
  long count = 0;
  coroutine c(alloc, kStack, [&](coroutine& self) {
    for (;;) {
      ++count;
      self.suspend();
    }
  });
  for (int i = 0; i < 500000; ++i) c.resume();
  CHECK(count == 500000);  // 500k round trips = 1M switches
}

TEST_CASE("throw and catch inside a coroutine, across a suspend",
          "[fcontext]") {
  gort::stack_allocator alloc;
  std::string caught;
  coroutine c(alloc, kStack, [&](coroutine& self) {
    try {
      self.suspend();
      throw std::runtime_error("inside");
    } catch (const std::runtime_error& e) {
      self.suspend();  // parked inside a catch block
      caught = e.what();
    }
  });
  c.resume();
  c.resume();
  try {
    throw std::logic_error("outside");
  } catch (const std::logic_error&) {
    c.resume();
  }
  CHECK(c.done());
  CHECK(caught == "inside");
}

TEST_CASE("an exception escaping the body is caught and rethrown by resume",
          "[fcontext]") {
  gort::stack_allocator alloc;
  coroutine c(alloc, kStack, [](coroutine&) { throw std::runtime_error("boom"); });
  CHECK_THROWS_WITH(c.resume(), "boom");
  CHECK(c.done());
  CHECK_FALSE(c.resume());
}

TEST_CASE("destroying a suspended coroutine unwinds its stack", "[fcontext]") {
  gort::stack_allocator alloc;
  struct flag_on_exit {
    bool* f;
    ~flag_on_exit() { *f = true; }
  };
  bool unwound = false;
  {
    coroutine c(alloc, kStack, [&](coroutine& self) {
      flag_on_exit g{&unwound};
      for (;;) self.suspend();
    });
    c.resume();
    CHECK_FALSE(unwound);
  }
  CHECK(unwound);
  CHECK(alloc.in_use() == 0);
}

TEST_CASE("a coroutine can be resumed from another thread", "[fcontext]") {
  gort::stack_allocator alloc;
  int steps = 0;
  coroutine c(alloc, kStack, [&](coroutine& self) {
    ++steps;
    self.suspend();
    ++steps;
  });
  c.resume();
  std::thread t([&] { c.resume(); });
  t.join();
  CHECK(steps == 2);
  CHECK(c.done());
}
