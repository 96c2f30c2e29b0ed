// echo: a TCP echo server, one G per connection (the handler:
// echo_server.hpp).
//
//   ./build/echo --addr 127.0.0.1:7000 --procs 2
#include "echo_server.hpp"
#include "server_common.hpp"

int main(int argc, char** argv) {
  const server_flags f = parse_flags(argc, argv, "127.0.0.1:7000");
  return serve(f, "echo", [](gort::net::conn& c) { echo::handle(c); });
}
