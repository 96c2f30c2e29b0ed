#!/usr/bin/env python3
"""Smoke test of the example servers: each answers a real client over a
socket and exits cleanly on SIGINT. Usage: servers_test.py ECHO HTTP_HELLO
(GORT_POLLER picks the backend)."""
import os
import signal
import socket
import subprocess
import sys
import time


def start(exe, procs):
    p = subprocess.Popen([exe, "--addr", "127.0.0.1:0", "--procs", str(procs)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = p.stdout.readline()  # "<name>: listening on 127.0.0.1:PORT (...)"
    if "listening on" not in line:
        p.kill()
        raise SystemExit(f"{exe}: no listening line: {line!r} {p.stderr.read()!r}")
    hostport = line.split("listening on ")[1].split()[0]
    host, port = hostport.rsplit(":", 1)
    return p, (host, int(port))


def stop(p, exe):
    p.send_signal(signal.SIGINT)
    try:
        out, err = p.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        p.kill()
        raise SystemExit(f"{exe}: did not exit on SIGINT")
    if p.returncode != 0 or "stopped" not in out:
        raise SystemExit(f"{exe}: exit {p.returncode}, out {out!r}, err {err!r}")


def recv_exactly(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise SystemExit(f"EOF after {len(buf)} of {n} bytes")
        buf += chunk
    return buf


def check_echo(exe, procs):
    p, addr = start(exe, procs)
    socks = [socket.create_connection(addr, timeout=10) for _ in range(20)]
    for i, s in enumerate(socks):
        msg = (f"hello {i} " * 1000).encode()
        s.sendall(msg)
        if recv_exactly(s, len(msg)) != msg:
            raise SystemExit("echo: wrong bytes")
    socks[0].shutdown(socket.SHUT_WR)
    if socks[0].recv(1) != b"":
        raise SystemExit("echo: no EOF after half-close")
    for s in socks:
        s.close()
    # A connection still open at SIGINT: the server waits for it; close it.
    idle = socket.create_connection(addr, timeout=10)
    idle.sendall(b"x")
    recv_exactly(idle, 1)
    idle.close()
    stop(p, exe)


def http_responses(s, n):
    data = b""
    want = b"HTTP/1.1 200 OK"
    while data.count(b"Hello, World!") < n:
        chunk = s.recv(65536)
        if not chunk:
            raise SystemExit(f"http: EOF after {data!r}")
        data += chunk
    if data.count(want) != n:
        raise SystemExit(f"http: {data!r}")
    return data


def check_http(exe, procs):
    p, addr = start(exe, procs)
    s = socket.create_connection(addr, timeout=10)
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    http_responses(s, 1)
    # Pipelining: three requests in one write, one with a body.
    s.sendall(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
              b"POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
              b"GET /c HTTP/1.1\r\nHost: x\r\n\r\n")
    http_responses(s, 3)
    # Connection: close is honoured.
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    http_responses(s, 1)
    if s.recv(1) != b"":
        raise SystemExit("http: not closed after Connection: close")
    s.close()
    # Garbage gets 400 and a close, and the server goes on.
    b = socket.create_connection(addr, timeout=10)
    b.sendall(b"NONSENSE\r\n\r\n")
    reply = b.recv(4096)
    if not reply.startswith(b"HTTP/1.1 400"):
        raise SystemExit(f"http: garbage got {reply!r}")
    b.close()
    s = socket.create_connection(addr, timeout=10)
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    http_responses(s, 1)
    s.close()
    # A bad request after good ones in one write: their replies first, in
    # order, then 400 and a close.
    b = socket.create_connection(addr, timeout=10)
    b.sendall(b"GET /1 HTTP/1.1\r\n\r\nGET /2 HTTP/1.1\r\n\r\nX\r\n\r\n")
    reply = read_to_eof(b)
    if reply.count(b"HTTP/1.1 200 OK") != 2 or not reply.rstrip().endswith(b"Connection: close"):
        raise SystemExit(f"http: good, good, bad got {reply!r}")
    b.close()
    # Bodies this server cannot frame, and bad lengths: 400.
    for bad in (b"POST / HTTP/1.1\r\nContent-Length: abc\r\n\r\n",
                b"POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
                b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"):
        b = socket.create_connection(addr, timeout=10)
        b.sendall(bad)
        reply = read_to_eof(b)
        if not reply.startswith(b"HTTP/1.1 400") or b"200 OK" in reply:
            raise SystemExit(f"http: {bad!r} got {reply!r}")
        b.close()
    # Connection: close on a request whose body comes in a later write.
    b = socket.create_connection(addr, timeout=10)
    b.sendall(b"POST / HTTP/1.1\r\nConnection: close\r\nContent-Length: 5\r\n\r\n")
    time.sleep(0.05)  # the head alone reaches the server first (the outcome must not depend on it)
    b.sendall(b"hello")
    reply = read_to_eof(b)
    if reply.count(b"HTTP/1.1 200 OK") != 1:
        raise SystemExit(f"http: close with a late body got {reply!r}")
    b.close()
    stop(p, exe)


def read_to_eof(s):
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            return data
        data += chunk


def resp(*args):
    out = b"*%d\r\n" % len(args)
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    return out


def check_kv(exe, procs):
    p, addr = start(exe, procs)
    s = socket.create_connection(addr, timeout=10)
    # Pipelined: every command in one write, replies in order.
    reqs = (resp("PING") + resp("SET", "k", "v1") + resp("GET", "k") + resp("GET", "nokey")
            + resp("INCR", "n") + resp("INCR", "n") + resp("INCR", "k")
            + resp("MSET", "a", "1", "b", "2") + resp("MGET", "a", "b", "zz")
            + resp("EXISTS", "a", "zz", "b") + resp("DEL", "a", "b", "zz")
            + resp("ECHO", "hi there") + resp("ping", "x") + resp("NOPE")
            + resp("GET"))
    want = (b"+PONG\r\n+OK\r\n$2\r\nv1\r\n$-1\r\n:1\r\n:2\r\n"
            b"-ERR value is not an integer or out of range\r\n+OK\r\n"
            b"*3\r\n$1\r\n1\r\n$1\r\n2\r\n$-1\r\n:2\r\n:2\r\n$8\r\nhi there\r\n"
            b"$1\r\nx\r\n-ERR unknown command 'NOPE'\r\n"
            b"-ERR wrong number of arguments for 'GET' command\r\n")
    s.sendall(reqs)
    got = b""
    while len(got) < len(want):
        chunk = s.recv(65536)
        if not chunk:
            raise SystemExit(f"kv: EOF after {got!r}")
        got += chunk
    if got != want:
        raise SystemExit(f"kv: got {got!r}\nwant {want!r}")
    # A command split across writes.
    whole = resp("SET", "big", "x" * 100000)
    for i in range(0, len(whole), 777):
        s.sendall(whole[i:i + 777])
    if recv_exactly(s, 5) != b"+OK\r\n":
        raise SystemExit("kv: split SET")
    s.sendall(resp("GET", "big"))
    if recv_exactly(s, len(b"$100000\r\n") + 100002) != b"$100000\r\n" + b"x" * 100000 + b"\r\n":
        raise SystemExit("kv: GET big")
    # A reply much larger than one write (MGET of a large value 40 times):
    # streamed, every byte in order.
    s.sendall(resp("MGET", *(["big"] * 40)))
    item = b"$100000\r\n" + b"x" * 100000 + b"\r\n"
    if recv_exactly(s, 5 + 40 * len(item)) != b"*40\r\n" + item * 40:
        raise SystemExit("kv: MGET big x40")
    # A protocol error with much more input behind it: the client still
    # reads the -ERR, then EOF (a plain close would reset the connection
    # and could drop the reply).
    b = socket.create_connection(addr, timeout=10)
    b.sendall(b"GARBAGE\r\n" + b"x" * 200000)
    reply = read_to_eof(b)
    if not reply.startswith(b"-ERR Protocol error"):
        raise SystemExit(f"kv: error with input behind it got {reply[:100]!r}")
    b.close()
    # CR and LF in an echoed command name are blanked: one error line, and
    # the next reply is still the next command's.
    s.sendall(resp(b"x\r\n:1") + resp("PING"))
    want = b"-ERR unknown command 'x  :1'\r\n+PONG\r\n"
    if recv_exactly(s, len(want)) != want:
        raise SystemExit("kv: CRLF in a command name")
    s.close()
    # Malformed input: -ERR, then a clean close; the server goes on.
    for bad in (b"GARBAGE\r\n", b"*2\r\n$3\r\nGETx\r\n", b"*-5\r\n", b"*1\r\n$-1\r\n"):
        b = socket.create_connection(addr, timeout=10)
        b.sendall(bad)
        reply = b""
        while True:
            chunk = b.recv(4096)
            if not chunk:
                break
            reply += chunk
        if not reply.startswith(b"-ERR Protocol error"):
            raise SystemExit(f"kv: {bad!r} got {reply!r}")
        b.close()
    s = socket.create_connection(addr, timeout=10)
    s.sendall(resp("GET", "k"))
    if recv_exactly(s, 8) != b"$2\r\nv1\r\n":
        raise SystemExit("kv: data lost after bad clients")
    s.close()
    stop(p, exe)


def check_flags(exe):
    for bad in ("abc", "0", "-1", "5000", "4294967297", "2x"):
        r = subprocess.run([exe, "--addr", "127.0.0.1:0", "--procs", bad],
                           capture_output=True, text=True, timeout=20)
        if r.returncode != 2 or "--procs" not in r.stderr:
            raise SystemExit(f"{exe} --procs {bad}: exit {r.returncode}, {r.stderr!r}")


def check_idle_client_stop(exe):
    # An idle keep-alive client does not keep the server alive after
    # SIGINT, and a second signal does not kill it.
    p, addr = start(exe, 2)
    idle = socket.create_connection(addr, timeout=10)
    p.send_signal(signal.SIGINT)
    time.sleep(0.1)
    p.send_signal(signal.SIGINT)
    stop(p, exe)  # a third; exit 0 with "stopped" within its timeout
    try:  # closed by the server (EOF), or reset if it was never accepted
        if idle.recv(1) != b"":
            raise SystemExit(f"{exe}: idle client got data at shutdown")
    except ConnectionResetError:
        pass
    idle.close()


def main():
    echo, http, kv = sys.argv[1], sys.argv[2], sys.argv[3]
    for procs in (1, 2, 4):
        check_echo(echo, procs)
        check_http(http, procs)
        check_kv(kv, procs)
    for exe in (echo, http, kv):
        check_flags(exe)
        check_idle_client_stop(exe)
    print("servers ok with", os.environ.get("GORT_POLLER", "default"))


if __name__ == "__main__":
    main()
