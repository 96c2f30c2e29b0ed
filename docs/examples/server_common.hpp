// Shared by the example servers: --addr / --procs flags and a clean exit on
// SIGINT / SIGTERM: the signal G closes the listener, the accept loop ends,
// and connections still open after a grace period (idle keep-alive
// clients) are closed; run() returns once every connection G has finished.
#pragma once

#include <charconv>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <set>
#include <string>

#include <gort/gort.hpp>

#include "lingering_close.hpp"

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
      const char* v = argv[++i];
      const char* end = v + std::strlen(v);
      auto [p, ec] = std::from_chars(v, end, f.procs);
      if (ec != std::errc{} || p != end || f.procs < 1 || f.procs > 4096) {
        std::fprintf(stderr, "%s: --procs wants an integer in 1..4096, got '%s'\n", argv[0], v);
        std::exit(2);
      }
    } else {
      std::fprintf(stderr, "usage: %s [--addr host:port] [--procs N]\n", argv[0]);
      std::exit(2);
    }
  }
  return f;
}

// Accept errors that say "not now" rather than "this listener is done":
// out of fds or memory. Go's http.Server retries them with a backoff.
inline bool temporary_accept_error(const std::error_code& ec) {
  return ec == std::errc::too_many_files_open || ec == std::errc::too_many_files_open_in_system ||
         ec == std::errc::no_buffer_space || ec == std::errc::not_enough_memory;
}

// Runs handle(conn) in a G per connection, on a runtime, until SIGINT or
// SIGTERM.
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
    // The connections being served, so that shutdown can end idle ones.
    gort::mutex open_mu;
    std::set<gort::net::conn*> open;  // open_mu
    gort::chan<int> stop(1);          // a signal came
    gort::signal::notifier sig{SIGINT, SIGTERM};
    gort::wait_group sig_done;  // the signal G uses ln, stop and sig: wait for it
    sig_done.add(1);
    gort::go([&] {
      std::error_code e;
      if (sig.wait(e) != 0) {
        stop.send(1);
        ln.close(e);  // stop accepting
      }
      sig_done.done();
    });
    std::printf("%s: listening on %s (%u Ps, %s)\n", name, ln.local_addr().to_string().c_str(),
                rt.procs(), gort::detail::current_g()->sched->netpoller()->name());
    std::fflush(stdout);
    gort::wait_group conns;
    auto backoff = std::chrono::milliseconds(5);
    for (;;) {
      gort::net::conn c = ln.accept(ec);
      if (ec && temporary_accept_error(ec)) {
        std::fprintf(stderr, "%s: accept: %s; retrying in %lld ms\n", name, ec.message().c_str(),
                     static_cast<long long>(backoff.count()));
        gort::sleep_for(backoff);
        backoff = std::min(backoff * 2, std::chrono::milliseconds(1000));
        continue;
      }
      if (ec) break;
      backoff = std::chrono::milliseconds(5);
      conns.add(1);
      gort::go([&](gort::net::conn c) {
        {
          std::lock_guard<gort::mutex> lk(open_mu);
          open.insert(&c);
        }
        handle(c);
        {
          std::lock_guard<gort::mutex> lk(open_mu);
          open.erase(&c);
        }
        conns.done();
      }, std::move(c));
    }
    if (stop.try_recv()) {
      // A grace period for the requests in flight; then the connections
      // still open (idle keep-alive clients, a peer that never reads) are
      // closed: their Gs wake with an error and return.
      const auto deadline = gort::now() + std::chrono::seconds(1);
      while (conns.count() != 0 && gort::now() < deadline)
        gort::sleep_for(std::chrono::milliseconds(10));
      std::lock_guard<gort::mutex> lk(open_mu);
      std::error_code e;
      for (gort::net::conn* c : open) c->close(e);
    }
    sig.close();  // the signal G, if no signal came
    sig_done.wait();
    conns.wait();
    std::printf("%s: stopped\n", name);
    return 0;
  });
}
