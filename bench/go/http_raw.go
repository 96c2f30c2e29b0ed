// http_raw: docs/examples/http_hello.cpp ported line for line to Go's net
// package, for bench/net_bench: the same minimal HTTP/1.1 parser (request
// line and headers up to the blank line, Content-Length bodies skipped,
// "Connection: close" honoured, 400 on garbage), the same pipelining, the
// same response bytes, one goroutine per connection with a 16 KiB read
// buffer. Where http_hello.go (net/http) compares gort with Go as people
// write it, this compares the two runtimes doing the same work.
//
//	./http_raw_go --addr 127.0.0.1:8080 --procs 2
//
// --procs N sets GOMAXPROCS (0: the CPU count). Prints
// "http_hello: listening on ADDR (N Ps, go net)"; stops on SIGINT / SIGTERM
// once every client has hung up.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

var okResponse = []byte("HTTP/1.1 200 OK\r\nServer: gort\r\nContent-Type: text/plain\r\n" +
	"Content-Length: 13\r\n\r\nHello, World!")
var badResponse = []byte("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")

var crlf = []byte("\r\n")

func iequalsPrefix(line []byte, name string) bool {
	if len(line) < len(name) {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := line[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != name[i] {
			return false
		}
	}
	return true
}

// parseRequest: the size of the request (head + body) at the start of buf,
// 0 if incomplete, -1 if malformed; sets *close.
func parseRequest(buf []byte, close *bool) int {
	end := bytes.Index(buf, []byte("\r\n\r\n"))
	if end < 0 {
		if len(buf) > 64*1024 {
			return -1
		}
		return 0
	}
	head := buf[:end]
	sp := bytes.IndexByte(head, ' ')
	if sp <= 0 {
		return -1
	}
	first := head
	if i := bytes.Index(head, crlf); i >= 0 {
		first = head[:i]
	}
	if !bytes.Contains(first, []byte(" HTTP/1.")) {
		return -1
	}
	body := 0
	pos := bytes.Index(head, crlf)
	for pos >= 0 {
		rest := head[pos+2:]
		next := bytes.Index(rest, crlf)
		line := rest
		if next >= 0 {
			line = rest[:next]
		}
		if iequalsPrefix(line, "content-length:") {
			v, err := strconv.Atoi(strings.TrimSpace(string(line[15:])))
			if err != nil || v < 0 || v > 1<<20 {
				return -1
			}
			body = v
		} else if iequalsPrefix(line, "connection:") && bytes.Contains(line, []byte("close")) {
			*close = true
		}
		if next < 0 {
			break
		}
		pos += 2 + next
	}
	total := end + 4 + body
	if len(buf) >= total {
		return total
	}
	return 0
}

func handle(c net.Conn) {
	defer c.Close()
	c.(*net.TCPConn).SetNoDelay(true)
	buf := make([]byte, 16384)
	var in, out []byte
	for {
		n, err := c.Read(buf)
		if n == 0 || err != nil {
			return
		}
		in = append(in, buf[:n]...)
		close := false
		used := 0
		for { // every complete request in the buffer (pipelining)
			l := parseRequest(in[used:], &close)
			if l < 0 {
				c.Write(badResponse)
				return
			}
			if l == 0 {
				break
			}
			used += l
			out = append(out, okResponse...)
			if close {
				break
			}
		}
		in = in[:copy(in, in[used:])]
		if len(out) > 0 {
			_, err := c.Write(out)
			out = out[:0]
			if err != nil {
				return
			}
		}
		if close {
			return
		}
	}
}

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "host:port to listen on (port 0: any)")
	procs := flag.Int("procs", 0, "GOMAXPROCS (0: the CPU count)")
	flag.Parse()
	if *procs > 0 {
		runtime.GOMAXPROCS(*procs)
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintf(os.Stderr, "http_hello: listen %s: %v\n", *addr, err)
		os.Exit(1)
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-sig
		ln.Close()
	}()
	fmt.Printf("http_hello: listening on %s (%d Ps, go net)\n", ln.Addr(), runtime.GOMAXPROCS(0))
	var conns sync.WaitGroup
	for {
		c, err := ln.Accept()
		if err != nil {
			break
		}
		conns.Add(1)
		go func() {
			defer conns.Done()
			handle(c)
		}()
	}
	conns.Wait()
	fmt.Println("http_hello: stopped")
}
