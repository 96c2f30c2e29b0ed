// Go twin of bench/sched_bench.cpp: the same workloads, the same algorithm,
// so that the two runtimes' schedulers are what is compared.
//
//	sched_bench_go <yield|spawn|skynet> <procs> <n>
//
// Prints one line: "<ns per op> <checksum>".
package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
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
	if len(os.Args) != 4 {
		fmt.Fprintln(os.Stderr, "usage: sched_bench_go <yield|spawn|skynet> <procs> <n>")
		os.Exit(2)
	}
	procs, _ := strconv.Atoi(os.Args[2])
	n, _ := strconv.ParseInt(os.Args[3], 10, 64)
	runtime.GOMAXPROCS(procs)
	var ns float64
	var check int64
	switch os.Args[1] {
	case "yield":
		// Two goroutines, each calling runtime.Gosched n times.
		var wg sync.WaitGroup
		start := time.Now()
		for g := 0; g < 2; g++ {
			wg.Add(1)
			go func() {
				for i := int64(0); i < n; i++ {
					runtime.Gosched()
				}
				wg.Done()
			}()
		}
		wg.Wait()
		ns = float64(time.Since(start).Nanoseconds()) / float64(2*n)
		check = 2 * n
	case "spawn":
		var count int64
		var wg sync.WaitGroup
		start := time.Now()
		wg.Add(int(n))
		for i := int64(0); i < n; i++ {
			go func() {
				atomic.AddInt64(&count, 1)
				wg.Done()
			}()
		}
		wg.Wait()
		ns = float64(time.Since(start).Nanoseconds()) / float64(n)
		check = count
	case "skynet":
		root := make(chan int64, 1)
		start := time.Now()
		go skynet(nil, 0, n, 10, root)
		check = <-root
		ns = float64(time.Since(start).Nanoseconds()) / float64(n)
	default:
		fmt.Fprintln(os.Stderr, "unknown workload", os.Args[1])
		os.Exit(2)
	}
	fmt.Printf("%.3f %d\n", ns, check)
}
