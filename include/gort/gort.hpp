// gort/gort.hpp: the umbrella header. Go's scheduler as a header-only C++20
// library: include this and link with -luring -pthread.
#pragma once

#include "detail/config.hpp"  // GORT_VERSION_* macros
#include "chan.hpp"
#include "fs.hpp"
#include "go.hpp"
#include "net.hpp"
#include "policy.hpp"
#include "select.hpp"
#include "signal.hpp"
#include "time.hpp"
#include "runtime.hpp"
#include "stack.hpp"
#include "sync.hpp"
#include "trace.hpp"
#include "traits.hpp"
