// echo: a TCP echo server, one G per connection.
//
//   ./build/echo --addr 127.0.0.1:7000 --procs 2
#include "server_common.hpp"

int main(int argc, char** argv) {
  const server_flags f = parse_flags(argc, argv, "127.0.0.1:7000");
  return serve(f, "echo", [](gort::net::conn& c) {
    c.set_nodelay(true);
    std::byte buf[16384];
    for (;;) {
      std::error_code ec;
      const std::size_t n = c.read(buf, ec);
      if (ec || n == 0) return;  // EOF, reset, or closed
      c.write(std::span(buf, n), ec);
      if (ec) return;
    }
  });
}
