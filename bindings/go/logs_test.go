package kafkasender

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// lockedBuffer is an io.Writer for slog that log lines from several threads may share.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestLogLinesGoToTheSlogLogger(t *testing.T) {
	var out lockedBuffer
	SetLogger(slog.New(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelDebug})))
	defer SetLogger(nil)
	p, err := NewProducer(map[string]string{"bootstrap.servers": "127.0.0.1:1", "log.level": "info", "close.timeout.ms": "100ms"})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.SendAsync(Message{Topic: "logged", Value: []byte("x")}, func(DeliveryReport) {}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(out.String(), "target=librdkafka") && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	_ = p.Close()
	if text := out.String(); !strings.Contains(text, "target=librdkafka") || !strings.Contains(text, "127.0.0.1:1") {
		t.Fatalf("no librdkafka line naming the broker in:\n%s", text)
	}
}
