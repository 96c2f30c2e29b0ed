// http_hello: the Go twin of docs/examples/http_hello.cpp on net/http, for
// bench/net_bench.
//
//	./http_hello_go --addr 127.0.0.1:8080 --procs 2
//	wrk -t2 -c64 -d10s http://127.0.0.1:8080/
//
// Every request gets "Hello, World!" with the headers gort's example sends
// (Server, Content-Type: text/plain, Content-Length: 13) and no others: the
// Date header that net/http adds by default is suppressed, so both servers
// put the same number of bytes on the wire (the Server value is "go", two
// bytes shorter than "gort"). net/http does much more per request than
// gort's example (full header parsing into a map, a Request and a
// ResponseWriter per request, a bufio.Writer flush): this twin measures
// "Go as people write it"; http_raw.go is the like-for-like parser.
//
// --procs N sets GOMAXPROCS (0: the CPU count). Prints
// "http_hello: listening on ADDR (N Ps, go net/http)"; stops on SIGINT /
// SIGTERM.
package main

import (
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"syscall"
)

var body = []byte("Hello, World!")

func hello(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h["Server"] = []string{"go"}
	h["Content-Type"] = []string{"text/plain"}
	h["Content-Length"] = []string{"13"}
	h["Date"] = nil // suppress the automatic Date header
	w.Write(body)
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
	srv := &http.Server{Handler: http.HandlerFunc(hello)}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-sig
		srv.Close()
	}()
	fmt.Printf("http_hello: listening on %s (%d Ps, go net/http)\n", ln.Addr(), runtime.GOMAXPROCS(0))
	srv.Serve(ln)
	fmt.Println("http_hello: stopped")
}
