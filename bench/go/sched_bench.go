// Go twin of bench/sched_bench.cpp: the same workloads, the same algorithm,
// so that the two runtimes' schedulers are what is compared.
//
//	sched_bench_go --workload yield|spawn|skynet --procs P --n N
//
// Prints one line, as every bench binary does (bench/harness.hpp):
//
//	RESULT workload=W procs=P n=N ns_per_op=X check=ok got=C peak_rss_kib=K
//
// or, when the workload's own check fails, check=FAIL and no figure (exit 1).
// Build statically (CGO_ENABLED=0 GO111MODULE=off go build) so that the
// binary runs on machines without Go.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

type node struct {
	sum     int64
	pending int64
	parent  *node
}

// finish propagates a completed subtree's sum to its ancestors.
func finish(n *node, root chan int64) {
	for {
		p := n.parent
		if p == nil {
			root <- n.sum
			return
		}
		atomic.AddInt64(&p.sum, n.sum)
		if atomic.AddInt64(&p.pending, -1) != 0 {
			return
		}
		n = p
	}
}

func skynet(parent *node, num, size, div int64, root chan int64) {
	if size == 1 {
		leaf := &node{sum: num, parent: parent}
		finish(leaf, root)
		return
	}
	n := &node{pending: div, parent: parent}
	size /= div
	for i := int64(0); i < div; i++ {
		go skynet(n, num+i*size, size, div, root)
	}
}

func main() {
	workload := flag.String("workload", "", "yield, spawn or skynet")
	procs := flag.Int("procs", 1, "GOMAXPROCS")
	n := flag.Int64("n", 1000000, "operations (leaves for skynet)")
	flag.Parse()
	runtime.GOMAXPROCS(*procs)
	var ns float64
	var check, want int64
	switch *workload {
	case "yield":
		// Two goroutines, each calling runtime.Gosched n times.
		var wg sync.WaitGroup
		var yields int64
		start := time.Now()
		for g := 0; g < 2; g++ {
			wg.Add(1)
			go func() {
				for i := int64(0); i < *n; i++ {
					runtime.Gosched()
				}
				atomic.AddInt64(&yields, *n)
				wg.Done()
			}()
		}
		wg.Wait()
		ns = float64(time.Since(start).Nanoseconds()) / float64(2**n)
		check, want = yields, 2**n
	case "spawn":
		var count int64
		var wg sync.WaitGroup
		start := time.Now()
		wg.Add(int(*n))
		for i := int64(0); i < *n; i++ {
			go func() {
				atomic.AddInt64(&count, 1)
				wg.Done()
			}()
		}
		wg.Wait()
		ns = float64(time.Since(start).Nanoseconds()) / float64(*n)
		check, want = count, *n
	case "skynet":
		root := make(chan int64, 1)
		start := time.Now()
		go skynet(nil, 0, *n, 10, root)
		check = <-root
		ns = float64(time.Since(start).Nanoseconds()) / float64(*n)
		want = *n * (*n - 1) / 2
	default:
		fmt.Fprintln(os.Stderr, "usage: sched_bench_go --workload yield|spawn|skynet --procs P --n N")
		os.Exit(2)
	}
	report(*workload, *procs, *n, ns, check, want, "")
}

// report prints the RESULT line; no figure when the check failed.
func report(workload string, procs int, n int64, ns float64, got, want int64, extra string) {
	if got != want {
		fmt.Printf("RESULT workload=%s procs=%d n=%d check=FAIL got=%d want=%d\n", workload, procs, n, got, want)
		os.Exit(1)
	}
	fmt.Printf("RESULT workload=%s procs=%d n=%d ns_per_op=%.3f check=ok got=%d%s peak_rss_kib=%d\n", workload, procs, n, ns, got, extra, statusKiB("VmHWM"))
}

// statusKiB reads a field of /proc/self/status (VmHWM: the peak RSS since
// exec) in KiB.
func statusKiB(field string) int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return -1
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, field+":") {
			fs := strings.Fields(line[len(field)+1:])
			if len(fs) > 0 {
				v, _ := strconv.ParseInt(fs[0], 10, 64)
				return v
			}
		}
	}
	return -1
}
