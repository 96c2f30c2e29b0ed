// gort/detail/debug.hpp: what a debugger needs to find gort's Gs.
//
// gort's gdb extension (include/gort/gdb/gort_gdb.py; docs/debugging.md)
// lists every G of every runtime in the process and backtraces parked
// ones. It finds them here:
//
//   debug_allgs   every G struct alive in the process (Go's allgs, but
//                 process-wide: a program may hold several runtimes), as an
//                 intrusive doubly linked list through g_base::allg. A G
//                 struct joins when malg() makes it and leaves when it is
//                 freed (gfree_one) or its runtime is destroyed; dead Gs
//                 stay on it while they wait on a free list for reuse, as
//                 in Go. The cost: one
//                 uncontended lock per G struct made (G structs are reused,
//                 so not per spawn) and per G struct freed.
//
// The extension reads the list from a stopped process, so the names below
// are part of its contract: gort::v0::detail::debug_allgs, allg_registry::
// first, allg_node::next, g_base::allg. Change them together with
// gort_gdb.py.
//
// Auto-loading: every program that includes gort carries a
// .debug_gdb_scripts entry (an inline Python loader; the "MS" flags let the
// linker merge the copies from every translation unit into one). When gdb
// loads the program it runs the loader, which finds the header directory
// the program was compiled against through this file's debug info and
// sources gort/gdb/gort_gdb.py from there. gdb runs it only if the program
// lies in its `auto-load safe-path` (it says so otherwise, and how to allow
// it); `source <includedir>/gort/gdb/gort_gdb.py` always works. Define
// GORT_NO_GDB_SCRIPT to leave the entry out.
#pragma once

#include <cstdint>
#include <mutex>

#include "config.hpp"

GORT_BEGIN_NAMESPACE
namespace detail {

// A G struct's link on debug_allgs (a member of g_base).
struct allg_node {
  allg_node* next = nullptr;  // debug_allgs.mu
  allg_node* prev = nullptr;  // debug_allgs.mu
};

struct allg_registry {
  std::mutex mu;
  allg_node* first = nullptr;  // mu
  std::uint64_t count = 0;     // mu

  // mu held.
  void link(allg_node* n) noexcept {
    n->prev = nullptr;
    n->next = first;
    if (first != nullptr) first->prev = n;
    first = n;
    ++count;
  }
  // mu held; n is on the list.
  void unlink(allg_node* n) noexcept {
    if (n->prev != nullptr) n->prev->next = n->next;
    else first = n->next;
    if (n->next != nullptr) n->next->prev = n->prev;
    n->next = n->prev = nullptr;
    --count;
  }
};

// Every G struct in the process, for debuggers. Constant-initialised, so it
// is usable before main and from any runtime's constructor.
inline allg_registry debug_allgs;

}  // namespace detail
GORT_END_NAMESPACE

// The .debug_gdb_scripts entry: 0x04 (inline Python), a name line, the
// loader, a NUL. The loader must be plain ASCII without double quotes or
// backslashes (it sits in an assembler string).
#if !defined(GORT_NO_GDB_SCRIPT)
#define GORT_GDB_LOADER_LINE(s) ".ascii \"" s "\\n\"\n"
__asm__(
    ".pushsection \".debug_gdb_scripts\", \"MS\",@progbits,1\n"
    ".byte 4\n"
    GORT_GDB_LOADER_LINE("gort-gdb-loader")
    GORT_GDB_LOADER_LINE("import gdb, os")
    GORT_GDB_LOADER_LINE("def _gort_gdb_load():")
    GORT_GDB_LOADER_LINE("    if getattr(gdb, 'gort_loaded', False): return")
    GORT_GDB_LOADER_LINE("    sym = gdb.lookup_global_symbol('gort::v0::detail::debug_allgs')")
    GORT_GDB_LOADER_LINE("    if sym is None or sym.symtab is None: return  # built without -g")
    GORT_GDB_LOADER_LINE("    inc = os.path.dirname(os.path.dirname(sym.symtab.fullname()))")
    GORT_GDB_LOADER_LINE("    path = os.path.join(inc, 'gdb', 'gort_gdb.py')")
    GORT_GDB_LOADER_LINE("    if os.path.exists(path): gdb.execute('source ' + path)")
    GORT_GDB_LOADER_LINE("    else: print('gort: ' + path + ' not found; source gort/gdb/gort_gdb.py from gort headers to get info goroutines')")
    GORT_GDB_LOADER_LINE("_gort_gdb_load()")
    ".byte 0\n"
    ".popsection\n");
#undef GORT_GDB_LOADER_LINE
#endif
