package kafkasender

import (
	"context"
	"fmt"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// traceparents reads topic back and gives each record's traceparent header values.
func traceparents(t *testing.T, c *MockCluster, topic string) [][]string {
	t.Helper()
	records, err := c.ReadTopic(topic, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var all [][]string
	for _, r := range records {
		values := []string{}
		for _, h := range r.Headers {
			if h.Key == "traceparent" {
				values = append(values, string(h.Value))
			}
		}
		all = append(all, values)
	}
	return all
}

// withTracing sets an SDK tracer provider recording into memory and the W3C propagator for the
// rest of the test.
func withTracing(t *testing.T) *tracetest.InMemoryExporter {
	provider, propagator := otel.GetTracerProvider(), otel.GetTextMapPropagator()
	t.Cleanup(func() {
		otel.SetTracerProvider(provider)
		otel.SetTextMapPropagator(propagator)
	})
	exporter := tracetest.NewInMemoryExporter()
	otel.SetTracerProvider(sdktrace.NewTracerProvider(sdktrace.WithSyncer(exporter)))
	otel.SetTextMapPropagator(propagation.TraceContext{})
	return exporter
}

func attributeOf(span tracetest.SpanStub, key string) attribute.Value {
	for _, kv := range span.Attributes {
		if string(kv.Key) == key {
			return kv.Value
		}
	}
	return attribute.Value{}
}

func TestWithoutATracerProviderASendCarriesNoTraceHeaders(t *testing.T) {
	c := cluster(t, "go-untraced", 1)
	p := producer(t, c, nil)
	if _, err := p.Send(context.Background(), Message{Topic: "go-untraced", Value: []byte("v")}); err != nil {
		t.Fatal(err)
	}
	if got := traceparents(t, c, "go-untraced"); fmt.Sprint(got) != "[[]]" {
		t.Fatalf("traceparents %v", got)
	}
}

func TestASendSpanContinuesTheCallersTraceToTheConsumer(t *testing.T) {
	exporter := withTracing(t)
	c := cluster(t, "go-traced", 2)
	p := producer(t, c, nil)
	ctx, request := otel.Tracer("test").Start(context.Background(), "request")
	report, err := p.Send(ctx, Message{Topic: "go-traced", Key: []byte("k"), Value: []byte("v"),
		Headers: []Header{{Key: "traceparent", Value: []byte("00-stale")}}})
	if err != nil {
		t.Fatal(err)
	}
	builder := EventBuilder{Source: "go-test"}
	event, err := builder.Event(ctx, "order.placed", map[string]int{"n": 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.MapEventTopic("order.placed", "go-traced"); err != nil {
		t.Fatal(err)
	}
	if _, err := p.PublishEvent(ctx, event); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Send(ctx, Message{Topic: "bad topic name!"}); err == nil {
		t.Fatal("an invalid topic was accepted")
	}
	request.End()

	var sends []tracetest.SpanStub
	var refused *tracetest.SpanStub
	for _, span := range exporter.GetSpans() {
		switch span.Name {
		case "send go-traced":
			sends = append(sends, span)
		case "send bad topic name!":
			refused = &span
		}
	}
	if len(sends) != 2 || refused == nil {
		t.Fatalf("spans %+v", exporter.GetSpans())
	}
	want := []string{}
	for _, send := range sends {
		if send.SpanKind != trace.SpanKindProducer || send.Parent.SpanID() != request.SpanContext().SpanID() ||
			send.SpanContext.TraceID() != request.SpanContext().TraceID() || send.Status.Code != codes.Unset {
			t.Fatalf("send span %+v", send)
		}
		for key, value := range map[string]string{"messaging.system": "kafka", "messaging.destination.name": "go-traced",
			"messaging.operation.type": "send"} {
			if got := attributeOf(send, key).AsString(); got != value {
				t.Fatalf("%s = %q", key, got)
			}
		}
		want = append(want, fmt.Sprintf("00-%s-%s-01", send.SpanContext.TraceID(), send.SpanContext.SpanID()))
	}
	one := sends[0]
	if attributeOf(one, "messaging.kafka.message.key").AsString() != "k" ||
		attributeOf(one, "messaging.destination.partition.id").AsString() != fmt.Sprint(report.Partition) ||
		attributeOf(one, "messaging.kafka.offset").AsInt64() != report.Offset {
		t.Fatalf("send span attributes %v, report %+v", one.Attributes, report)
	}
	if refused.Status.Code != codes.Error || attributeOf(*refused, "error.type").AsString() != "invalid_record" {
		t.Fatalf("refused span %+v", refused)
	}
	// One traceparent each (the caller's stale one is replaced), in send order on one partition or another.
	got := traceparents(t, c, "go-traced")
	seen := map[string]bool{}
	for _, values := range got {
		if len(values) != 1 {
			t.Fatalf("traceparents %v", got)
		}
		seen[values[0]] = true
	}
	if len(seen) != 2 || !seen[want[0]] || !seen[want[1]] {
		t.Fatalf("traceparents %v, want %v", got, want)
	}
}
