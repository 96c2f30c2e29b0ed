// Shared by the example servers: --addr / --procs flags and a clean exit on
// SIGINT / SIGTERM (the signal G closes the listener; the accept loop ends;
// run() returns once every connection G has finished).
#pragma once

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include <gort/gort.hpp>

struct server_flags {
  std::string addr;
  unsigned procs = 0;
};

inline server_flags parse_flags(int argc, char** argv, const char* default_addr) {
  server_flags f{default_addr, 0};
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--addr") == 0 && i + 1 < argc) {
      f.addr = argv[++i];
    } else if (std::strcmp(argv[i], "--procs") == 0 && i + 1 < argc) {
      f.procs = static_cast<unsigned>(std::strtoul(argv[++i], nullptr, 10));
    } else {
      std::fprintf(stderr, "usage: %s [--addr host:port] [--procs N]\n", argv[0]);
      std::exit(2);
    }
  }
  return f;
}

// Runs accept_loop(listener) on a runtime until SIGINT/SIGTERM.
template <class Handler>
int serve(const server_flags& f, const char* name, Handler handle) {
  gort::runtime rt(gort::config{.procs = f.procs});
  return rt.run([&] {
    std::error_code ec;
    auto ln = gort::net::listen_tcp(f.addr, ec);
    if (ec) {
      std::fprintf(stderr, "%s: listen %s: %s\n", name, f.addr.c_str(), ec.message().c_str());
      return 1;
    }
    gort::signal::notifier sig{SIGINT, SIGTERM};
    gort::go([&] {
      std::error_code e;
      if (sig.wait(e) != 0) ln.close(e);  // a signal: stop accepting
    });
    std::printf("%s: listening on %s (%u Ps, %s)\n", name, ln.local_addr().to_string().c_str(),
                rt.procs(), gort::detail::current_g()->sched->netpoller()->name());
    std::fflush(stdout);
    gort::wait_group conns;
    for (;;) {
      gort::net::conn c = ln.accept(ec);
      if (ec) break;
      conns.add(1);
      gort::go([&conns, &handle](gort::net::conn c) {
        handle(c);
        conns.done();
      }, std::move(c));
    }
    sig.close();  // the signal G, if no signal came
    conns.wait();
    std::printf("%s: stopped\n", name);
    return 0;
  });
}
