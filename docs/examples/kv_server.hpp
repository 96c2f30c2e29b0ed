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

// Parses one RESP2 command (an array of bulk strings) from buf at pos.
// Returns 1 with args filled and pos advanced, 0 if more input is needed,
// -1 on malformed input (err says why).
inline int parse_command(std::string_view buf, std::size_t& pos,
                         std::vector<std::string>& args, std::string& err) {
  std::size_t p = pos;
  auto read_line_int = [&](char type, long long max, long long& out) -> int {
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
  };
  long long n = 0;
  if (int r = read_line_int('*', 1 << 20, n); r <= 0) return r;
  if (n < 1) {
    err = "empty command";
    return -1;
  }
  args.clear();
  for (long long i = 0; i < n; ++i) {
    long long len = 0;
    if (int r = read_line_int('$', 64 << 20, len); r <= 0) return r;
    if (len < 0) {
      err = "null bulk string in a command";
      return -1;
    }
    const auto ulen = static_cast<std::size_t>(len);
    if (buf.size() - p < ulen + 2) return 0;
    if (buf[p + ulen] != '\r' || buf[p + ulen + 1] != '\n') {
      err = "bulk string not terminated by CRLF";
      return -1;
    }
    args.emplace_back(buf.substr(p, ulen));
    p += ulen + 2;
  }
  pos = p;
  return 1;
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

inline void execute(store& db, const std::vector<std::string>& a, std::string& out) {
  const std::string cmd = upper(a[0]);
  const std::size_t n = a.size();
  auto arity_error = [&] { out += "-ERR wrong number of arguments for '" + a[0] + "' command\r\n"; };
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
    }
  } else if (cmd == "MSET") {
    if (n < 3 || n % 2 == 0) return arity_error();
    for (std::size_t i = 1; i < n; i += 2) db.set(a[i], a[i + 1]);
    out += "+OK\r\n";
  } else {
    out += "-ERR unknown command '" + a[0] + "'\r\n";
  }
}

// One connection: read, answer every complete command, write; until EOF,
// an error, or malformed input (answered with -ERR, then closed).
inline void handle(store& db, gort::net::conn& c) {
  c.set_nodelay(true);
  std::string in, out, err;
  std::vector<std::string> args;
  std::byte buf[16384];
  for (;;) {
    std::error_code ec;
    const std::size_t got = c.read(buf, ec);
    if (ec || got == 0) return;
    in.append(reinterpret_cast<const char*>(buf), got);
    std::size_t pos = 0;
    int r;
    while ((r = parse_command(in, pos, args, err)) == 1) execute(db, args, out);
    in.erase(0, pos);
    if (r < 0) out += "-ERR Protocol error: " + err + "\r\n";
    if (!out.empty()) {
      c.write(gort::net::as_bytes(out), ec);
      out.clear();
      if (ec) return;
    }
    if (r < 0) return;  // cannot resynchronise: close
  }
}

}  // namespace kv
