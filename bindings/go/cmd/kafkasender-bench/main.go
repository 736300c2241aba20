// Command kafkasender-bench measures SendAsync throughput for the cross-language benchmark
// (scripts/bench-faces.sh). Usage: kafkasender-bench BOOTSTRAP TOPIC COUNT SIZE
// Prints: result<TAB>go<TAB>MSG_PER_S<TAB>P50_MS<TAB>P99_MS
package main

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strconv"
	"sync"
	"time"

	"kafkasender"
)

func main() {
	if len(os.Args) != 5 {
		fmt.Fprintln(os.Stderr, "usage: kafkasender-bench BOOTSTRAP TOPIC COUNT SIZE")
		os.Exit(2)
	}
	count, _ := strconv.Atoi(os.Args[3])
	size, _ := strconv.Atoi(os.Args[4])
	p, err := kafkasender.NewProducer(map[string]string{"bootstrap.servers": os.Args[1]})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	payload := make([]byte, size)
	var mu sync.Mutex
	latencies := make([]time.Duration, 0, count)
	record := func(r kafkasender.DeliveryReport) {
		if r.Err == nil {
			mu.Lock()
			latencies = append(latencies, r.Latency)
			mu.Unlock()
		}
	}
	started := time.Now()
	for i := 0; i < count; i++ {
		if err := p.SendAsync(kafkasender.Message{Topic: os.Args[2], Value: payload}, record); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	if err := p.Flush(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	elapsed := time.Since(started)
	_ = p.Close()
	if len(latencies) != count {
		fmt.Fprintf(os.Stderr, "%d of %d delivered\n", len(latencies), count)
		os.Exit(1)
	}
	sort.Slice(latencies, func(i, j int) bool { return latencies[i] < latencies[j] })
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1e3 }
	fmt.Printf("result\tgo\t%.0f\t%.3f\t%.3f\n", float64(count)/elapsed.Seconds(), ms(latencies[count/2]), ms(latencies[count*99/100]))
}
