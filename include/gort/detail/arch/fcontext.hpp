// gort/detail/arch/fcontext.hpp: picks the context switch for the target.
// One ladder; every port adds a branch here and a folder beside x86_64/.
#pragma once

#if defined(__x86_64__) && defined(__linux__) && !defined(__ILP32__)
#include "x86_64/fcontext.hpp"
#else
#error "gort: unsupported target: gort's context switch exists only for x86-64 Linux (System V ABI, LP64)"
#endif
