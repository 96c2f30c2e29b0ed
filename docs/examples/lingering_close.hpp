// lingering_close(conn), for the example servers (server_common.hpp and
// kv_server.hpp, which tests also run on the in-memory network).
#pragma once

#include <chrono>
#include <cstddef>
#include <system_error>

#include <gort/gort.hpp>

// After a final error reply: closing a socket with unread input makes the
// kernel send a reset, which can reach the client before the reply does.
// So: end our side, read and drop what the client still sends (at most
// 1 MiB, for at most a second), then let the caller close.
inline void lingering_close(gort::net::conn& c) {
  std::error_code ec;
  c.shutdown_write(ec);
  if (ec) return;
  c.set_read_deadline(gort::now() + std::chrono::seconds(1));
  std::byte sink[16384];
  for (std::size_t total = 0; total < (std::size_t{1} << 20);) {
    const std::size_t n = c.read(sink, ec);
    if (ec || n == 0) return;
    total += n;
  }
}
