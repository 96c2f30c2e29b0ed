// The TCP server of docs/getting-started.md: an upper-casing echo server,
// one G per connection, and three clients in the same program (built and
// run by meson; docs/check_examples.py keeps the page's copy in step).
#include <gort/gort.hpp>

#include <atomic>
#include <cctype>
#include <cstdio>
#include <string>
#include <string_view>

// [tcp_server]
// One G per connection: read, upper-case, write back, until the peer closes.
void handle(gort::net::conn c) {
  std::byte buf[4096];
  for (;;) {
    std::error_code ec;
    const std::size_t n = c.read(buf, ec);  // parks this G until data arrives
    if (ec || n == 0) return;               // an error, or EOF
    for (std::size_t i = 0; i < n; ++i)
      buf[i] = std::byte(std::toupper(static_cast<unsigned char>(buf[i])));
    c.write(std::span(buf, n), ec);
    if (ec) return;
  }  // ~conn closes the socket
}

int serve_and_ask() {
  gort::runtime rt;
  return rt.run([] {
    auto ln = gort::net::listen_tcp("127.0.0.1:0");  // port 0: the kernel picks
    const std::string addr = ln.local_addr().to_string();
    gort::wait_group accepting;                      // ln must outlive the loop
    accepting.add(1);
    gort::go([&ln, &accepting] {                     // the accept loop
      for (;;) {
        std::error_code ec;
        gort::net::conn c = ln.accept(ec);
        if (ec) break;                               // the listener was closed
        gort::go(handle, std::move(c));
      }
      accepting.done();
    });

    gort::wait_group clients;
    std::atomic<int> ok{0};  // the clients run in parallel
    for (std::string_view word : {"gophers", "and", "ms"}) {
      clients.add(1);
      gort::go([&, word] {
        gort::net::conn c = gort::net::dial_tcp(addr);
        c.write(gort::net::as_bytes(word));
        std::string reply(word.size(), '\0');
        c.read_full(std::as_writable_bytes(std::span(reply)));
        std::printf("%.*s -> %s\n", static_cast<int>(word.size()), word.data(), reply.c_str());
        if (reply.size() == word.size() && std::isupper(static_cast<unsigned char>(reply[0]))) ++ok;
        clients.done();
      });
    }
    clients.wait();
    ln.close();          // ends the accept loop; the handlers end at EOF
    accepting.wait();    // before ln goes out of scope
    return ok.load();    // 3
  });
}
// [/tcp_server]

int main() { return serve_and_ask() == 3 ? 0 : 1; }
