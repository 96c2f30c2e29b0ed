// Samples for docs/api/net.md, fs.md and signal.md (regions marked
// [name] ... [/name], checked by docs/check_examples.py).
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include <gort/gort.hpp>

int main() {
  gort::runtime rt;
  return rt.run([] {
    int failures = 0;
    {
      // [tcp]
      auto ln = gort::net::listen_tcp("127.0.0.1:0");  // port 0: ephemeral
      gort::go([addr = ln.local_addr().to_string()] {
        auto c = gort::net::dial_tcp(addr);
        c.write(gort::net::as_bytes("ping"));
      });
      gort::net::conn c = ln.accept();
      std::byte buf[4];
      c.read_full(buf);  // exactly 4 bytes
      // [/tcp]
      failures += std::string(reinterpret_cast<char*>(buf), 4) != "ping";
    }
    {
      // [file]
      char path[] = "/tmp/gort_api_fs_XXXXXX";
      ::close(::mkstemp(path));
      auto f = gort::fs::file::open(path, O_RDWR | O_TRUNC);
      f.write_at(gort::net::as_bytes("hello"), 0);
      std::byte buf[5];
      std::size_t n = f.read_at(buf, 0);  // 0 at end of file
      f.fsync();
      f.close();
      ::unlink(path);
      // [/file]
      failures += n != 5;
    }
    {
      auto ln = gort::net::listen_tcp("127.0.0.1:0");
      // [signal]
      gort::signal::notifier sig{SIGUSR1, SIGTERM};  // on a G
      gort::go([&] {
        sig.wait();   // parks until one of them arrives
        ln.close();   // e.g. stop accepting: the accept loop ends
      });
      // [/signal]
      ::raise(SIGUSR1);
      std::error_code ec;
      ln.accept(ec);  // ends once the signal G closed the listener
      failures += ec != std::errc::bad_file_descriptor;
    }
    return failures;
  });
}
