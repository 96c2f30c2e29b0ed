// Go twin of bench/chan_bench.cpp: the same workloads, the same algorithm,
// so that the two runtimes' channels, mutexes and goroutines are compared.
//
//	chan_bench_go --workload W --procs P --n N
//
// W: pingpong buffered mutex timers select parked parked1m skynet_chan (see
// chan_bench.cpp for what each measures). Prints one line, as every bench
// binary does (bench/harness.hpp):
//
//	RESULT workload=W procs=P n=N ns_per_op=X check=ok got=C [key=value...] peak_rss_kib=K
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

func pingpong(n int64) (float64, int64, int64) {
	ping, pong := make(chan int64), make(chan int64)
	go func() {
		for i := int64(0); i < n; i++ {
			pong <- <-ping + 1
		}
	}()
	var sum int64
	start := time.Now()
	for i := int64(0); i < n; i++ {
		ping <- i
		sum += <-pong
	}
	return perOp(start, n), sum, n * (n + 1) / 2
}

func buffered(n int64) (float64, int64, int64) {
	ch := make(chan int64, 128)
	start := time.Now()
	go func() {
		for i := int64(0); i < n; i++ {
			ch <- i
		}
		close(ch)
	}()
	var sum int64
	for v := range ch {
		sum += v
	}
	return perOp(start, n), sum, n * (n - 1) / 2
}

func mutex(n int64) (float64, int64, int64) {
	const gs = 4
	perG := n / gs
	var mu sync.Mutex
	var wg sync.WaitGroup
	var counter int64
	wg.Add(gs)
	start := time.Now()
	for g := 0; g < gs; g++ {
		go func() {
			for i := int64(0); i < perG; i++ {
				mu.Lock()
				counter++
				mu.Unlock()
			}
			wg.Done()
		}()
	}
	wg.Wait()
	return perOp(start, gs*perG), counter, gs * perG
}

// timers: as chan_bench.cpp's: 8 goroutines each re-arm one of their 64
// pending one-hour timers per step; Reset reports whether it was pending.
func timers(n int64) (float64, int64, int64) {
	const gs, perGTimers = 8, 64
	perG := n / gs
	var wg sync.WaitGroup
	var pending int64
	wg.Add(gs)
	start := time.Now()
	for g := 0; g < gs; g++ {
		go func() {
			ts := make([]*time.Timer, perGTimers)
			for k := range ts {
				ts[k] = time.NewTimer(time.Hour)
			}
			var ok int64
			for i := int64(0); i < perG; i++ {
				if ts[i%perGTimers].Reset(time.Hour) {
					ok++
				}
			}
			atomic.AddInt64(&pending, ok)
			wg.Done()
		}()
	}
	wg.Wait()
	return perOp(start, gs*perG), pending, gs * perG
}

func select4(n int64) (float64, int64, int64) {
	const chans = 4
	perChan := n / chans
	cs := [chans]chan int64{make(chan int64), make(chan int64), make(chan int64), make(chan int64)}
	start := time.Now()
	for _, c := range cs {
		go func(c chan int64) {
			for i := int64(0); i < perChan; i++ {
				c <- i
			}
		}(c)
	}
	var sum int64
	for i := int64(0); i < chans*perChan; i++ {
		select {
		case v := <-cs[0]:
			sum += v
		case v := <-cs[1]:
			sum += v
		case v := <-cs[2]:
			sum += v
		case v := <-cs[3]:
			sum += v
		}
	}
	return perOp(start, chans*perChan), sum, chans * perChan * (perChan - 1) / 2
}

// statusKiB reads a field of /proc/self/status (VmRSS, VmPTE) in KiB.
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

func parked(n int64) (float64, int64, int64, string) {
	rss0, pte0 := statusKiB("VmRSS"), statusKiB("VmPTE")
	ch := make(chan int64)
	var wg sync.WaitGroup
	var started, sum int64
	wg.Add(int(n))
	start := time.Now()
	for i := int64(0); i < n; i++ {
		go func() {
			atomic.AddInt64(&started, 1)
			atomic.AddInt64(&sum, <-ch)
			wg.Done()
		}()
	}
	for atomic.LoadInt64(&started) < n {
		runtime.Gosched()
	}
	ns := perOp(start, n)
	time.Sleep(20 * time.Millisecond) // the last few reach their park
	rss1, pte1 := statusKiB("VmRSS"), statusKiB("VmPTE")
	for i := int64(0); i < n; i++ {
		ch <- i
	}
	wg.Wait()
	extra := fmt.Sprintf(" kib_per_g=%.3f pte_kib_per_g=%.3f rss_parked_mib=%.3f",
		float64(rss1-rss0)/float64(n), float64(pte1-pte0)/float64(n), float64(rss1)/1024)
	return ns, sum, n * (n - 1) / 2, extra
}

// skynet is the classic form: results flow up through unbuffered channels.
func skynet(c chan int64, num, size int64) {
	if size == 1 {
		c <- num
		return
	}
	rc := make(chan int64)
	size /= 10
	for i := int64(0); i < 10; i++ {
		go skynet(rc, num+i*size, size)
	}
	var sum int64
	for i := 0; i < 10; i++ {
		sum += <-rc
	}
	c <- sum
}

func skynetChan(n int64) (float64, int64, int64) {
	root := make(chan int64)
	start := time.Now()
	go skynet(root, 0, n)
	sum := <-root
	return perOp(start, n), sum, n * (n - 1) / 2
}

// skynetChanAgain runs the tree twice and times the second: the program's
// Gs, stacks and heap are then warm from the first (twin of gort's
// skynet_chan_again).
func skynetChanAgain(n int64) (float64, int64, int64) {
	if _, got, want := skynetChan(n); got != want {
		return 0, got, want
	}
	return skynetChan(n)
}

func perOp(start time.Time, n int64) float64 {
	return float64(time.Since(start).Nanoseconds()) / float64(n)
}

func main() {
	workload := flag.String("workload", "", "pingpong, buffered, mutex, select, parked, parked1m, skynet_chan or skynet_chan_again")
	procs := flag.Int("procs", 1, "GOMAXPROCS")
	n := flag.Int64("n", 1000000, "operations (Gs for parked, leaves for skynet_chan)")
	flag.Parse()
	runtime.GOMAXPROCS(*procs)
	var ns float64
	var got, want int64
	extra := ""
	switch *workload {
	case "pingpong":
		ns, got, want = pingpong(*n)
	case "buffered":
		ns, got, want = buffered(*n)
	case "mutex":
		ns, got, want = mutex(*n)
	case "timers":
		ns, got, want = timers(*n)
	case "select":
		ns, got, want = select4(*n)
	case "parked", "parked1m":
		ns, got, want, extra = parked(*n)
	case "skynet_chan":
		ns, got, want = skynetChan(*n)
	case "skynet_chan_again":
		ns, got, want = skynetChanAgain(*n)
	default:
		fmt.Fprintln(os.Stderr, "usage: chan_bench_go --workload pingpong|buffered|mutex|timers|select|parked|parked1m|skynet_chan|skynet_chan_again --procs P --n N")
		os.Exit(2)
	}
	if got != want {
		fmt.Printf("RESULT workload=%s procs=%d n=%d check=FAIL got=%d want=%d\n", *workload, *procs, *n, got, want)
		os.Exit(1)
	}
	fmt.Printf("RESULT workload=%s procs=%d n=%d ns_per_op=%.3f check=ok got=%d%s peak_rss_kib=%d\n", *workload, *procs, *n, ns, got, extra, statusKiB("VmHWM"))
}
