// bench/harness.hpp: what every gort benchmark binary shares.
//
// A bench binary has two modes.
//
//   child mode   `<bench> --workload NAME --procs P --n N` runs one workload
//                once, checks its own result, and prints one line:
//                  RESULT workload=NAME procs=P n=N ns_per_op=X check=ok ...
//                (extra key=value fields follow, e.g. kib_per_g, and always
//                peak_rss_kib: VmHWM, the peak RSS of this program since its
//                exec; wait4's ru_maxrss would also count the pre-exec RSS of
//                the process that spawned it, e.g. a Python driver). When the
//                check fails it prints check=FAIL with got= and want= and NO
//                figure, and exits 1. bench/run and the standalone mode
//                below drive every binary (gort's and the twins) this way.
//   table mode   `<bench> [--rounds R] [--quick] [--twin PATH] [NAME...]`
//                runs each workload as a child process of its own (this
//                binary re-executed in child mode), alternating with the
//                twin (A B A B), and prints median, min-max and peak RSS
//                of each, and the ratio gort/twin.
//
// Each run is a fresh process: a fresh heap, its own peak RSS, no warm
// caches carried from one workload to the next.
#pragma once

#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

namespace bench {

using clk = std::chrono::steady_clock;

inline double ns_between(clk::time_point a, clk::time_point b) {
  return std::chrono::duration<double, std::nano>(b - a).count();
}

// What one run of a workload found.
struct outcome {
  double ns_per_op = 0;
  long long got = 0;   // the workload's own check: what it computed
  long long want = 0;  // and what it must be
  std::vector<std::pair<std::string, double>> extra;  // printed as key=value
};

using workload_fn = outcome (*)(unsigned procs, long n);

struct workload {
  const char* name;
  workload_fn fn;
  long n;                       // default size
  long quick_n;                 // --quick size
  std::vector<unsigned> procs;  // the P counts table mode runs
  const char* metric;           // the field compared: ns_per_op, kib_per_g
  const char* what;             // one line for --list
};

// A field of /proc/self/status in KiB (VmRSS, VmPTE, ...); -1 if missing.
inline long proc_status_kib(const char* field) {
  std::FILE* f = std::fopen("/proc/self/status", "r");
  if (f == nullptr) return -1;
  char line[256];
  long v = -1;
  const std::size_t len = std::strlen(field);
  while (std::fgets(line, sizeof line, f) != nullptr)
    if (std::strncmp(line, field, len) == 0 && line[len] == ':') {
      v = std::atol(line + len + 1);
      break;
    }
  std::fclose(f);
  return v;
}

// ---- child mode ----

inline const workload* find_workload(const std::vector<workload>& table, const std::string& name) {
  for (const auto& w : table)
    if (name == w.name) return &w;
  return nullptr;
}

// Parses --workload/--procs/--n; returns -1 when argv is not child mode,
// else the process exit code after running the workload.
inline int child_main(const std::vector<workload>& table, int argc, char** argv) {
  std::string name;
  long procs = 1, n = 0;
  bool child = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--workload" && i + 1 < argc) {
      name = argv[++i];
      child = true;
    } else if (a == "--procs" && i + 1 < argc) {
      procs = std::atol(argv[++i]);
    } else if (a == "--n" && i + 1 < argc) {
      n = std::atol(argv[++i]);
    }
  }
  if (!child) return -1;
  const workload* w = find_workload(table, name);
  if (w == nullptr || procs < 1 || n < 0) {
    std::fprintf(stderr, "%s: unknown workload '%s' or bad --procs/--n\n", argv[0], name.c_str());
    return 2;
  }
  if (n == 0) n = w->n;
  const outcome o = w->fn(static_cast<unsigned>(procs), n);
  if (o.got != o.want) {
    std::printf("RESULT workload=%s procs=%ld n=%ld check=FAIL got=%lld want=%lld\n", w->name,
                procs, n, o.got, o.want);
    std::fflush(stdout);
    return 1;
  }
  std::printf("RESULT workload=%s procs=%ld n=%ld ns_per_op=%.3f check=ok got=%lld", w->name,
              procs, n, o.ns_per_op, o.got);
  for (const auto& [k, v] : o.extra) std::printf(" %s=%.3f", k.c_str(), v);
  std::printf(" peak_rss_kib=%ld\n", proc_status_kib("VmHWM"));
  std::fflush(stdout);
  return 0;
}

// ---- table mode ----

struct sample {
  bool ok = false;
  double value = 0;  // the metric
  long rss_kib = 0;  // peak RSS of the program (its peak_rss_kib, else wait4)
};

// The value of `key` in a RESULT line, or false.
inline bool result_field(const std::string& out, const char* key, double* v) {
  const std::size_t r = out.find("RESULT ");
  if (r == std::string::npos) return false;
  const std::string k = std::string(" ") + key + "=";
  const std::size_t p = out.find(k, r);
  if (p == std::string::npos) return false;
  char* end = nullptr;
  *v = std::strtod(out.c_str() + p + k.size(), &end);
  return end != out.c_str() + p + k.size();
}

// Runs argv as a child process; its stdout must carry a RESULT line with
// check=ok and `metric`.
inline sample run_process(const std::vector<std::string>& args, const char* metric) {
  sample s;
  int fds[2];
  if (::pipe(fds) != 0) return s;
  const pid_t pid = ::fork();
  if (pid < 0) return s;
  if (pid == 0) {
    ::dup2(fds[1], STDOUT_FILENO);
    ::close(fds[0]);
    ::close(fds[1]);
    std::vector<char*> av;
    for (const auto& a : args) av.push_back(const_cast<char*>(a.c_str()));
    av.push_back(nullptr);
    ::execv(av[0], av.data());
    std::_Exit(127);
  }
  ::close(fds[1]);
  std::string out;
  char buf[512];
  ssize_t r;
  while ((r = ::read(fds[0], buf, sizeof buf)) > 0) out.append(buf, static_cast<std::size_t>(r));
  ::close(fds[0]);
  int status = 0;
  rusage ru{};
  ::wait4(pid, &status, 0, &ru);
  s.rss_kib = ru.ru_maxrss;
  s.ok = WIFEXITED(status) && WEXITSTATUS(status) == 0 &&
         out.find(" check=ok") != std::string::npos && result_field(out, metric, &s.value);
  if (double hwm = 0; result_field(out, "peak_rss_kib", &hwm) && hwm > 0)
    s.rss_kib = static_cast<long>(hwm);
  return s;
}

struct summary {
  double median = 0, lo = 0, hi = 0;
  long rss_kib = 0;
  int failed = 0;
};

inline summary summarize(const std::vector<sample>& v) {
  summary s;
  std::vector<double> xs;
  for (const auto& x : v) {
    if (!x.ok) {
      ++s.failed;
      continue;
    }
    xs.push_back(x.value);
    s.rss_kib = std::max(s.rss_kib, x.rss_kib);
  }
  std::sort(xs.begin(), xs.end());
  if (!xs.empty()) {
    s.median = xs.size() % 2 == 1 ? xs[xs.size() / 2]
                                  : (xs[xs.size() / 2 - 1] + xs[xs.size() / 2]) / 2;
    s.lo = xs.front();
    s.hi = xs.back();
  }
  return s;
}

inline std::string cell(const summary& s) {
  if (s.failed != 0 && s.median == 0) return "FAILED";
  char b[96];
  std::snprintf(b, sizeof b, "%.1f (%.1f-%.1f)%s", s.median, s.lo, s.hi, s.failed ? " !" : "");
  return b;
}

inline std::string rss_cell(long kib) {
  char b[32];
  if (kib >= 10 * 1024) std::snprintf(b, sizeof b, "%ld MiB", kib / 1024);
  else std::snprintf(b, sizeof b, "%ld KiB", kib);
  return b;
}

// Table mode. `self` is this binary (re-executed in child mode); `twin`
// may be empty (gort alone). Returns the exit code: 1 if any gort run
// failed its check.
inline int table_main(const std::vector<workload>& table, const char* title,
                      const char* twin_name, std::string twin, int argc, char** argv) {
  int rounds = 5;
  bool quick = false;
  std::vector<std::string> names;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--twin" && i + 1 < argc) {
      twin = argv[++i];
    } else if (a == "--no-twin") {
      twin.clear();
    } else if (a == "--rounds" && i + 1 < argc) {
      rounds = std::max(1, std::atoi(argv[++i]));
    } else if (a == "--quick") {
      quick = true;
    } else if (a == "--list") {
      for (const auto& w : table) std::printf("%-14s %s\n", w.name, w.what);
      return 0;
    } else if (find_workload(table, a) != nullptr) {
      names.push_back(a);
    } else {
      std::fprintf(stderr,
                   "usage: %s [--rounds R] [--quick] [--twin PATH | --no-twin] [--list] [workload...]\n"
                   "       %s --workload NAME --procs P --n N   (one run, one RESULT line)\n",
                   argv[0], argv[0]);
      return 2;
    }
  }
  if (names.empty())
    for (const auto& w : table) names.emplace_back(w.name);
  const bool have_twin = !twin.empty() && ::access(twin.c_str(), X_OK) == 0;
  std::printf("%s: median of %d runs (min-max); gort and %s alternated A B A B, each run a "
              "fresh process; RSS = highest VmHWM of any run\n",
              title, rounds, twin_name);
  if (!have_twin)
    std::printf("  (%s twin not found%s%s: gort only)\n", twin_name, twin.empty() ? "" : " at ",
                twin.c_str());
  std::printf("%-12s %5s %9s %-10s | %-24s %8s | %-24s %8s | %7s\n", "workload", "procs", "n",
              "metric", "gort", "RSS", twin_name, "RSS", "ratio");
  int failures = 0;
  const std::string self = "/proc/self/exe";
  char exe[4096];
  const ssize_t len = ::readlink(self.c_str(), exe, sizeof exe - 1);
  const std::string me = len > 0 ? std::string(exe, static_cast<std::size_t>(len)) : argv[0];
  for (const auto& name : names) {
    const workload& w = *find_workload(table, name);
    const long n = quick ? w.quick_n : w.n;
    for (unsigned procs : w.procs) {
      const std::vector<std::string> tail = {"--workload", w.name, "--procs",
                                             std::to_string(procs), "--n", std::to_string(n)};
      std::vector<std::string> a_args = {me}, b_args = {twin};
      a_args.insert(a_args.end(), tail.begin(), tail.end());
      b_args.insert(b_args.end(), tail.begin(), tail.end());
      std::vector<sample> a, b;
      for (int r = 0; r < rounds; ++r) {
        a.push_back(run_process(a_args, w.metric));
        if (have_twin) b.push_back(run_process(b_args, w.metric));
      }
      const summary sa = summarize(a);
      failures += sa.failed;
      std::string bc = "-", brss = "-", ratio = "-";
      if (have_twin) {
        const summary sb = summarize(b);
        bc = cell(sb);
        brss = rss_cell(sb.rss_kib);
        if (sa.median > 0 && sb.median > 0) {
          char r[32];
          std::snprintf(r, sizeof r, "%.2fx", sa.median / sb.median);
          ratio = r;
        }
      }
      std::printf("%-12s %5u %9ld %-10s | %-24s %8s | %-24s %8s | %7s\n", w.name, procs, n,
                  w.metric, cell(sa).c_str(), rss_cell(sa.rss_kib).c_str(), bc.c_str(),
                  brss.c_str(), ratio.c_str());
      std::fflush(stdout);
    }
  }
  if (failures != 0) {
    std::printf("%s: %d gort runs failed or computed a wrong result (no figure printed for them)\n",
                title, failures);
    return 1;
  }
  return 0;
}

}  // namespace bench
