// http_hello: HTTP/1.1 with keep-alive and pipelining; every request gets
// "Hello, World!". wrk can drive it:
//
//   ./build/http_hello --addr 127.0.0.1:8080 --procs 2 &
//   wrk -t2 -c64 -d10s http://127.0.0.1:8080/
//
// Requests are parsed just enough for a benchmark server: the request line
// and headers up to the blank line, Content-Length bodies skipped,
// "Connection: close" honoured. A malformed or oversized request, or one
// with a Transfer-Encoding body, gets 400 after the replies to the
// requests before it, and the connection is closed.
#include <algorithm>
#include <cctype>
#include <string>
#include <string_view>

#include "server_common.hpp"

namespace {

constexpr std::string_view ok_response =
    "HTTP/1.1 200 OK\r\nServer: gort\r\nContent-Type: text/plain\r\n"
    "Content-Length: 13\r\n\r\nHello, World!";
constexpr std::string_view bad_response =
    "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

bool iequals_prefix(std::string_view line, std::string_view name) {
  if (line.size() < name.size()) return false;
  for (std::size_t i = 0; i < name.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(line[i])) != name[i]) return false;
  return true;
}

// A Content-Length value: digits only (spaces around), at most 1 MiB;
// -1 if malformed or too large.
long content_length(std::string_view v) {
  while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
  while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
  if (v.empty() || v.size() > 7) return -1;
  long n = 0;
  for (char ch : v) {
    if (ch < '0' || ch > '9') return -1;
    n = n * 10 + (ch - '0');
  }
  return n > (1 << 20) ? -1 : n;
}

// Parses one request head at the start of buf. Returns its total size
// (head + body), 0 if incomplete, -1 if malformed (or a body this server
// cannot frame: Transfer-Encoding, conflicting Content-Lengths). close is
// set only for a complete request that asks for it.
long parse_request(std::string_view buf, bool& close) {
  const auto end = buf.find("\r\n\r\n");
  if (end == std::string_view::npos) return buf.size() > 64 * 1024 ? -1 : 0;
  const std::string_view head = buf.substr(0, end);
  const auto sp = head.find(' ');
  if (sp == std::string_view::npos || sp == 0) return -1;
  if (head.substr(0, head.find("\r\n")).find(" HTTP/1.") == std::string_view::npos) return -1;
  long body = -1;  // no Content-Length yet
  bool wants_close = false;
  std::size_t pos = head.find("\r\n");
  while (pos != std::string_view::npos) {
    const std::size_t next = head.find("\r\n", pos + 2);
    const std::string_view line = head.substr(pos + 2, next == std::string_view::npos ? head.npos : next - pos - 2);
    if (iequals_prefix(line, "content-length:")) {
      const long n = content_length(line.substr(15));
      if (n < 0 || (body >= 0 && n != body)) return -1;
      body = n;
    } else if (iequals_prefix(line, "transfer-encoding:")) {
      return -1;  // chunked bodies are not framed here: refuse, never misparse
    } else if (iequals_prefix(line, "connection:") &&
               line.find("close") != std::string_view::npos) {
      wants_close = true;
    }
    pos = next;
  }
  const long total = static_cast<long>(end + 4) + (body < 0 ? 0 : body);
  if (static_cast<long>(buf.size()) < total) return 0;
  if (wants_close) close = true;
  return total;
}

}  // namespace

int main(int argc, char** argv) {
  const server_flags f = parse_flags(argc, argv, "127.0.0.1:8080");
  return serve(f, "http_hello", [](gort::net::conn& c) {
    c.set_nodelay(true);
    std::string in, out;
    std::byte buf[16384];
    for (;;) {
      std::error_code ec;
      const std::size_t n = c.read(buf, ec);
      if (ec || n == 0) return;
      in.append(reinterpret_cast<const char*>(buf), n);
      bool close = false;
      std::size_t used = 0;
      for (;;) {  // every complete request in the buffer (pipelining)
        const long len = parse_request(std::string_view(in).substr(used), close);
        if (len < 0) {  // the replies earned before it go first, in order
          out += bad_response;
          c.write(gort::net::as_bytes(out), ec);
          if (!ec) lingering_close(c);
          return;
        }
        if (len == 0) break;
        used += static_cast<std::size_t>(len);
        out += ok_response;
        if (close) break;
      }
      in.erase(0, used);
      if (!out.empty()) {
        c.write(gort::net::as_bytes(out), ec);
        out.clear();
        if (ec) return;
      }
      if (close) return;
    }
  });
}
