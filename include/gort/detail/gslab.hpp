// gort/detail/gslab.hpp: memory for G structs (traits' g_in_stack false),
// carved from 256 KiB chunks that each P takes from the kernel.
//
// Why not operator new: a G struct is ~300 bytes, and a growing program
// (skynet makes 400k Gs live at 16 Ps) allocates them on many threads at
// once. glibc gives each thread an arena whose heap grows by mprotect one
// page at a time, under the process's mmap lock, so the threads queued on
// that lock: 8% of skynet's CPU time at 16 Ps went to spinning on it
// (docs/life-of-an-m.md, "G structs"). Here one mmap serves ~850 Gs.
//
// A chunk is aligned to its size, so a slot finds its chunk by masking its
// address. The chunk's header counts the slots not yet given back: all of
// them when the chunk is made; one less per destroyed G (any thread), and
// the uncarved rest when the owning P writes the chunk off (release). The
// one that brings the count to zero unmaps the chunk: a chunk lives while
// any G carved from it does, and its memory goes back to the kernel when
// the last one is freed (the scheduler keeps up to gfree_global_max dead
// Gs for reuse and frees the rest, as before).
#pragma once

#include <sys/mman.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <new>

#include "config.hpp"

#if GORT_ASAN
#include <sanitizer/asan_interface.h>
#endif

GORT_BEGIN_NAMESPACE
namespace detail {

template <std::size_t Size, std::size_t Align>
class gslab {
  static_assert(Align <= 4096 && (Align & (Align - 1)) == 0, "gslab: bad alignment");

 public:
  static constexpr std::size_t chunk_bytes = std::size_t{256} << 10;
  static constexpr std::size_t slot_bytes = (Size + Align - 1) / Align * Align;

  gslab() = default;
  gslab(const gslab&) = delete;
  gslab& operator=(const gslab&) = delete;
  ~gslab() { release(); }

  // Owner only. Memory for one G; std::bad_alloc when the kernel refuses.
  void* carve() {
    if (bump_ == end_) refill();
    void* p = bump_;
    bump_ += slot_bytes;
#if GORT_ASAN
    __asan_unpoison_memory_region(p, slot_bytes);
#endif
    return p;
  }

  // Owner only: gives back the current chunk's uncarved slots (the P is
  // going away). The chunk stays mapped while Gs carved from it live.
  void release() noexcept {
    if (bump_ == nullptr) return;
    const auto rest = static_cast<std::uint32_t>((end_ - bump_) / slot_bytes);
    chunk* c = chunk_of(bump_ - 1);
    bump_ = end_ = nullptr;
    put(c, rest);
  }

  // Any thread: the slot p (carved by some P's gslab, its object already
  // destroyed) is free.
  static void free_slot(void* p) noexcept {
#if GORT_ASAN
    __asan_poison_memory_region(p, slot_bytes);  // a use after free reports
#endif
    put(chunk_of(static_cast<char*>(p)), 1);
  }

 private:
  struct chunk {
    std::atomic<std::uint32_t> live;
  };
  static constexpr std::size_t header_bytes =
      (sizeof(chunk) + Align - 1) / Align * Align;
  static constexpr std::uint32_t slots_per_chunk =
      static_cast<std::uint32_t>((chunk_bytes - header_bytes) / slot_bytes);
  static_assert(slots_per_chunk >= 1, "gslab: a G struct larger than a chunk");

  static chunk* chunk_of(char* p) noexcept {
    return reinterpret_cast<chunk*>(reinterpret_cast<std::uintptr_t>(p) & ~(chunk_bytes - 1));
  }

  static void put(chunk* c, std::uint32_t k) noexcept {
    if (k == 0) return;
    // acq_rel: the last one to give back sees every other user's writes
    // before it unmaps.
    if (c->live.fetch_sub(k, std::memory_order_acq_rel) != k) return;
#if GORT_ASAN
    __asan_unpoison_memory_region(c, chunk_bytes);  // the range may be reused
#endif
    ::munmap(c, chunk_bytes);
  }

  void refill() {
    // Twice the size, then the unaligned ends go back: the chunk is
    // aligned to its size (chunk_of).
    void* raw = ::mmap(nullptr, 2 * chunk_bytes, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED) throw std::bad_alloc();
    char* const base = static_cast<char*>(raw);
    char* const aligned = reinterpret_cast<char*>(
        (reinterpret_cast<std::uintptr_t>(base) + chunk_bytes - 1) & ~(chunk_bytes - 1));
    if (aligned != base) ::munmap(base, static_cast<std::size_t>(aligned - base));
    char* const tail = aligned + chunk_bytes;
    if (tail != base + 2 * chunk_bytes)
      ::munmap(tail, static_cast<std::size_t>(base + 2 * chunk_bytes - tail));
    chunk* c = ::new (static_cast<void*>(aligned)) chunk;
    c->live.store(slots_per_chunk, std::memory_order_relaxed);
    bump_ = aligned + header_bytes;
    end_ = bump_ + std::size_t{slots_per_chunk} * slot_bytes;
  }

  char* bump_ = nullptr;  // next slot to carve
  char* end_ = nullptr;   // end of the current chunk's slots
};

}  // namespace detail
GORT_END_NAMESPACE
