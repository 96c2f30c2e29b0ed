// gort/fs.hpp: files on the netpoller.
//
//   auto f = gort::fs::file::open("data.bin", O_RDWR | O_CREAT | O_TRUNC);
//   f.write_at(gort::net::as_bytes("hello"), 0);
//   std::byte buf[5];
//   f.read_at(buf, 0);
//   f.fsync();
//
// With the io_uring poller, reads, writes and fsync are io_uring requests:
// disk I/O parks only the G, never the M (Go blocks a thread per call).
// With epoll (files cannot be polled) each runs as a blocking call that
// hands the P to another M meanwhile, as gort::blocking does. open() runs
// as a blocking call in both, and takes regular files and block devices
// only (see there). Flags and modes are POSIX's (O_RDONLY, ...; O_CLOEXEC
// is always added). Must run on a G; errors asio-style.
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <system_error>
#include <utility>

#include "detail/config.hpp"
#include "detail/netpoll.hpp"
#include "detail/runtime2.hpp"
#include "net.hpp"

GORT_BEGIN_NAMESPACE
namespace fs {

class file : public net::detail_net::socket_base {
 public:
  file() noexcept = default;

  // Regular files and block devices only; anything else fails with
  // invalid_argument (is_a_directory for a directory) and is closed. With
  // epoll, file I/O is a blocking call that close() cannot interrupt, so a
  // FIFO or a terminal would hang it; pipes and sockets are gort::net's. A
  // FIFO opened O_RDONLY or O_WRONLY still waits in open(2) for its other
  // end before it is refused, as open(2) does.
  static file open(const std::string& path, int flags, mode_t mode, std::error_code& ec) {
    const char* why = nullptr;
    return open_file(path, flags, mode, ec, why);
  }
  static file open(const std::string& path, int flags = O_RDONLY, mode_t mode = 0644) {
    std::error_code ec;
    const char* why = nullptr;
    file f = open_file(path, flags, mode, ec, why);
    if (ec) {
      std::string what = "gort::fs::file::open(\"" + path + "\")";
      if (why != nullptr) what += std::string(": ") + why;
      net::detail_net::throw_error(ec, what);
    }
    return f;
  }

  // Reads up to buf.size() bytes at offset off; 0 at end of file.
  // off and off + buf.size() must fit in an off_t (INT64_MAX), or it fails
  // with invalid_argument and does nothing.
  std::size_t read_at(std::span<std::byte> buf, std::uint64_t off, std::error_code& ec) {
    if (!range_ok(off, buf.size(), ec)) return 0;
    return rw(detail::op_kind::pread, buf.data(), buf.size(), static_cast<std::int64_t>(off), ec);
  }
  std::size_t read_at(std::span<std::byte> buf, std::uint64_t off) {
    std::error_code ec;
    return check(read_at(buf, off, ec), ec, "read_at");
  }
  // Writes all of buf at offset off (the same limit as read_at).
  std::size_t write_at(std::span<const std::byte> buf, std::uint64_t off, std::error_code& ec) {
    if (!range_ok(off, buf.size(), ec)) return 0;
    return write_all(buf, static_cast<std::int64_t>(off), ec);
  }
  std::size_t write_at(std::span<const std::byte> buf, std::uint64_t off) {
    std::error_code ec;
    return check(write_at(buf, off, ec), ec, "write_at");
  }
  // At the file position (which they advance).
  std::size_t read(std::span<std::byte> buf, std::error_code& ec) {
    return rw(detail::op_kind::pread, buf.data(), buf.size(), -1, ec);
  }
  std::size_t read(std::span<std::byte> buf) {
    std::error_code ec;
    return check(read(buf, ec), ec, "read");
  }
  std::size_t write(std::span<const std::byte> buf, std::error_code& ec) {
    return write_all(buf, -1, ec);
  }
  std::size_t write(std::span<const std::byte> buf) {
    std::error_code ec;
    return check(write(buf, ec), ec, "write");
  }

  void fsync(std::error_code& ec) { rw(detail::op_kind::fsync, nullptr, 0, 0, ec); }
  void fsync() {
    std::error_code ec;
    check(rw(detail::op_kind::fsync, nullptr, 0, 0, ec), ec, "fsync");
  }

  // The file's size (fstat).
  std::uint64_t size(std::error_code& ec) const {
    ec.clear();
    struct stat st{};
    if (!check_open(ec)) return 0;
    // Held open as a read is: after close() the fd number may already be
    // another file's.
    with_fd(ec, [&](int fd) {
      if (::fstat(fd, &st) != 0) ec = {errno, std::system_category()};
    });
    return ec ? 0 : static_cast<std::uint64_t>(st.st_size);
  }
  std::uint64_t size() const {
    std::error_code ec;
    const auto n = size(ec);
    if (ec) net::detail_net::throw_error(ec, "gort::fs::file::size");
    return n;
  }

 private:
  file(detail::netpoller_base* np, detail::fd_desc* d) noexcept : socket_base(np, d) {}

  // why: for the throwing open(), what kind of file was refused.
  static file open_file(const std::string& path, int flags, mode_t mode, std::error_code& ec,
                        const char*& why) {
    ec.clear();
    auto* np = net::detail_net::poller("fs::file::open", ec);
    if (np == nullptr) return {};
    detail::sched_base* s = detail::current_g()->sched;
    s->entersyscall();
    int fd = ::open(path.c_str(), flags | O_CLOEXEC, mode);
    int e = errno;
    struct stat st{};
    if (fd >= 0 && ::fstat(fd, &st) != 0) {
      e = errno;
      ::close(fd);
      fd = -1;
    }
    s->exitsyscall();
    if (fd < 0) {
      ec = {e, std::system_category()};
      return {};
    }
    if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
      ::close(fd);
      why = S_ISDIR(st.st_mode)    ? "not a regular file (a directory)"
            : S_ISFIFO(st.st_mode) ? "not a regular file (a FIFO)"
            : S_ISCHR(st.st_mode)  ? "not a regular file (a character device)"
            : S_ISSOCK(st.st_mode) ? "not a regular file (a socket)"
                                   : "not a regular file";
      ec = std::make_error_code(S_ISDIR(st.st_mode) ? std::errc::is_a_directory
                                                    : std::errc::invalid_argument);
      return {};
    }
    int err = 0;
    detail::fd_desc* d = np->open_fd(fd, true, &err);
    if (d == nullptr) {
      ::close(fd);
      ec = {-err, std::system_category()};
      return {};
    }
    return file(np, d);
  }

  // off .. off + len must fit in an off_t: the pollers read a negative
  // offset as "at the file position".
  static bool range_ok(std::uint64_t off, std::size_t len, std::error_code& ec) {
    constexpr auto max = static_cast<std::uint64_t>(INT64_MAX);
    if (off <= max && len <= max - off) return true;
    ec = std::make_error_code(std::errc::invalid_argument);
    return false;
  }

  std::size_t rw(detail::op_kind k, void* buf, std::size_t len, std::int64_t off,
                 std::error_code& ec) {
    ec.clear();
    if (!check_open(ec)) return 0;
    detail::io_req r;
    r.kind = k;
    r.buf = buf;
    r.len = len;
    r.off = off;
    const std::int64_t n = np_->io(d_, r, 0);
    if (n < 0) {
      ec = {static_cast<int>(-n), std::system_category()};
      return 0;
    }
    return static_cast<std::size_t>(n);
  }
  std::size_t write_all(std::span<const std::byte> buf, std::int64_t off, std::error_code& ec) {
    std::size_t done = 0;
    while (done < buf.size()) {
      const std::size_t n = rw(detail::op_kind::pwrite, const_cast<std::byte*>(buf.data() + done),
                               buf.size() - done, off < 0 ? -1 : off + static_cast<std::int64_t>(done), ec);
      if (ec) return done;
      if (n == 0) {
        ec = std::make_error_code(std::errc::io_error);
        return done;
      }
      done += n;
    }
    return done;
  }
  static std::size_t check(std::size_t n, const std::error_code& ec, const char* what) {
    if (ec) net::detail_net::throw_error(ec, std::string("gort::fs::file::") + what);
    return n;
  }
};

}  // namespace fs
GORT_END_NAMESPACE
