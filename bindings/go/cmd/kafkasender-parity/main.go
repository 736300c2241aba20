// Command kafkasender-parity is the Go face's runner of tests/parity scenarios: steps on stdin, one
// outcome line per send on stdout (the protocol is described in tests/parity/run.py).
package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	kafkasender "github.com/kafkasender/kafkasender-go"
)

func fail(err error) {
	fmt.Fprintln(os.Stderr, err)
	os.Exit(1)
}

func main() {
	var (
		cluster  *kafkasender.MockCluster
		producer *kafkasender.Producer
		config   = map[string]string{}
		mu       sync.Mutex
		outcomes []string
	)
	number := func(s string) int {
		n, err := strconv.Atoi(s)
		if err != nil {
			fail(err)
		}
		return n
	}
	within := func(ms string) (context.Context, context.CancelFunc) {
		return context.WithTimeout(context.Background(), time.Duration(number(ms))*time.Millisecond)
	}
	lines := bufio.NewScanner(os.Stdin)
	for lines.Scan() {
		field := strings.Split(lines.Text(), "\t")
		var err error
		switch field[0] {
		case "brokers":
			if number(field[1]) > 0 {
				cluster, err = kafkasender.NewMockCluster(uint16(number(field[1])))
			}
		case "topic":
			err = cluster.CreateTopic(field[1], int32(number(field[2])), 1)
		case "config":
			config[field[1]] = field[2]
		case "start":
			if cluster != nil {
				config["bootstrap.servers"] = cluster.BootstrapServers()
			}
			producer, err = kafkasender.NewProducer(config)
		case "send":
			none := func(s string) []byte {
				if s == "-" {
					return nil
				}
				return []byte(s)
			}
			m := kafkasender.Message{Topic: field[1], Key: none(field[2]), Value: none(field[3])}
			if size := number(field[4]); size > 0 {
				m.Value = []byte(strings.Repeat("x", size))
			}
			if field[5] != "-" {
				m.Partition = kafkasender.Partition(int32(number(field[5])))
			}
			if field[6] != "-" {
				for _, h := range strings.Split(field[6], ",") {
					k, v, _ := strings.Cut(h, "=")
					m.Headers = append(m.Headers, kafkasender.Header{Key: k, Value: []byte(v)})
				}
			}
			mu.Lock()
			index := len(outcomes)
			outcomes = append(outcomes, "unreported\t-\t-1")
			mu.Unlock()
			err = producer.SendAsync(m, func(r kafkasender.DeliveryReport) {
				kind := "-"
				var e *kafkasender.Error
				if errors.As(r.Err, &e) {
					kind = e.Kind().String()
				}
				mu.Lock()
				outcomes[index] = fmt.Sprintf("%s\t%s\t%d", r.Outcome, kind, r.Partition)
				mu.Unlock()
			})
			var e *kafkasender.Error
			if errors.As(err, &e) {
				mu.Lock()
				outcomes[index] = fmt.Sprintf("refused\t%s\t-1", e.Kind())
				mu.Unlock()
				err = nil
			}
		case "flush":
			ctx, cancel := within(field[1])
			_ = producer.Flush(ctx)
			cancel()
		case "close":
			ctx, cancel := within(field[1])
			err = producer.Shutdown(ctx)
			cancel()
		case "down":
			err = cluster.BrokerDown(int32(number(field[1])))
		case "up":
			err = cluster.BrokerUp(int32(number(field[1])))
		case "errors":
			var codes []int32
			for _, code := range strings.Split(field[2], ",") {
				codes = append(codes, int32(number(code)))
			}
			err = cluster.PushRequestErrors(field[1], codes...)
		case "sleep":
			time.Sleep(time.Duration(number(field[1])) * time.Millisecond)
		default:
			err = fmt.Errorf("unknown step %q", field[0])
		}
		if err != nil {
			fail(err)
		}
	}
	if producer != nil {
		_ = producer.Close() // every report is in once Close returns
	}
	for i, outcome := range outcomes {
		fmt.Printf("%d\t%s\n", i, outcome)
	}
}
