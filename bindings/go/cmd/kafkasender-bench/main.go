// Command kafkasender-bench is the Go face's contender for `kafkasender bench --external
// go-send-async=PROGRAM` (the rules are at the top of crates/kafkasender-cli/src/bench.rs):
// SendAsync with distinct 16-byte keys (with --batch: SendBatch of 10,000 messages a call), one
// warm-up message before the clock starts.
// Usage: kafkasender-bench [--batch] BOOTSTRAP TOPIC COUNT SIZE RATE   (RATE 0: as fast as it goes)
// Prints: result<TAB>NAME<TAB>MSG_PER_S<TAB>P50_MS<TAB>P99_MS<TAB>PEAK_RSS_KB<TAB>CPU_SECONDS
package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"sort"
	"strconv"
	"sync"
	"syscall"
	"time"

	kafkasender "github.com/kafkasender/kafkasender-go"
)

func fail(err error) {
	fmt.Fprintln(os.Stderr, err)
	os.Exit(1)
}

const batchSize = 10_000

func main() {
	name, args := "go-send-async", os.Args
	if len(args) > 1 && args[1] == "--batch" {
		name, args = "go-send-batch", append(args[:1:1], args[2:]...)
	}
	os.Args = args
	if len(os.Args) != 6 {
		fmt.Fprintln(os.Stderr, "usage: kafkasender-bench [--batch] BOOTSTRAP TOPIC COUNT SIZE RATE")
		os.Exit(2)
	}
	topic := os.Args[2]
	count, _ := strconv.Atoi(os.Args[3])
	size, _ := strconv.Atoi(os.Args[4])
	rate, _ := strconv.ParseFloat(os.Args[5], 64)
	p, err := kafkasender.NewProducer(map[string]string{"bootstrap.servers": os.Args[1]})
	if err != nil {
		fail(err)
	}
	payload := make([]byte, size)
	var (
		mu        sync.Mutex
		failed    int
		finished  time.Time
		latencies = make([]time.Duration, 0, count+1)
		expected  = 1
	)
	record := func(r kafkasender.DeliveryReport) {
		mu.Lock()
		defer mu.Unlock()
		if r.Err != nil {
			failed++
			return
		}
		latencies = append(latencies, r.Latency)
		if len(latencies) == expected {
			finished = time.Now()
		}
	}
	send := func(i uint64) {
		key := []byte("........ks-bench")
		binary.BigEndian.PutUint64(key, i)
		if err := p.SendAsync(kafkasender.Message{Topic: topic, Key: key, Value: payload}, record); err != nil {
			fail(err)
		}
	}
	// Warm up: connections, metadata and the producer id before the clock starts.
	send(^uint64(0))
	if err := p.Flush(context.Background()); err != nil {
		fail(err)
	}
	mu.Lock()
	latencies, expected = latencies[:0], count
	mu.Unlock()

	started := time.Now()
	pace := func(i int) {
		if rate > 0 {
			time.Sleep(time.Until(started.Add(time.Duration(float64(i) / rate * float64(time.Second)))))
		}
	}
	if name == "go-send-batch" {
		size := batchSize
		if rate > 0 { // at a fixed rate, a batch per millisecond (as the Rust contender does)
			size = max(int(rate)/1000, 1)
		}
		batch := make([]kafkasender.Message, 0, size)
		for i := 0; i < count; i++ {
			if len(batch) == 0 {
				pace(i)
			}
			key := []byte("........ks-bench")
			binary.BigEndian.PutUint64(key, uint64(i))
			batch = append(batch, kafkasender.Message{Topic: topic, Key: key, Value: payload})
			if len(batch) == size || i == count-1 {
				if err := p.SendBatch(batch, record); err != nil {
					fail(err)
				}
				batch = batch[:0]
			}
		}
	}
	for i := 0; i < count && name == "go-send-async"; i++ {
		pace(i)
		send(uint64(i))
	}
	if err := p.Flush(context.Background()); err != nil {
		fail(err)
	}
	_ = p.Close()
	if len(latencies) != count || failed != 0 {
		fail(fmt.Errorf("%d of %d delivered, %d failed", len(latencies), count, failed))
	}
	sort.Slice(latencies, func(i, j int) bool { return latencies[i] < latencies[j] })
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1e3 }
	var usage syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &usage)
	cpu := time.Duration(usage.Utime.Nano() + usage.Stime.Nano()).Seconds()
	fmt.Printf("result\t%s\t%.0f\t%.3f\t%.3f\t%d\t%.3f\n", name, float64(count)/finished.Sub(started).Seconds(),
		ms(latencies[count/2]), ms(latencies[count*99/100]), usage.Maxrss, cpu)
}
