package kafkasender

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

func cluster(t *testing.T, topic string, partitions int32) *MockCluster {
	t.Helper()
	c, err := NewMockCluster(3)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	if err := c.CreateTopic(topic, partitions, 3); err != nil {
		t.Fatal(err)
	}
	return c
}

func producer(t *testing.T, c *MockCluster, extra map[string]string) *Producer {
	t.Helper()
	config := map[string]string{"bootstrap.servers": c.BootstrapServers()}
	for k, v := range extra {
		config[k] = v
	}
	p, err := NewProducer(config)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

func readBack(t *testing.T, c *MockCluster, topic string) []ConsumedRecord {
	t.Helper()
	records, err := c.ReadTopic(topic, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	return records
}

func TestAsyncAndSyncSendsAreReportedAndReadBackWithKeysAndHeaders(t *testing.T) {
	c := cluster(t, "go-orders", 4)
	p := producer(t, c, nil)
	const n = 1000
	var mu sync.Mutex
	var reports []DeliveryReport
	var wg sync.WaitGroup
	wg.Add(n)
	for i := 0; i < n; i++ {
		m := Message{
			Topic:   "go-orders",
			Key:     []byte(fmt.Sprintf("customer-%d", i%10)),
			Value:   []byte(fmt.Sprintf("order-%d", i)),
			Headers: []Header{{Key: "seq", Value: []byte(fmt.Sprint(i))}, {Key: "null", Value: nil}},
		}
		if err := p.SendAsync(m, func(r DeliveryReport) { mu.Lock(); reports = append(reports, r); mu.Unlock(); wg.Done() }); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	r, err := p.Send(context.Background(), Message{Topic: "go-orders", Key: []byte{}, Value: []byte("a\x00b")})
	if err != nil || r.Offset < 0 || r.Partition < 0 {
		t.Fatalf("sync send: %+v %v", r, err)
	}
	for _, r := range reports {
		if r.Err != nil || r.Offset < 0 || r.Topic != "go-orders" || !strings.HasPrefix(string(r.Key), "customer-") {
			t.Fatalf("bad report %+v", r)
		}
	}

	records := readBack(t, c, "go-orders")
	if len(records) != n+1 {
		t.Fatalf("read back %d of %d", len(records), n+1)
	}
	partitionOfKey := map[string]int32{}
	lastSeq := map[string]int{}
	for _, rec := range records {
		if bytes.Equal(rec.Value, []byte("a\x00b")) {
			if rec.Key == nil || len(rec.Key) != 0 {
				t.Fatalf("empty key must stay empty and present: %q", rec.Key)
			}
			continue
		}
		key := string(rec.Key)
		if p, seen := partitionOfKey[key]; seen && p != rec.Partition {
			t.Fatalf("key %s in partitions %d and %d", key, p, rec.Partition)
		}
		partitionOfKey[key] = rec.Partition
		if len(rec.Headers) != 2 || rec.Headers[0].Key != "seq" || rec.Headers[1].Value != nil {
			t.Fatalf("headers %+v", rec.Headers)
		}
		var seq int
		fmt.Sscan(string(rec.Headers[0].Value), &seq)
		if prev, seen := lastSeq[key]; seen && prev >= seq {
			t.Fatalf("per-key order broken for %s: %d then %d", key, prev, seq)
		}
		lastSeq[key] = seq
	}
}

func TestManyGoroutinesShareOneProducer(t *testing.T) {
	c := cluster(t, "go-goroutines", 4)
	p := producer(t, c, nil)
	const goroutines, each = 16, 100
	var wg sync.WaitGroup
	errs := make(chan error, goroutines*each)
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < each; i++ {
				if _, err := p.Send(context.Background(), Message{Topic: "go-goroutines", Value: []byte(fmt.Sprintf("%d-%d", g, i))}); err != nil {
					errs <- err
				}
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, rec := range readBack(t, c, "go-goroutines") {
		seen[string(rec.Value)] = true
	}
	if len(seen) != goroutines*each {
		t.Fatalf("read back %d distinct of %d", len(seen), goroutines*each)
	}
}

func TestSendReturnsWhenTheContextEnds(t *testing.T) {
	c := cluster(t, "go-stalled", 1)
	p := producer(t, c, map[string]string{"close.timeout.ms": "200ms"})
	if _, err := p.Send(context.Background(), Message{Topic: "go-stalled", Value: []byte("warm-up")}); err != nil {
		t.Fatal(err)
	}
	for id := int32(1); id <= 3; id++ {
		if err := c.BrokerDown(id); err != nil {
			t.Fatal(err)
		}
	}
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := p.Send(cancelled, Message{Topic: "go-stalled", Value: []byte("x")}); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled context: %v", err)
	}
	ctx, stop := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer stop()
	started := time.Now()
	_, err := p.Send(ctx, Message{Topic: "go-stalled", Value: []byte("stuck")})
	if !errors.Is(err, context.DeadlineExceeded) && err == nil {
		t.Fatalf("expected the deadline (or a failure), got %v", err)
	}
	if time.Since(started) > 5*time.Second {
		t.Fatalf("Send did not return promptly: %v", time.Since(started))
	}
	flushCtx, stopFlush := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer stopFlush()
	if err := p.Flush(flushCtx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("flush: %v", err)
	}
}

func TestUseAfterCloseIsAnErrorAndCloseIsIdempotent(t *testing.T) {
	c := cluster(t, "go-closed", 1)
	p := producer(t, c, nil)
	var wg sync.WaitGroup
	var mu sync.Mutex
	reported := 0
	for i := 0; i < 100; i++ {
		wg.Add(1)
		if err := p.SendAsync(Message{Topic: "go-closed", Value: []byte("v")}, func(DeliveryReport) { mu.Lock(); reported++; mu.Unlock(); wg.Done() }); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if reported != 100 {
		t.Fatalf("%d of 100 reported after Close", reported)
	}
	if err := p.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	err := p.SendAsync(Message{Topic: "go-closed", Value: []byte("late")}, nil)
	var kerr *Error
	if !errors.As(err, &kerr) || kerr.Kind() != KindClosed || !errors.Is(err, ErrClosed) {
		t.Fatalf("send after close: %v", err)
	}
	if err := p.Flush(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("flush after close: %v", err)
	}
}

func TestErrorsAreTypedAndNameTheProblem(t *testing.T) {
	_, err := NewProducer(map[string]string{"linger.ms": "soon", "no.such.key": "1"})
	var kerr *Error
	if !errors.As(err, &kerr) || kerr.Kind() != KindConfig {
		t.Fatalf("config error: %v", err)
	}
	for _, want := range []string{"linger.ms", "no.such.key", "bootstrap.servers"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("config error does not name %s: %v", want, err)
		}
	}
	if KindQueueFull.String() != "queue_full" {
		t.Errorf("kind name %q", KindQueueFull.String())
	}

	c := cluster(t, "go-errors", 1)
	p := producer(t, c, map[string]string{"message.max.bytes": "1000"})
	cases := []struct {
		message Message
		kind    Kind
	}{
		{Message{Topic: "bad topic", Value: []byte("v")}, KindInvalidRecord},
		{Message{Topic: "bad\xffutf8", Value: []byte("v")}, KindInvalidUTF8},
		{Message{Topic: "go-errors", Value: make([]byte, 2000)}, KindMessageTooLarge},
		{Message{Topic: "go-errors", Value: []byte("v"), Partition: Partition(-7)}, KindInvalidRecord},
	}
	for _, tc := range cases {
		err := p.SendAsync(tc.message, func(DeliveryReport) { t.Error("rejected message called back") })
		if !errors.As(err, &kerr) || kerr.Kind() != tc.kind {
			t.Errorf("%q: got %v, want kind %s", tc.message.Topic, err, tc.kind)
		}
	}
	if records := readBack(t, c, "go-errors"); len(records) != 0 {
		t.Fatalf("rejected messages landed: %d", len(records))
	}
}

func TestMetricsAndHealthDescribeTheProducer(t *testing.T) {
	c := cluster(t, "go-observed", 2)
	p := producer(t, c, nil)
	for i := 0; i < 10; i++ {
		if _, err := p.Send(context.Background(), Message{Topic: "go-observed", Value: []byte("0123456789")}); err != nil {
			t.Fatal(err)
		}
	}
	m, err := p.Metrics()
	if err != nil || m["sent"] != 10 || m["delivered"] != 10 || m["failed"] != 0 || m["bytes_sent"] != 100 || m["latency_p50_seconds"] <= 0 {
		t.Fatalf("metrics %+v, %v", m, err)
	}
	text, err := p.MetricsPrometheus()
	if err != nil || !strings.Contains(text, `kafkasender_messages_delivered_total{client_id="kafkasender"} 10`) {
		t.Fatalf("prometheus text %q, %v", text, err)
	}
	h, err := p.Health()
	if err != nil || h.Status != Healthy || len(h.Reasons) != 0 {
		t.Fatalf("health %+v, %v", h, err)
	}
	if got := len(readBack(t, c, "go-observed")); got != 10 {
		t.Fatalf("read back %d of 10", got)
	}
	_ = p.Close()
	if _, err := p.Health(); !errors.Is(err, ErrClosed) {
		t.Fatalf("health after close: %v", err)
	}
}

func TestARateLimitedSendIsATypedError(t *testing.T) {
	c := cluster(t, "go-limited", 1)
	p := producer(t, c, map[string]string{
		"ratelimit.messages.per.second": "1", "ratelimit.burst": "1", "enqueue.timeout.ms": "50ms",
	})
	// Back to back: waiting for the first (while the topic is created) could outlast the second a
	// new token takes.
	if err := p.SendAsync(Message{Topic: "go-limited", Value: []byte("first")}, nil); err != nil {
		t.Fatal(err)
	}
	err := p.SendAsync(Message{Topic: "go-limited", Value: []byte("second")}, nil)
	var kerr *Error
	if !errors.As(err, &kerr) || kerr.Kind() != KindRateLimited {
		t.Fatalf("expected rate_limited, got %v", err)
	}
	if err := p.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if records := readBack(t, c, "go-limited"); len(records) != 1 {
		t.Fatalf("read back %d, want 1", len(records))
	}
}

func TestAnOutageSpoolsAndTheBreakerClosingReplaysTheSpool(t *testing.T) {
	c, err := NewMockCluster(1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	if err := c.CreateTopic("go-outage", 2, 1); err != nil {
		t.Fatal(err)
	}
	if err := c.BrokerDown(1); err != nil {
		t.Fatal(err)
	}
	resilient := map[string]string{
		"message.timeout.ms": "300ms", "retry.max": "0", "breaker.enabled": "true",
		"breaker.consecutive.failures": "1", "breaker.timeout.ms": "300ms",
	}
	withSpool := map[string]string{"spool.dir": t.TempDir()}
	for k, v := range resilient {
		withSpool[k] = v
	}
	p := producer(t, c, withSpool)
	const n = 20
	sent := 0
	for i := 0; i < n; i++ {
		r, err := p.Send(context.Background(), Message{Topic: "go-outage", Value: []byte(fmt.Sprintf("o-%d", i))})
		var kerr *Error
		if err != nil || r.Outcome != OutcomeSpooled || r.Destination == "" || !errors.As(r.Err, &kerr) {
			t.Fatalf("message %d: %+v, %v", i, r, err)
		}
		sent++
	}
	// At least n spooled, and the breaker open or probing: after the open timeout the rescue
	// worker replays a spooled message as the probe, and the broker (still down) fails it again.
	if m, _ := p.Metrics(); m["spooled"] < n || m.BreakerState() == BreakerClosed || m["breaker_trips"] == 0 {
		t.Fatalf("metrics during the outage %+v", m)
	}

	// Without a spool, an open breaker refuses at once.
	resilient["breaker.timeout.ms"] = "1h"
	refusing := producer(t, c, resilient)
	if _, err := refusing.Send(context.Background(), Message{Topic: "go-outage", Value: []byte("lost")}); err == nil {
		t.Fatal("with no spool and no retries, a timed-out message is lost and says so")
	}
	err = refusing.SendAsync(Message{Topic: "go-outage", Value: []byte("refused")}, nil)
	var kerr *Error
	if !errors.As(err, &kerr) || kerr.Kind() != KindCircuitOpen {
		t.Fatalf("expected circuit_open, got %v", err)
	}
	_ = refusing.Close()

	if err := c.BrokerUp(1); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for m, _ := p.Metrics(); m.BreakerState() != BreakerClosed; m, _ = p.Metrics() {
		if time.Now().After(deadline) {
			t.Fatalf("the breaker did not close: %+v", m)
		}
		if err := p.SendAsync(Message{Topic: "go-outage", Value: []byte(fmt.Sprintf("probe-%d", sent))}, nil); err != nil {
			t.Fatal(err)
		}
		sent++
		time.Sleep(100 * time.Millisecond)
	}
	for m, _ := p.Metrics(); m["replayed"] != m["spooled"] || m["in_flight"] != 0; m, _ = p.Metrics() {
		if time.Now().After(deadline) {
			t.Fatalf("the spool was not replayed: %+v", m)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if records, torn, err := p.ReplaySpool(); err != nil || records != 0 || torn != 0 {
		t.Fatalf("replay after replay: %d %d %v", records, torn, err)
	}
	if got := len(readBack(t, c, "go-outage")); got != sent {
		t.Fatalf("read back %d, want %d", got, sent)
	}
}

func TestTransactionsReportAtTheirEndAndCallsOutOfTurnAreTyped(t *testing.T) {
	c := cluster(t, "tx", 4)
	plain := producer(t, c, nil)
	var kerr *Error
	if err := plain.BeginTransaction(); !errors.As(err, &kerr) || kerr.Kind() != KindTransaction {
		t.Fatalf("begin on a plain producer: %v", err)
	}
	p := producer(t, c, map[string]string{"transactional.id": "go-face"})
	if err := p.SendAsync(Message{Topic: "tx", Value: []byte("v")}, func(DeliveryReport) {}); !errors.As(err, &kerr) || kerr.Kind() != KindTransaction {
		t.Fatalf("send outside a transaction: %v", err)
	}
	if err := p.CommitTransaction(context.Background()); !errors.As(err, &kerr) || kerr.Kind() != KindTransaction {
		t.Fatalf("commit without begin: %v", err)
	}
	reports := make(chan DeliveryReport, 200)
	send := func(n int) {
		for i := 0; i < n; i++ {
			m := Message{Topic: "tx", Key: []byte(fmt.Sprintf("k%d", i%5)), Value: []byte("v")}
			if err := p.SendAsync(m, func(r DeliveryReport) { reports <- r }); err != nil {
				t.Fatal(err)
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := p.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	send(100)
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if len(reports) != 0 {
		t.Fatalf("%d reports before the commit", len(reports))
	}
	if err := p.CommitTransaction(ctx); err != nil {
		t.Fatal(err)
	}
	if len(reports) != 100 {
		t.Fatalf("%d reports after the commit, want 100", len(reports))
	}
	for i := 0; i < 100; i++ {
		if r := <-reports; r.Outcome != OutcomeDelivered {
			t.Fatalf("committed message reported %v: %v", r.Outcome, r.Err)
		}
	}
	if err := p.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	send(50)
	if err := p.AbortTransaction(ctx); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 50; i++ {
		r := <-reports
		if !errors.As(r.Err, &kerr) || kerr.Kind() != KindTransaction || !kerr.Retriable() {
			t.Fatalf("aborted message reported %v", r.Err)
		}
	}
}

func TestAFatalErrorIsRecoveredFromAndShowsInReports(t *testing.T) {
	c := cluster(t, "healing", 4)
	p := producer(t, c, nil)
	var mu sync.Mutex
	delivered, recovered := 0, 0
	for i := 0; i < 4000; i++ {
		m := Message{Topic: "healing", Key: []byte(fmt.Sprintf("k%d", i%10)), Value: []byte(fmt.Sprint(i))}
		err := p.SendAsync(m, func(r DeliveryReport) {
			mu.Lock()
			defer mu.Unlock()
			if r.Outcome == OutcomeDelivered {
				delivered++
			}
			if r.Recovered {
				recovered++
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		if i == 2000 {
			if err := InjectFatalError(p, 59); err != nil {
				t.Fatal(err)
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	m, _ := p.Metrics()
	mu.Lock()
	defer mu.Unlock()
	if delivered != 4000 || m["recoveries"] != 1 {
		t.Fatalf("delivered %d of 4000, recoveries %v", delivered, m["recoveries"])
	}
	t.Logf("%d messages re-sent through the new client", recovered)
	if got := len(readBack(t, c, "healing")); got < 4000 {
		t.Fatalf("read back %d", got)
	}
}

func TestEmptyAndMissingKeysAndValuesStayApart(t *testing.T) {
	c := cluster(t, "shapes", 1)
	p := producer(t, c, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	shapes := []Message{
		{Topic: "shapes", Key: []byte{}, Value: []byte{}},       // present, empty
		{Topic: "shapes", Key: nil, Value: nil},                 // absent key, tombstone
		{Topic: "shapes", Key: []byte("k"), Value: []byte("v")}, // plain
	}
	for _, m := range shapes {
		if _, err := p.Send(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	got := readBack(t, c, "shapes")
	if len(got) != 3 {
		t.Fatalf("read back %d records", len(got))
	}
	if got[0].Key == nil || len(got[0].Key) != 0 || got[0].Value == nil || len(got[0].Value) != 0 {
		t.Fatalf("empty key and value came back as %#v / %#v", got[0].Key, got[0].Value)
	}
	if got[1].Key != nil || got[1].Value != nil {
		t.Fatalf("absent key and tombstone came back as %#v / %#v", got[1].Key, got[1].Value)
	}
	if string(got[2].Key) != "k" || string(got[2].Value) != "v" {
		t.Fatalf("plain record came back as %q / %q", got[2].Key, got[2].Value)
	}
}

func TestSendBatchCrossesOnceAndReportsEveryMessage(t *testing.T) {
	c := cluster(t, "batched", 4)
	p := producer(t, c, nil)
	msgs := make([]Message, 0, 1001)
	for i := 0; i < 1000; i++ {
		m := Message{Topic: "batched", Key: []byte(fmt.Sprintf("k%d", i%7)), Value: []byte(fmt.Sprint(i))}
		if i%100 == 0 {
			m.Headers = []Header{{Key: "n", Value: []byte(fmt.Sprint(i))}, {Key: "null", Value: nil}}
		}
		msgs = append(msgs, m)
	}
	msgs = append(msgs[:500], append([]Message{{Topic: "not a topic!", Value: []byte("x")}}, msgs[500:]...)...)
	var mu sync.Mutex
	delivered, failed := 0, 0
	err := p.SendBatch(msgs, func(r DeliveryReport) {
		mu.Lock()
		defer mu.Unlock()
		var kerr *Error
		switch {
		case r.Outcome == OutcomeDelivered:
			delivered++
		case errors.As(r.Err, &kerr) && kerr.Kind() == KindInvalidRecord && r.Topic == "not a topic!":
			failed++
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	if delivered != 1000 || failed != 1 {
		t.Fatalf("delivered %d, failed %d", delivered, failed)
	}
	mu.Unlock()
	got := readBack(t, c, "batched")
	withHeaders := 0
	for _, r := range got {
		if len(r.Headers) == 2 && r.Headers[0].Key == "n" && string(r.Headers[0].Value) == string(r.Value) && r.Headers[1].Value == nil {
			withHeaders++
		}
	}
	if len(got) != 1000 || withHeaders != 10 {
		t.Fatalf("read back %d, %d with their headers", len(got), withHeaders)
	}
	_ = p.Close()
	if err := p.SendBatch(msgs[:1], nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("send after close: %v", err)
	}
}

// Single sends reuse their tokens' slots once reported; each round's Flush must still wait for
// exactly the sends made before it, and a refused send must leave nothing behind.
func TestReusedTokensReportEachSendOnceAndFlushWaitsForEarlierSends(t *testing.T) {
	c := cluster(t, "reused", 3)
	p := producer(t, c, nil)
	var mu sync.Mutex
	seen := map[string]int{}
	note := func(r DeliveryReport) {
		mu.Lock()
		defer mu.Unlock()
		if r.Outcome == OutcomeDelivered {
			seen[string(r.Key)]++
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for round := 0; round < 3; round++ {
		batch := make([]Message, 0, 100)
		for i := 0; i < 300; i++ {
			key := []byte(fmt.Sprintf("r%d-%d", round, i))
			if i%3 == 0 {
				batch = append(batch, Message{Topic: "reused", Key: key, Value: key})
				continue
			}
			if err := p.SendAsync(Message{Topic: "reused", Key: key, Value: key}, note); err != nil {
				t.Fatal(err)
			}
		}
		if err := p.SendBatch(batch, note); err != nil {
			t.Fatal(err)
		}
		if err := p.SendAsync(Message{Topic: "not a topic!", Value: []byte("x")}, note); err == nil {
			t.Fatal("an invalid topic was accepted")
		}
		if err := p.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		reported := len(seen)
		mu.Unlock()
		if reported != 300*(round+1) || p.InFlight() != 0 {
			t.Fatalf("round %d: %d keys reported, %d in flight", round, reported, p.InFlight())
		}
	}
	for key, n := range seen {
		if n != 1 {
			t.Fatalf("%s reported %d times", key, n)
		}
	}
	if got := readBack(t, c, "reused"); len(got) != 900 {
		t.Fatalf("read back %d, want 900", len(got))
	}
}

func TestAnExplicitPartitionIsKeptAndNilLetsThePartitionerChoose(t *testing.T) {
	c := cluster(t, "placed", 4)
	p := producer(t, c, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, partition := range []int32{0, 3} {
		r, err := p.Send(ctx, Message{Topic: "placed", Key: []byte("same key"), Value: []byte("v"), Partition: Partition(partition)})
		if err != nil || r.Partition != partition {
			t.Fatalf("partition %d: report %+v, %v", partition, r, err)
		}
	}
	used := map[int32]bool{}
	for i := 0; i < 64; i++ {
		r, err := p.Send(ctx, Message{Topic: "placed", Key: []byte(fmt.Sprint("key-", i)), Value: []byte("v")})
		if err != nil {
			t.Fatal(err)
		}
		used[r.Partition] = true
	}
	if len(used) != 4 {
		t.Fatalf("64 keys went to partitions %v", used)
	}
}
