// gort/detail/arch/x86_64/fcontext.hpp: the x86-64 System V context switch.
//
// A context is the stack pointer of a suspended execution; everything else it
// needs lives in a frame at that address. Three entry points:
//
//   make_fcontext(stack_hi, fn)  lays out a first frame on a fresh stack so
//                                that jumping to it calls fn(transfer).
//   jump_fcontext(to, data)      saves the caller's frame, switches to `to`
//                                and returns {from, data} on the other side.
//   jump_fcontext_nofp(to, data) the same without the FP control words.
//
// The frame a suspended context leaves at its stack pointer (64 bytes, the
// base is 16-byte aligned):
//
//   offset  size  contents
//   +0x00     4   MXCSR            (control bits are callee-saved by the ABI)
//   +0x04     2   x87 control word (callee-saved by the ABI)
//   +0x06     2   padding
//   +0x08     8   r12
//   +0x10     8   r13
//   +0x18     8   r14
//   +0x20     8   r15
//   +0x28     8   rbx
//   +0x30     8   rbp
//   +0x38     8   resume address   (pushed by the `call` into jump_fcontext)
//
// What the switch does NOT save, and why that is safe:
//   - caller-saved registers (rax, rcx, rdx, rsi, rdi, r8-r11, xmm0-15,
//     the x87 stack): jump_fcontext is an ordinary call, so the compiler has
//     already spilled whatever it needs across it.
//   - (MXCSR status flags, bits 0-5, are caller-saved by the ABI, but the
//     FP flavours restore them with the control bits: each context keeps
//     its own sticky exception flags, as each thread does. The nofp
//     flavours leave them, like the control bits, to the thread.)
//   - AVX upper halves, AVX-512 masks: caller-saved.
//   - the signal mask and sigaltstack: per thread, deliberately shared by all
//     contexts running on the thread (a per-switch sigprocmask would be a
//     syscall).
//   - the FS base (thread pointer): per thread. A context that migrates to
//     another thread sees that thread's thread_locals; see docs/limitations.
//   - the red zone: never live across a call.
//
// Two ways to resume: after the stack swap, the resume address can be
// reached with an indirect `jmp` or with `ret`. The CPU predicts `ret` from
// its return-stack buffer, whose top is the return address pushed by *this*
// side's call into the switch; it is right only when the other side
// suspended at the same call site. An indirect `jmp` is predicted from its
// history instead, but leaves this side's entry on the return-stack buffer,
// so every return after it is predicted one frame off.
//   - asymmetric switches (a caller and its coroutine; g0 and a G): `jmp`.
//     Measured: ~2.2 ns per switch in a ping-pong, against ~9-10 ns for `ret`.
//   - symmetric switches (G to G, both parked in the same scheduler
//     function): `ret`. Measured on a yield ping-pong: 16 ns per yield
//     against 33 ns with `jmp`, because the whole chain of returns back into
//     user code is then predicted.
//
// Why MXCSR is loaded always and the x87 control word only when it differs:
// both words are stored at every switch (stmxcsr, fnstcw). A context almost
// always resumes with the control bits it left (round-to-nearest, all
// exceptions masked), and fldcw costs a few ns on Intel cores, so the x87
// word is compared with the outgoing one and loaded only on a difference.
// MXCSR was compared the same way until it was measured on AMD Zen 4: there
// the load that reads back what stmxcsr just stored is not forwarded from
// the store, and the comparison cost 1.7 ns per switch (6.6 ns against
// Boost.Context's 5.5), while an unconditional ldmxcsr costs nothing
// measurable (4.9 ns). Loading MXCSR always also gives each context its own
// status flags, as each thread has. See docs/context-switch.md.
#pragma once

#include <cstddef>
#include <cstdint>

#include "../../config.hpp"

#if !defined(__x86_64__)
#error "gort: detail/arch/x86_64/fcontext.hpp included on a non-x86-64 target"
#endif

// Frame offsets, shared by the asm (stringified) and the C++ frame struct
// (pinned by static_assert below).
#define GORT_FCTX_FPCW 0x00
#define GORT_FCTX_X87 0x04
#define GORT_FCTX_R12 0x08
#define GORT_FCTX_R13 0x10
#define GORT_FCTX_R14 0x18
#define GORT_FCTX_R15 0x20
#define GORT_FCTX_RBX 0x28
#define GORT_FCTX_RBP 0x30
#define GORT_FCTX_RIP 0x38
#define GORT_FCTX_SIZE 0x40
#define GORT_FCTX_STR2(x) #x
#define GORT_FCTX_STR(x) GORT_FCTX_STR2(x)
#define GORT_FCTX_OFF(name) GORT_FCTX_STR(GORT_FCTX_##name)

// The unwinder stops at gort_v0_fcontext_start only if the compiler emits
// CFI directives; without them the zeroed return-address slot that
// make_fcontext leaves above the first frame stops frame-pointer walkers.
#if defined(__GCC_HAVE_DWARF2_CFI_ASM)
#define GORT_FCTX_CFI_UNDEFINED_RIP ".cfi_undefined rip\n"
#else
#define GORT_FCTX_CFI_UNDEFINED_RIP
#endif

extern "C" {

// What a jump delivers on the resumed side: the context that jumped (to be
// stored by the receiver, so that it can be resumed later) and the payload.
struct gort_v0_transfer {
  void* fctx;
  void* data;
};

// The pieces of the switch, shared by its four flavours (FP control words
// kept or not; resume by `jmp` or by `ret`, see "Two ways to resume" above).
#define GORT_FCTX_SAVE_GPRS                                                  \
  "movq %r12, " GORT_FCTX_OFF(R12) "(%rsp)\n\t" /* callee-saved GPRs */      \
  "movq %r13, " GORT_FCTX_OFF(R13) "(%rsp)\n\t"                              \
  "movq %r14, " GORT_FCTX_OFF(R14) "(%rsp)\n\t"                              \
  "movq %r15, " GORT_FCTX_OFF(R15) "(%rsp)\n\t"                              \
  "movq %rbx, " GORT_FCTX_OFF(RBX) "(%rsp)\n\t"                              \
  "movq %rbp, " GORT_FCTX_OFF(RBP) "(%rsp)\n\t"
#define GORT_FCTX_RESTORE_GPRS                                               \
  "movq " GORT_FCTX_OFF(R12) "(%rsp), %r12\n\t"                              \
  "movq " GORT_FCTX_OFF(R13) "(%rsp), %r13\n\t"                              \
  "movq " GORT_FCTX_OFF(R14) "(%rsp), %r14\n\t"                              \
  "movq " GORT_FCTX_OFF(R15) "(%rsp), %r15\n\t"                              \
  "movq " GORT_FCTX_OFF(RBX) "(%rsp), %rbx\n\t"                              \
  "movq " GORT_FCTX_OFF(RBP) "(%rsp), %rbp\n\t"
// The nofp jmp flavour writes and reads the same frame with push and pop
// instead of moves at offsets from a moved rsp. Measured in switch_bench's
// ping-pong (2-core Xeon VM, three builds, so three code layouts):
// 1.18-1.53 ns per switch against 1.41-1.94 with moves. The FP flavours
// gained nothing from it (2.31-2.57 ns against 2.33-2.49; yield and
// pingpong level), so they keep the moves.
#define GORT_FCTX_PUSH_GPRS                                                  \
  "pushq %rbp\n\t" "pushq %rbx\n\t" "pushq %r15\n\t" "pushq %r14\n\t"        \
  "pushq %r13\n\t" "pushq %r12\n\t" "leaq -8(%rsp), %rsp\n\t"
#define GORT_FCTX_POP_GPRS                                                   \
  "leaq 8(%rsp), %rsp\n\t" "popq %r12\n\t" "popq %r13\n\t" "popq %r14\n\t"  \
  "popq %r15\n\t" "popq %rbx\n\t" "popq %rbp\n\t"
// Entry: the frame goes below the return address the call pushed.
#define GORT_FCTX_OPEN_FRAME "leaq -" GORT_FCTX_OFF(RIP) "(%rsp), %rsp\n\t"
#define GORT_FCTX_SAVE_FP                                                    \
  "stmxcsr " GORT_FCTX_OFF(FPCW) "(%rsp)\n\t" /* MXCSR */                    \
  "fnstcw " GORT_FCTX_OFF(X87) "(%rsp)\n\t"   /* x87 control word */
// rax = the frame just saved (transfer.fctx); then the stack swap.
#define GORT_FCTX_SWAP "movq %rsp, %rax\n\t" "movq %rdi, %rsp\n\t"
// Load the incoming MXCSR, and the incoming x87 control word only if it
// differs from the outgoing one (label 2 is that slow path, 1 the way back).
#define GORT_FCTX_LOAD_FP                                                    \
  "ldmxcsr " GORT_FCTX_OFF(FPCW) "(%rsp)\n\t"     /* incoming MXCSR */      \
  "movzwl " GORT_FCTX_OFF(X87) "(%rsp), %ecx\n\t" /* incoming x87 cw */      \
  "cmpw " GORT_FCTX_OFF(X87) "(%rax), %cx\n\t"    /* vs outgoing */         \
  "jne 2f\n"                                                                 \
  "1:\n\t"
#define GORT_FCTX_X87_SLOW_PATH                                              \
  "2:\n\t"                                                                  \
  "fldcw " GORT_FCTX_OFF(X87) "(%rsp)\n\t"                                   \
  "jmp 1b\n\t"
// transfer.data in rdx (returned in rax:rdx) and, for a fresh context's
// entry, the transfer in rdi:rsi.
#define GORT_FCTX_RESULT "movq %rsi, %rdx\n\t" "movq %rax, %rdi\n\t"
#define GORT_FCTX_RESUME_JMP                                                 \
  "movq " GORT_FCTX_OFF(RIP) "(%rsp), %r8\n\t" /* resume address */          \
  "leaq " GORT_FCTX_OFF(SIZE) "(%rsp), %rsp\n\t" /* pop the frame */         \
  GORT_FCTX_RESULT "jmp *%r8\n\t"
#define GORT_FCTX_RESUME_RET                                                 \
  "leaq " GORT_FCTX_OFF(RIP) "(%rsp), %rsp\n\t" /* pop all but rip */        \
  GORT_FCTX_RESULT "ret\n\t"

// jump_fcontext(to, data) -> {from, data}.
// Saves the callee-saved registers, the MXCSR and the x87 control word on
// the current stack, switches to `to`, loads its MXCSR (and its x87 control
// word if that differs), and resumes it with {from, data}
// (returned from its own jump_fcontext call, or passed as the argument of a
// fresh context's entry function). Resumes with an indirect jmp. Never call
// with to == the current context.
[[gnu::naked]] inline gort_v0_transfer gort_v0_jump_fcontext(
    void* /*to*/, void* /*data*/) noexcept {
  __asm__(GORT_FCTX_OPEN_FRAME GORT_FCTX_SAVE_FP GORT_FCTX_SAVE_GPRS GORT_FCTX_SWAP
              GORT_FCTX_LOAD_FP GORT_FCTX_RESTORE_GPRS GORT_FCTX_RESUME_JMP
                  GORT_FCTX_X87_SLOW_PATH);
}

// The same, resuming with `ret`: for switches between two contexts that
// suspended at the same call site (G to G in the scheduler).
[[gnu::naked]] inline gort_v0_transfer gort_v0_jump_fcontext_ret(
    void* /*to*/, void* /*data*/) noexcept {
  __asm__(GORT_FCTX_OPEN_FRAME GORT_FCTX_SAVE_FP GORT_FCTX_SAVE_GPRS GORT_FCTX_SWAP
              GORT_FCTX_LOAD_FP GORT_FCTX_RESTORE_GPRS GORT_FCTX_RESUME_RET
                  GORT_FCTX_X87_SLOW_PATH);
}

// jump_fcontext_nofp(to, data): jump_fcontext without the FP control words
// (Go's behaviour: they belong to the thread). The frame keeps its FP slot
// so make_fcontext serves both; a context must be resumed by one FP flavour
// only, or the stale slot would be loaded.
[[gnu::naked]] inline gort_v0_transfer gort_v0_jump_fcontext_nofp(
    void* /*to*/, void* /*data*/) noexcept {
  __asm__(GORT_FCTX_PUSH_GPRS GORT_FCTX_SWAP GORT_FCTX_POP_GPRS
              "popq %r8\n\t" GORT_FCTX_RESULT "jmp *%r8\n\t");
}

[[gnu::naked]] inline gort_v0_transfer gort_v0_jump_fcontext_nofp_ret(
    void* /*to*/, void* /*data*/) noexcept {
  __asm__(GORT_FCTX_OPEN_FRAME GORT_FCTX_SAVE_GPRS GORT_FCTX_SWAP GORT_FCTX_RESTORE_GPRS
              GORT_FCTX_RESUME_RET);
}

// The first resume address of every context made by make_fcontext. Entered
// by a jump with rsp 16-byte aligned, rdi:rsi = the transfer, rbx = the entry
// function. The entry must never return: if it does, trap (ud2) rather than
// run off into whatever lies above the stack.
[[gnu::naked]] inline void gort_v0_fcontext_start() noexcept {
  __asm__(GORT_FCTX_CFI_UNDEFINED_RIP  // unwinders: the call chain ends here
          "call *%rbx\n\t"             // entry(transfer); never returns
          "ud2\n\t");                  // trap if it does
}

}  // extern "C"

GORT_BEGIN_NAMESPACE
namespace detail {

using transfer = gort_v0_transfer;
using fcontext_entry = void (*)(transfer) noexcept;

// The frame of a suspended context, as the asm above reads and writes it.
struct fcontext_frame {
  std::uint32_t mxcsr;
  std::uint16_t x87cw;
  std::uint16_t pad;
  void* r12;
  void* r13;
  void* r14;
  void* r15;
  void* rbx;
  void* rbp;
  void* rip;
};
static_assert(offsetof(fcontext_frame, mxcsr) == GORT_FCTX_FPCW);
static_assert(offsetof(fcontext_frame, x87cw) == GORT_FCTX_X87);
static_assert(offsetof(fcontext_frame, r12) == GORT_FCTX_R12);
static_assert(offsetof(fcontext_frame, r13) == GORT_FCTX_R13);
static_assert(offsetof(fcontext_frame, r14) == GORT_FCTX_R14);
static_assert(offsetof(fcontext_frame, r15) == GORT_FCTX_R15);
static_assert(offsetof(fcontext_frame, rbx) == GORT_FCTX_RBX);
static_assert(offsetof(fcontext_frame, rbp) == GORT_FCTX_RBP);
static_assert(offsetof(fcontext_frame, rip) == GORT_FCTX_RIP);
static_assert(sizeof(fcontext_frame) == GORT_FCTX_SIZE);
static_assert(sizeof(transfer) == 16, "transfer must come back in rax:rdx");

// Lays out the first frame of a context on the stack whose highest address
// is stack_hi; jumping to the result calls entry({from, data}) on that stack.
// The new context starts with the calling thread's FP control bits and no
// MXCSR exception flags raised. Uses
// GORT_FCTX_SIZE + 16 bytes of the stack.
inline void* make_fcontext(void* stack_hi, fcontext_entry entry) noexcept {
  auto top = reinterpret_cast<std::uintptr_t>(stack_hi) & ~std::uintptr_t{15};
  top -= 16;  // a zeroed return-address slot for frame-pointer walkers
  *reinterpret_cast<void**>(top) = nullptr;
  *reinterpret_cast<void**>(top + 8) = nullptr;
  auto* f = reinterpret_cast<fcontext_frame*>(top - sizeof(fcontext_frame));
  __asm__ volatile("stmxcsr %0" : "=m"(f->mxcsr));
  f->mxcsr &= ~std::uint32_t{0x3f};  // the thread's control bits, no exception flags yet
  __asm__ volatile("fnstcw %0" : "=m"(f->x87cw));
  f->pad = 0;
  f->r12 = f->r13 = f->r14 = f->r15 = nullptr;
  f->rbx = reinterpret_cast<void*>(entry);  // called by gort_v0_fcontext_start
  f->rbp = nullptr;                         // ends frame-pointer chains
  f->rip = reinterpret_cast<void*>(&gort_v0_fcontext_start);
  return f;
}

inline transfer jump_fcontext(void* to, void* data) noexcept {
  return gort_v0_jump_fcontext(to, data);
}
inline transfer jump_fcontext_nofp(void* to, void* data) noexcept {
  return gort_v0_jump_fcontext_nofp(to, data);
}

// How a switch resumes the other side (see "Two ways to resume").
enum class resume_by { jmp, ret };

// The flavour chosen at compile time.
template <bool PreserveFP, resume_by R>
inline transfer jump(void* to, void* data) noexcept {
  if constexpr (PreserveFP && R == resume_by::jmp) return gort_v0_jump_fcontext(to, data);
  else if constexpr (PreserveFP) return gort_v0_jump_fcontext_ret(to, data);
  else if constexpr (R == resume_by::jmp) return gort_v0_jump_fcontext_nofp(to, data);
  else return gort_v0_jump_fcontext_nofp_ret(to, data);
}

}  // namespace detail
GORT_END_NAMESPACE
