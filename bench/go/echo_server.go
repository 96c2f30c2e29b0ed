// echo_server: the Go twin of docs/examples/echo.cpp, for bench/net_bench.
//
//	./echo_server_go --addr 127.0.0.1:7000 --procs 2
//
// A TCP echo server, one goroutine per connection, a 16 KiB buffer each,
// TCP_NODELAY (Go's default, set again to say so), as gort's example does.
// --procs N sets GOMAXPROCS (0: Go's default, the CPU count). It prints
// "echo: listening on ADDR (N Ps, go netpoll)" once it accepts, and stops
// on SIGINT / SIGTERM: the listener closes, and it exits once every client
// has hung up (gort's example does the same).
package main

import (
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"runtime"
	"sync"
	"syscall"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:7000", "host:port to listen on (port 0: any)")
	procs := flag.Int("procs", 0, "GOMAXPROCS (0: the CPU count)")
	flag.Parse()
	if *procs > 0 {
		runtime.GOMAXPROCS(*procs)
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintf(os.Stderr, "echo: listen %s: %v\n", *addr, err)
		os.Exit(1)
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-sig
		ln.Close()
	}()
	fmt.Printf("echo: listening on %s (%d Ps, go netpoll)\n", ln.Addr(), runtime.GOMAXPROCS(0))
	var conns sync.WaitGroup
	for {
		c, err := ln.Accept()
		if err != nil {
			break
		}
		conns.Add(1)
		go func(c net.Conn) {
			defer conns.Done()
			defer c.Close()
			c.(*net.TCPConn).SetNoDelay(true)
			buf := make([]byte, 16384)
			for {
				n, err := c.Read(buf)
				if n > 0 {
					if _, werr := c.Write(buf[:n]); werr != nil {
						return
					}
				}
				if err != nil {
					return
				}
			}
		}(c)
	}
	conns.Wait()
	fmt.Println("echo: stopped")
}
