// Scheduler benchmarks against Go's runtime, the same workloads in both
// (bench/go/sched_bench.go is the twin), alternated A B A B in one
// invocation.
//
//   yield   two Gs each call gort::yield() n times; ns per yield
//   spawn   one G spawns n Gs (spawn + run + exit; it never waits between
//           spawns); ns per G, until the last has run
//   skynet  a tree of Gs, fan-out 10, n leaves; each subtree's sum is
//           propagated upwards with atomics by the last child to finish
//           (no channels yet: the Go twin uses the same algorithm); ns per
//           leaf; the sum is checked
//
// Every run, gort's and Go's, is a child process (fork, or fork+exec of the
// twin), so each gets a fresh heap and its own peak RSS (from wait4).
//
// Usage: sched_bench [--twin PATH] [--rounds R] [--quick] [workload ...]
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <gort/gort.hpp>

namespace {

using clk = std::chrono::steady_clock;

struct sample {
  double ns = 0;
  long rss_kib = 0;
  long long check = 0;
  bool ok = false;
};

// ---- the gort workloads (run in a child) ----

double yield_bench(unsigned procs, long n, long long* check) {
  gort::runtime rt(gort::config{.procs = procs});
  gort::detail::note done;
  std::atomic<int> left{2};
  std::atomic<long long> yields{0};
  const auto t0 = clk::now();
  for (int g = 0; g < 2; ++g)
    rt.go([&] {
      for (long i = 0; i < n; ++i) gort::yield();
      yields.fetch_add(n);
      if (left.fetch_sub(1) == 1) done.wakeup();
    });
  done.sleep();
  const auto t1 = clk::now();
  *check = yields.load();
  return std::chrono::duration<double, std::nano>(t1 - t0).count() / (2.0 * n);
}

double spawn_bench(unsigned procs, long n, long long* check) {
  gort::runtime rt(gort::config{.procs = procs});
  gort::detail::note done;
  std::atomic<long> count{0};
  const auto t0 = clk::now();
  rt.go([&] {
    for (long i = 0; i < n; ++i)
      gort::go([&] {
        if (count.fetch_add(1, std::memory_order_relaxed) + 1 == n) done.wakeup();
      });
  });
  done.sleep();
  const auto t1 = clk::now();
  *check = count.load();
  return std::chrono::duration<double, std::nano>(t1 - t0).count() / n;
}

struct node {
  std::atomic<long long> sum{0};
  std::atomic<long long> pending{0};
  node* parent = nullptr;
};

struct skynet_ctx {
  gort::detail::note done;
  long long result = 0;
};

void finish(node* nd, skynet_ctx* ctx) {
  for (;;) {
    node* p = nd->parent;
    const long long s = nd->sum.load(std::memory_order_relaxed);
    delete nd;
    if (p == nullptr) {
      ctx->result = s;
      ctx->done.wakeup();
      return;
    }
    p->sum.fetch_add(s, std::memory_order_relaxed);
    if (p->pending.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
    nd = p;
  }
}

void skynet(node* parent, long long num, long long size, skynet_ctx* ctx) {
  if (size == 1) {
    auto* leaf = new node;
    leaf->sum.store(num, std::memory_order_relaxed);
    leaf->parent = parent;
    finish(leaf, ctx);
    return;
  }
  auto* nd = new node;
  nd->pending.store(10, std::memory_order_relaxed);
  nd->parent = parent;
  size /= 10;
  for (long long i = 0; i < 10; ++i) gort::go(skynet, nd, num + i * size, size, ctx);
}

double skynet_bench(unsigned procs, long n, long long* check) {
  gort::runtime rt(gort::config{.procs = procs});
  skynet_ctx ctx;
  const auto t0 = clk::now();
  rt.go(skynet, nullptr, 0LL, static_cast<long long>(n), &ctx);
  ctx.done.sleep();
  const auto t1 = clk::now();
  *check = ctx.result;
  return std::chrono::duration<double, std::nano>(t1 - t0).count() / n;
}

// ---- child-process plumbing ----

sample finish_child(pid_t pid, int rfd) {
  sample s;
  char buf[128] = {};
  ssize_t got = 0, r;
  while ((r = ::read(rfd, buf + got, sizeof buf - 1 - static_cast<size_t>(got))) > 0) got += r;
  ::close(rfd);
  int status = 0;
  rusage ru{};
  ::wait4(pid, &status, 0, &ru);
  s.rss_kib = ru.ru_maxrss;
  s.ok = WIFEXITED(status) && WEXITSTATUS(status) == 0 &&
         std::sscanf(buf, "%lf %lld", &s.ns, &s.check) == 2;
  return s;
}

sample run_gort(const std::string& w, unsigned procs, long n) {
  int fds[2];
  if (::pipe(fds) != 0) std::abort();
  pid_t pid = ::fork();
  if (pid == 0) {
    ::close(fds[0]);
    long long check = 0;
    double ns = w == "yield"   ? yield_bench(procs, n, &check)
                : w == "spawn" ? spawn_bench(procs, n, &check)
                               : skynet_bench(procs, n, &check);
    char out[128];
    const int len = std::snprintf(out, sizeof out, "%.3f %lld\n", ns, check);
    (void)!::write(fds[1], out, static_cast<size_t>(len));
    std::_Exit(0);
  }
  ::close(fds[1]);
  return finish_child(pid, fds[0]);
}

sample run_twin(const std::string& twin, const std::string& w, unsigned procs, long n) {
  int fds[2];
  if (::pipe(fds) != 0) std::abort();
  pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(fds[1], STDOUT_FILENO);
    ::close(fds[0]);
    ::close(fds[1]);
    const std::string p = std::to_string(procs), ns = std::to_string(n);
    ::execl(twin.c_str(), twin.c_str(), w.c_str(), p.c_str(), ns.c_str(), nullptr);
    std::_Exit(127);
  }
  ::close(fds[1]);
  return finish_child(pid, fds[0]);
}

struct stat_line {
  double median = 0, lo = 0, hi = 0;
  long rss = 0;
  bool ok = true;
};

stat_line summarize(const std::vector<sample>& v) {
  stat_line s;
  std::vector<double> ns;
  for (const auto& x : v) {
    s.ok = s.ok && x.ok;
    ns.push_back(x.ns);
    s.rss = std::max(s.rss, x.rss_kib);
  }
  std::sort(ns.begin(), ns.end());
  if (!ns.empty()) {
    s.median = ns[ns.size() / 2];
    s.lo = ns.front();
    s.hi = ns.back();
  }
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  std::string twin = GORT_BENCH_GO_TWIN;
  int rounds = 5;
  bool quick = false;
  std::vector<std::string> workloads;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--twin" && i + 1 < argc) twin = argv[++i];
    else if (a == "--rounds" && i + 1 < argc) rounds = std::atoi(argv[++i]);
    else if (a == "--quick") quick = true;
    else if (a == "yield" || a == "spawn" || a == "skynet") workloads.push_back(a);
    else {
      std::fprintf(stderr, "usage: sched_bench [--twin PATH] [--rounds R] [--quick] [yield|spawn|skynet ...]\n");
      return 2;
    }
  }
  if (rounds < 1) rounds = 1;
  if (workloads.empty()) workloads = {"yield", "spawn", "skynet"};
  const bool have_twin = !twin.empty() && ::access(twin.c_str(), X_OK) == 0;
  std::printf("sched_bench: each cell is the median of %d runs (min-max), gort and Go "
              "alternated A B A B, each run a fresh process; peak RSS per process\n",
              rounds);
  if (!have_twin) std::printf("  (Go twin not found%s%s: gort only)\n", twin.empty() ? "" : " at ", twin.c_str());
  std::printf("%-8s %5s %9s | %22s %9s | %22s %9s | %7s\n", "workload", "procs", "n",
              "gort ns/op", "RSS", "go ns/op", "RSS", "gort/go");
  int failures = 0;
  for (const auto& w : workloads) {
    const long n = w == "yield" ? (quick ? 100000 : 2000000) : (quick ? 100000 : 1000000);
    const long long want = w == "yield" ? 2LL * n : w == "spawn" ? n : n * (n - 1) / 2;
    for (unsigned procs : {1u, 2u}) {
      std::vector<sample> a, b;
      for (int r = 0; r < rounds; ++r) {
        a.push_back(run_gort(w, procs, n));
        if (have_twin) b.push_back(run_twin(twin, w, procs, n));
      }
      for (const auto& x : a)
        if (!x.ok || x.check != want) ++failures;
      const stat_line sa = summarize(a);
      char gcell[64], tcell[64] = "-", trss[32] = "-", ratio[32] = "-";
      std::snprintf(gcell, sizeof gcell, "%8.1f (%.1f-%.1f)", sa.median, sa.lo, sa.hi);
      if (have_twin) {
        const stat_line sb = summarize(b);
        std::snprintf(tcell, sizeof tcell, "%8.1f (%.1f-%.1f)", sb.median, sb.lo, sb.hi);
        std::snprintf(trss, sizeof trss, "%6ld MiB", sb.rss / 1024);
        std::snprintf(ratio, sizeof ratio, "%.2fx", sa.median / sb.median);
      }
      std::printf("%-8s %5u %9ld | %22s %5ld MiB | %22s %9s | %7s\n", w.c_str(), procs, n, gcell,
                  sa.rss / 1024, tcell, trss, ratio);
    }
  }
  if (failures != 0) {
    std::printf("sched_bench: %d gort runs failed or computed a wrong result\n", failures);
    return 1;
  }
  return 0;
}
