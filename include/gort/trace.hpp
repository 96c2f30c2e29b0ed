// gort/trace.hpp: watching the scheduler.
//
//   gort::trace::recorder rec;
//   gort::runtime rt;
//   rt.set_trace(&rec);                        // events from now on
//   rt.run([] { ... });
//   rt.set_trace(nullptr);
//   for (const auto& e : rec.events()) ...     // spawn, run, park, ready, ...
//
//   GORT_TRACE=trace.json ./app               // Chrome trace JSON: open it in
//                                              // chrome://tracing or ui.perfetto.dev
//
// The events (detail/trace_event.hpp): spawn, run (on which M and P),
// park (with the wait reason), yield, exit, ready (and by whom), steal (from
// which P), handoff, m_start, m_stop. A runtime with no sink pays one
// relaxed load and a branch per event. A sink is called on the scheduler's
// hot paths from any M, often with scheduler locks held: it must not block
// or call into gort. A sink must outlive the runtime it is given to:
// set_trace(nullptr) does not wait for an M already inside the old sink.
#pragma once

#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

#include "detail/config.hpp"
#include "detail/trace_event.hpp"

GORT_BEGIN_NAMESPACE
namespace trace {

// Keeps every event in memory, for a test to assert on. Thread-safe.
class recorder final : public sink {
 public:
  void on_event(const event& e) noexcept override {
    std::lock_guard<std::mutex> lk(mu_);
    try {
      events_.push_back(e);
    } catch (...) {
      ++dropped_;  // out of memory: count, never throw into the scheduler
    }
  }
  std::vector<event> events() const {
    std::lock_guard<std::mutex> lk(mu_);
    return events_;
  }
  std::size_t count(kind k) const {
    std::lock_guard<std::mutex> lk(mu_);
    std::size_t n = 0;
    for (const event& e : events_) n += e.what == k;
    return n;
  }
  std::size_t dropped() const {
    std::lock_guard<std::mutex> lk(mu_);
    return dropped_;
  }
  void clear() {
    std::lock_guard<std::mutex> lk(mu_);
    events_.clear();
  }

 private:
  mutable std::mutex mu_;
  std::vector<event> events_;  // mu_
  std::size_t dropped_ = 0;    // mu_
};

// Writes Chrome's trace event format (a JSON array): one track per M, a
// span per stretch a G runs ("G 12"), instant events for the rest. What
// GORT_TRACE=file installs. Thread-safe; the file is complete once the
// writer is destroyed (the runtime's destructor, for GORT_TRACE).
class chrome_writer final : public sink {
 public:
  explicit chrome_writer(const std::string& path) : f_(std::fopen(path.c_str(), "w")) {
    if (f_ != nullptr) std::fputs("[\n", f_);
  }
  chrome_writer(const chrome_writer&) = delete;
  chrome_writer& operator=(const chrome_writer&) = delete;
  ~chrome_writer() override {
    if (f_ == nullptr) return;
    std::fputs("\n]\n", f_);
    std::fclose(f_);
  }
  bool ok() const noexcept { return f_ != nullptr; }

  void on_event(const event& e) noexcept override {
    if (f_ == nullptr) return;
    char buf[384];
    const double us = static_cast<double>(e.ns) / 1000.0;
    int n;
    switch (e.what) {
      case kind::run:
        n = std::snprintf(buf, sizeof buf,
                          R"({"name":"G %)" PRIu64 R"(","ph":"B","ts":%.3f,"pid":1,"tid":%)" PRId64
                          R"(,"args":{"p":%d}})",
                          e.g, us, e.m, e.p);
        break;
      case kind::park:
      case kind::yield:
      case kind::exit:
        n = std::snprintf(buf, sizeof buf,
                          R"({"ph":"E","ts":%.3f,"pid":1,"tid":%)" PRId64
                          R"(,"args":{"%s":"%s"}})",
                          us, e.m, to_string(e.what), escaped(e.reason).c_str());
        break;
      default: {
        char name[48];
        if (e.g != 0) std::snprintf(name, sizeof name, "%s G %" PRIu64, to_string(e.what), e.g);
        else std::snprintf(name, sizeof name, "%s", to_string(e.what));
        n = std::snprintf(buf, sizeof buf,
                          R"({"name":"%s","ph":"i","s":"t","ts":%.3f,"pid":1,"tid":%)" PRId64
                          R"(,"args":{"g2":%)" PRIu64 R"(,"p":%d,"reason":"%s"}})",
                          name, us, e.m, e.g2, e.p, escaped(e.reason).c_str());
        break;
      }
    }
    if (n <= 0) return;
    std::lock_guard<std::mutex> lk(mu_);
    if (!first_) std::fputs(",\n", f_);
    first_ = false;
    std::fwrite(buf, 1, static_cast<std::size_t>(n) < sizeof buf ? static_cast<std::size_t>(n) : sizeof buf - 1, f_);
  }

 private:
  // Wait reasons are gort's own static strings; escape anyway.
  static std::string escaped(const char* s) {
    std::string out;
    for (; s != nullptr && *s != '\0'; ++s) {
      if (*s == '"' || *s == '\\') out += '\\';
      if (static_cast<unsigned char>(*s) >= 0x20) out += *s;
    }
    return out;
  }

  std::FILE* f_;
  std::mutex mu_;
  bool first_ = true;  // mu_
};

}  // namespace trace
GORT_END_NAMESPACE
