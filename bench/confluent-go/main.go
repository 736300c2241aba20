// Command confluent-go-bench is confluent-kafka-go's contender (the Go face's peer) for
// `kafkasender bench --external confluent-go=PROGRAM`, under the rules at the top of
// crates/kafkasender-cli/src/bench.rs: the same settings as kafkasender's defaults (idempotent,
// acks=all, linger.ms=5, the Java client's partitioner), distinct 16-byte keys, Produce with the
// Events channel drained by one goroutine, one warm-up message before the clock starts.
// Usage: confluent-go-bench BOOTSTRAP TOPIC COUNT SIZE RATE   (RATE 0: as fast as it goes)
// Prints: result<TAB>confluent-go<TAB>MSG_PER_S<TAB>P50_MS<TAB>P99_MS<TAB>PEAK_RSS_KB<TAB>CPU_SECONDS
package main

import (
	"encoding/binary"
	"fmt"
	"os"
	"sort"
	"strconv"
	"syscall"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
)

func fail(err error) {
	fmt.Fprintln(os.Stderr, err)
	os.Exit(1)
}

func main() {
	if len(os.Args) != 6 {
		fmt.Fprintln(os.Stderr, "usage: confluent-go-bench BOOTSTRAP TOPIC COUNT SIZE RATE")
		os.Exit(2)
	}
	topic := os.Args[2]
	count, _ := strconv.Atoi(os.Args[3])
	size, _ := strconv.Atoi(os.Args[4])
	rate, _ := strconv.ParseFloat(os.Args[5], 64)
	p, err := kafka.NewProducer(&kafka.ConfigMap{
		"bootstrap.servers": os.Args[1], "enable.idempotence": true, "acks": "all",
		"linger.ms": 5, "partitioner": "murmur2_random", "message.timeout.ms": 0,
	})
	if err != nil {
		fail(err)
	}
	payload := make([]byte, size)
	// Reports are counted where they arrive, on the goroutine draining the Events channel; the
	// latency is measured from the send time kept per message number (the key holds the number).
	sentAt := make([]time.Time, count+1)
	var (
		expected  = 1
		latencies = make([]time.Duration, 0, count+1)
		finished  = make(chan time.Time, 1)
		start     = make(chan int)
	)
	go func() {
		for e := range p.Events() {
			m, ok := e.(*kafka.Message)
			if !ok {
				continue
			}
			if m.TopicPartition.Error != nil {
				fail(m.TopicPartition.Error)
			}
			latencies = append(latencies, time.Since(sentAt[min(binary.BigEndian.Uint64(m.Key), uint64(count))]))
			if len(latencies) == expected {
				finished <- time.Now()
				expected = <-start
				latencies = latencies[:0]
			}
		}
	}()
	send := func(i uint64) {
		key := []byte("........ks-bench")
		binary.BigEndian.PutUint64(key, i)
		sentAt[min(i, uint64(count))] = time.Now()
		for {
			err := p.Produce(&kafka.Message{
				TopicPartition: kafka.TopicPartition{Topic: &topic, Partition: kafka.PartitionAny},
				Key:            key, Value: payload,
			}, nil)
			if err == nil {
				return
			}
			if e, ok := err.(kafka.Error); ok && e.Code() == kafka.ErrQueueFull {
				time.Sleep(time.Millisecond) // backpressure, as kafkasender's send waits
				continue
			}
			fail(err)
		}
	}
	send(^uint64(0)) // warm up: connections, metadata and the producer id
	<-finished
	start <- count

	started := time.Now()
	for i := 0; i < count; i++ {
		if rate > 0 {
			time.Sleep(time.Until(started.Add(time.Duration(float64(i) / rate * float64(time.Second)))))
		}
		send(uint64(i))
	}
	ended := <-finished
	p.Close()
	sort.Slice(latencies, func(i, j int) bool { return latencies[i] < latencies[j] })
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1e3 }
	var usage syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &usage)
	cpu := time.Duration(usage.Utime.Nano() + usage.Stime.Nano()).Seconds()
	fmt.Printf("result\tconfluent-go\t%.0f\t%.3f\t%.3f\t%d\t%.3f\n", float64(count)/ended.Sub(started).Seconds(),
		ms(latencies[count/2]), ms(latencies[count*99/100]), usage.Maxrss, cpu)
}
