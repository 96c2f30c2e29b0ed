// The echo example's handler (docs/examples/echo.cpp): one G per
// connection writes back what it reads. A header so that tests can run the
// same handler on gort::testing::sim_runtime's in-memory network
// (test/sim_net_test.cpp).
#pragma once

#include <gort/gort.hpp>

namespace echo {

inline void handle(gort::net::conn& c) {
  c.set_nodelay(true);
  std::byte buf[16384];
  for (;;) {
    std::error_code ec;
    const std::size_t n = c.read(buf, ec);
    if (ec || n == 0) return;  // EOF, reset, or closed
    c.write(std::span(buf, n), ec);
    if (ec) return;
  }
}

}  // namespace echo
