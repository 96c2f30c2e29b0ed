// gort/trace.hpp: the event stream (recorder), Chrome JSON (GORT_TRACE),
// and a deterministic runtime's trace, identical for the same seed.
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include <gort/gort.hpp>
#include <gort/testing/sim.hpp>

namespace {

void ping_pong_workload(int n) {
  gort::chan<int> ch(0);
  gort::wait_group wg;
  for (int i = 0; i < n; ++i) {
    wg.add(1);
    gort::go([&] {
      ch.recv();  // parks until main sends
      wg.done();
    });
  }
  for (int i = 0; i < n; ++i) ch.send(i);
  wg.wait();
}

}  // namespace

TEST_CASE("trace: a recorder sees every G's life in order", "[trace]") {
  const unsigned procs = GENERATE(1u, 2u, 4u);
  gort::trace::recorder rec;
  {
    gort::runtime rt(gort::config{.procs = procs});
    rt.set_trace(&rec);
    rt.run([] { ping_pong_workload(100); });
    // No set_trace(nullptr) here: the last receiver may still be between
    // its wg.done() and its exit when run() returns (TSan made that
    // visible); rec outlives rt, which waits for every G.
  }
  const auto ev = rec.events();
  CHECK(rec.count(gort::trace::kind::spawn) >= 101);  // main + 100
  CHECK(rec.count(gort::trace::kind::exit) >= 100);
  // Per G: spawn, then run, ..., exit last; a receiver parked for its
  // value ("chan receive") unless the value was already waiting.
  std::map<std::uint64_t, std::vector<gort::trace::kind>> life;
  for (const auto& e : ev)
    if (e.g != 0 && e.what != gort::trace::kind::steal) life[e.g].push_back(e.what);
  int complete = 0, parked = 0;
  for (const auto& [g, ks] : life) {
    if (ks.empty() || ks.front() != gort::trace::kind::spawn) continue;
    if (ks.back() != gort::trace::kind::exit) continue;
    ++complete;
    CHECK(ks[1] == gort::trace::kind::run);
    for (auto k : ks) parked += k == gort::trace::kind::park;
  }
  CHECK(complete >= 100);
  (void)parked;
  // Per M, a G stops (park, yield, exit) before the next one runs, on the
  // direct G-to-G switches too: a Chrome trace nests an M's B/E events.
  std::map<std::int64_t, bool> in_g;  // M -> between a run and its end
  int misnested = 0;
  for (const auto& e : ev) {
    if (e.m == 0) continue;
    const bool starts = e.what == gort::trace::kind::run;
    const bool ends = e.what == gort::trace::kind::park || e.what == gort::trace::kind::yield ||
                      e.what == gort::trace::kind::exit;
    if (!starts && !ends) continue;
    bool& running = in_g[e.m];
    if (starts == running) ++misnested;
    running = starts;
  }
  CHECK(misnested == 0);
  CHECK(rec.count(gort::trace::kind::park) >= 1);  // main, on its sends or the wait_group
  bool reason = false;
  for (const auto& e : ev)
    if (e.what == gort::trace::kind::park && std::string(e.reason).rfind("chan ", 0) == 0)
      reason = true;  // "chan send" (main, before the receivers run) or "chan receive"
  CHECK(reason);
}

TEST_CASE("trace: a deterministic runtime's trace is the same for the same seed", "[trace][sim]") {
  auto run = [](std::uint64_t seed) {
    gort::trace::recorder rec;
    {
      gort::testing::sim_runtime rt(seed);
      rt.set_trace(&rec);
      auto r = rt.run([] { ping_pong_workload(20); });
      REQUIRE(r.ok());
    }  // every G has exited: the trace is complete
    // The Gs' events; which thread (M) runs the one P is not part of the
    // schedule, so M starts and P hand-offs are left out.
    std::vector<std::tuple<int, std::uint64_t, std::uint64_t, std::int64_t, std::string>> out;
    for (const auto& e : rec.events())
      if (e.what != gort::trace::kind::m_start && e.what != gort::trace::kind::m_stop &&
          e.what != gort::trace::kind::handoff)
        out.emplace_back(static_cast<int>(e.what), e.g, e.g2, e.ns, e.reason);
    return out;
  };
  const auto a = run(9), b = run(9), c = run(10);
  CHECK(a.size() > 50);
  CHECK(a == b);
  CHECK(a != c);
}

TEST_CASE("trace: GORT_TRACE writes Chrome trace JSON", "[trace]") {
  char path[] = "/tmp/gort_trace_XXXXXX";
  const int fd = ::mkstemp(path);
  REQUIRE(fd >= 0);
  ::close(fd);
  ::setenv("GORT_TRACE", path, 1);
  {
    gort::runtime rt(gort::config{.procs = 2});
    rt.run([] { ping_pong_workload(10); });
  }  // the file is complete once the runtime is gone
  ::unsetenv("GORT_TRACE");
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  const std::string json = ss.str();
  ::unlink(path);
  REQUIRE(json.size() > 10);
  CHECK(json.rfind("[\n", 0) == 0);
  CHECK(json.find("\n]\n") == json.size() - 3);
  CHECK(json.find(R"("ph":"B")") != std::string::npos);
  CHECK(json.find(R"("ph":"E")") != std::string::npos);
  CHECK(json.find(R"("name":"spawn G )") != std::string::npos);
  // A park's reason: "chan send" when main's sends come first, "chan
  // receive" when the receivers do (either order happens; under TSan
  // with 2 Ps the receivers often win).
  CHECK((json.find("chan send") != std::string::npos ||
         json.find("chan receive") != std::string::npos));
  // Every line between the brackets is one object (no stray commas).
  std::istringstream lines(json);
  std::string line;
  int objects = 0;
  while (std::getline(lines, line)) {
    if (line == "[" || line == "]" || line.empty()) continue;
    if (line.back() == ',') line.pop_back();
    CHECK(line.front() == '{');
    CHECK(line.back() == '}');
    ++objects;
  }
  CHECK(objects > 40);
}
