// The kv example's server logic (docs/examples/kv.cpp): a Redis-protocol
// (RESP2) store and the per-connection handler. A header so that tests can
// run the same handler on gort::testing::sim_runtime's in-memory network
// (test/sim_net_test.cpp).
#pragma once

#include <array>
#include <charconv>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <gort/gort.hpp>

#include "lingering_close.hpp"

namespace kv {

class store {
 public:
  std::optional<std::string> get(const std::string& k) {
    shard& s = at(k);
    std::lock_guard<gort::mutex> lk(s.mu);
    auto it = s.map.find(k);
    if (it == s.map.end()) return std::nullopt;
    return it->second;
  }
  void set(const std::string& k, std::string v) {
    shard& s = at(k);
    std::lock_guard<gort::mutex> lk(s.mu);
    s.map.insert_or_assign(k, std::move(v));
  }
  bool del(const std::string& k) {
    shard& s = at(k);
    std::lock_guard<gort::mutex> lk(s.mu);
    return s.map.erase(k) != 0;
  }
  bool exists(const std::string& k) {
    shard& s = at(k);
    std::lock_guard<gort::mutex> lk(s.mu);
    return s.map.count(k) != 0;
  }
  // INCR: false if the value is not an integer (or would overflow).
  bool incr(const std::string& k, long long& out) {
    shard& s = at(k);
    std::lock_guard<gort::mutex> lk(s.mu);
    std::string& v = s.map[k];
    long long n = 0;
    if (!v.empty()) {
      auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
      if (ec != std::errc{} || p != v.data() + v.size()) return false;
    }
    if (n == INT64_MAX) return false;
    out = n + 1;
    v = std::to_string(out);
    return true;
  }

 private:
  struct shard {
    gort::mutex mu;
    std::unordered_map<std::string, std::string> map;  // mu
  };
  shard& at(const std::string& k) { return shards_[std::hash<std::string>{}(k) % shards_.size()]; }
  std::array<shard, 64> shards_;
};

// An incremental RESP2 command parser (arrays of bulk strings). The
// arguments parsed so far stay here between reads, so a large command that
// arrives in many reads is parsed once, not again from its start at every
// read.
class parser {
 public:
  static constexpr long long max_args = 1 << 20;
  static constexpr long long max_bulk = 64 << 20;
  static constexpr std::size_t max_command = std::size_t{512} << 20;  // all its bulk strings

  std::vector<std::string> args;  // the command, once next() returned 1

  // Parses from buf at pos, advancing pos past what it consumed (the
  // caller may drop it). Returns 1 with a whole command in args, 0 if more
  // input is needed, -1 on malformed input (err says why).
  int next(std::string_view buf, std::size_t& pos, std::string& err) {
    if (left_ < 0) {  // a new command: its array header
      long long n = 0;
      if (int r = read_line_int(buf, pos, '*', max_args, n, err); r <= 0) return r;
      if (n < 1) {
        err = "empty command";
        return -1;
      }
      args.clear();
      bytes_ = 0;
      left_ = n;
    }
    while (left_ > 0) {
      std::size_t p = pos;
      long long len = 0;
      if (int r = read_line_int(buf, p, '$', max_bulk, len, err); r <= 0) return r;
      if (len < 0) {
        err = "null bulk string in a command";
        return -1;
      }
      const auto ulen = static_cast<std::size_t>(len);
      if (bytes_ + ulen > max_command) {
        err = "command too large";
        return -1;
      }
      if (buf.size() - p < ulen + 2) return 0;  // the header is read again with the data
      if (buf[p + ulen] != '\r' || buf[p + ulen + 1] != '\n') {
        err = "bulk string not terminated by CRLF";
        return -1;
      }
      args.emplace_back(buf.substr(p, ulen));
      bytes_ += ulen;
      pos = p + ulen + 2;
      --left_;
    }
    left_ = -1;
    return 1;
  }

 private:
  static int read_line_int(std::string_view buf, std::size_t& p, char type, long long max,
                           long long& out, std::string& err) {
    if (p >= buf.size()) return 0;
    if (buf[p] != type) {
      err = std::string("expected '") + type + "', got '" + buf[p] + "'";
      return -1;
    }
    const std::size_t eol = buf.find("\r\n", p);
    if (eol == std::string_view::npos) return buf.size() - p > 32 ? (err = "line too long", -1) : 0;
    auto [q, ec] = std::from_chars(buf.data() + p + 1, buf.data() + eol, out);
    if (ec != std::errc{} || q != buf.data() + eol || out < -1 || out > max) {
      err = "invalid length";
      return -1;
    }
    p = eol + 2;
    return 1;
  }

  long long left_ = -1;    // bulk strings still to read; -1: before a command
  std::size_t bytes_ = 0;  // in args
};

// Client bytes echoed in an error line: CR and LF would end the line early
// and desynchronise the client's replies (Redis does the same).
inline std::string printable(std::string_view s) {
  std::string r(s.substr(0, 128));
  for (char& c : r)
    if (c == '\r' || c == '\n') c = ' ';
  return r;
}

inline void bulk(std::string& out, std::string_view s) {
  out += '$';
  out += std::to_string(s.size());
  out += "\r\n";
  out += s;
  out += "\r\n";
}

inline std::string upper(std::string s) {
  for (char& c : s)
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  return s;
}

// Answers one command into out. flush() writes out and empties it
// (false: the connection failed); called whenever out passes flush_at, so
// a reply is bounded by one value, not by what a command asks for (MGET
// of a large value many times).
inline constexpr std::size_t flush_at = 64 * 1024;

template <class Flush>
bool execute(store& db, const std::vector<std::string>& a, std::string& out, Flush&& flush) {
  const std::string cmd = upper(a[0]);
  const std::size_t n = a.size();
  auto arity_error = [&] {
    out += "-ERR wrong number of arguments for '" + printable(a[0]) + "' command\r\n";
    return true;
  };
  if (cmd == "PING") {
    if (n == 1) out += "+PONG\r\n";
    else if (n == 2) bulk(out, a[1]);
    else arity_error();
  } else if (cmd == "ECHO") {
    if (n != 2) return arity_error();
    bulk(out, a[1]);
  } else if (cmd == "SET") {
    if (n != 3) return arity_error();
    db.set(a[1], a[2]);
    out += "+OK\r\n";
  } else if (cmd == "GET") {
    if (n != 2) return arity_error();
    if (auto v = db.get(a[1])) bulk(out, *v);
    else out += "$-1\r\n";
  } else if (cmd == "DEL" || cmd == "EXISTS") {
    if (n < 2) return arity_error();
    long long count = 0;
    for (std::size_t i = 1; i < n; ++i) count += cmd == "DEL" ? db.del(a[i]) : db.exists(a[i]);
    out += ':' + std::to_string(count) + "\r\n";
  } else if (cmd == "INCR") {
    if (n != 2) return arity_error();
    long long v = 0;
    if (db.incr(a[1], v)) out += ':' + std::to_string(v) + "\r\n";
    else out += "-ERR value is not an integer or out of range\r\n";
  } else if (cmd == "MGET") {
    if (n < 2) return arity_error();
    out += '*' + std::to_string(n - 1) + "\r\n";
    for (std::size_t i = 1; i < n; ++i) {
      if (auto v = db.get(a[i])) bulk(out, *v);
      else out += "$-1\r\n";
      if (out.size() >= flush_at && !flush()) return false;
    }
  } else if (cmd == "MSET") {
    if (n < 3 || n % 2 == 0) return arity_error();
    for (std::size_t i = 1; i < n; i += 2) db.set(a[i], a[i + 1]);
    out += "+OK\r\n";
  } else {
    out += "-ERR unknown command '" + printable(a[0]) + "'\r\n";
  }
  return true;
}

// One connection: read, answer every complete command, write; until EOF,
// an error, or malformed input (answered with -ERR, then closed).
inline void handle(store& db, gort::net::conn& c) {
  c.set_nodelay(true);
  std::string in, out, err;
  parser ps;
  std::byte buf[16384];
  std::error_code ec;
  auto flush = [&] {
    c.write(gort::net::as_bytes(out), ec);
    out.clear();
    return !ec;
  };
  for (;;) {
    const std::size_t got = c.read(buf, ec);
    if (ec || got == 0) return;
    in.append(reinterpret_cast<const char*>(buf), got);
    std::size_t pos = 0;
    int r;
    while ((r = ps.next(in, pos, err)) == 1) {
      if (!execute(db, ps.args, out, flush)) return;
      if (out.size() >= flush_at && !flush()) return;
    }
    in.erase(0, pos);
    if (r < 0) out += "-ERR Protocol error: " + printable(err) + "\r\n";
    if (!out.empty() && !flush()) return;
    if (r < 0) {  // cannot resynchronise: close, after the client has the -ERR
      lingering_close(c);
      return;
    }
  }
}

}  // namespace kv
