// Helpers shared by gort's tests.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <string>

namespace gort_test {

struct child_result {
  int status = 0;       // as from waitpid
  std::string output;   // the child's stderr
  bool timed_out = false;

  bool killed_by(int sig) const {
    return WIFSIGNALED(status) && WTERMSIG(status) == sig;
  }
};

// Runs fn in a forked child with stderr captured; the child exits 0 if fn
// returns. Kills the child after `limit` (a test must never hang).
template <class F>
child_result run_in_child(F&& fn,
                          std::chrono::milliseconds limit = std::chrono::seconds(60)) {
  int fds[2];
  if (::pipe(fds) != 0) std::abort();
  pid_t pid = ::fork();
  if (pid < 0) std::abort();
  if (pid == 0) {
    // The child dies as it would without the test framework: Catch2's own
    // fatal-signal handlers are taken out.
    ::signal(SIGABRT, SIG_DFL);
    ::signal(SIGSEGV, SIG_DFL);
    ::signal(SIGBUS, SIG_DFL);
    ::close(fds[0]);
    ::dup2(fds[1], STDERR_FILENO);
    ::close(fds[1]);
    fn();
    std::_Exit(0);
  }
  ::close(fds[1]);
  child_result r;
  const auto deadline = std::chrono::steady_clock::now() + limit;
  char buf[4096];
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      r.timed_out = true;
      ::kill(pid, SIGKILL);
      break;
    }
    pollfd p{fds[0], POLLIN, 0};
    int n = ::poll(&p, 1, static_cast<int>(left.count()));
    if (n <= 0) continue;
    ssize_t got = ::read(fds[0], buf, sizeof buf);
    if (got <= 0) break;  // EOF: the child is gone (or closed stderr)
    r.output.append(buf, static_cast<std::size_t>(got));
  }
  ::close(fds[0]);
  ::waitpid(pid, &r.status, 0);
  return r;
}

}  // namespace gort_test
