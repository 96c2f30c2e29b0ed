// gort/detail/trace_event.hpp: the scheduler's event stream (the types;
// gort/trace.hpp has the public sinks). A runtime with no sink installed
// pays one relaxed load and a branch per event.
#pragma once

#include <cstdint>

#include "config.hpp"

GORT_BEGIN_NAMESPACE
namespace trace {

enum class kind : std::uint8_t {
  spawn,    // g spawned by g2 (0: from outside the runtime) on P p
  run,      // g starts running on M m, P p
  park,     // g parks; reason says why ("chan receive", "IO wait (read)", ...)
  yield,    // g goes back to a run queue (gort::yield, or a blocking call: "syscall")
  exit,     // g's body returned
  ready,    // g made runnable by g2 (0: a timer, the netpoller or a thread)
  steal,    // P p took work from P g2 (g: the G it will run first)
  handoff,  // P p handed to another M (sysmon retake, blocking call, locked G)
  m_start,  // M m's thread starts
  m_stop,   // M m's thread exits (a locked G ended)
};

inline const char* to_string(kind k) noexcept {
  switch (k) {
    case kind::spawn: return "spawn";
    case kind::run: return "run";
    case kind::park: return "park";
    case kind::yield: return "yield";
    case kind::exit: return "exit";
    case kind::ready: return "ready";
    case kind::steal: return "steal";
    case kind::handoff: return "handoff";
    case kind::m_start: return "m_start";
    case kind::m_stop: return "m_stop";
  }
  return "?";
}

struct event {
  kind what;
  std::int64_t ns = 0;        // the runtime's clock (virtual in a sim_runtime)
  std::uint64_t g = 0;        // the G it is about (0: none)
  std::uint64_t g2 = 0;       // spawn: parent; ready: waker; steal: victim P
  std::int64_t m = 0;         // the M it happened on (0: not an M)
  int p = -1;                 // the P involved (-1: none)
  const char* reason = "";    // park: the wait reason (a static string)
};

// Receives events. Called on the scheduler's hot paths, from any M, often
// on g0 with scheduler locks held: must not block, park, allocate much or
// call back into gort. Thread-safe.
class sink {
 public:
  virtual void on_event(const event& e) noexcept = 0;
  virtual ~sink() = default;
};

}  // namespace trace
GORT_END_NAMESPACE
