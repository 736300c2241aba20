package kafkasender

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// The transaction scenario of tests/e2e/test_transactions_real_kafka.py, from Go: 20 transactions
// of 20 messages over two topics, the even ones committed and the odd ones aborted. That test runs
// it against a real broker and reads both topics back with Kafka's own consumer.
func TestTransactionScenarioOnARealBroker(t *testing.T) {
	brokers, topics := os.Getenv("KAFKASENDER_SCENARIO_BROKERS"), strings.Split(os.Getenv("KAFKASENDER_SCENARIO_TOPICS"), ",")
	if brokers == "" || len(topics) != 2 {
		t.Skip("run by tests/e2e against a real broker")
	}
	p, err := NewProducer(map[string]string{"bootstrap.servers": brokers, "transactional.id": os.Getenv("KAFKASENDER_SCENARIO_ID")})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	var mu sync.Mutex
	delivered, aborted := 0, 0
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for n := 0; n < 20; n++ {
		commit := n%2 == 0
		if err := p.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 20; i++ {
			mark := map[bool]string{true: "c", false: "a"}[commit]
			m := Message{Topic: topics[i%2], Key: []byte(fmt.Sprintf("k%d", i%4)), Value: []byte(fmt.Sprintf("%s-%d-%d", mark, n, i))}
			err := p.SendAsync(m, func(r DeliveryReport) {
				mu.Lock()
				defer mu.Unlock()
				var kerr *Error
				if r.Outcome == OutcomeDelivered {
					delivered++
				} else if errors.As(r.Err, &kerr) && kerr.Kind() == KindTransaction && kerr.Retriable() {
					aborted++
				}
			})
			if err != nil {
				t.Fatal(err)
			}
		}
		end := p.CommitTransaction
		if !commit {
			// Its messages reach the log first, so that only the abort hides them.
			if err := p.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			end = p.AbortTransaction
		}
		if err := end(ctx); err != nil {
			t.Fatal(err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if delivered != 200 || aborted != 200 {
		t.Fatalf("delivered %d, aborted %d; want 200 each", delivered, aborted)
	}
}
