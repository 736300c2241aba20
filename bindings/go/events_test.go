package kafkasender

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestEventsLandWhereTheirTypeMapsWithKeyHeadersAndEnvelope(t *testing.T) {
	c := cluster(t, "go-users", 2)
	if err := c.CreateTopic("go-errors", 2, 3); err != nil {
		t.Fatal(err)
	}
	p := producer(t, c, map[string]string{"event.topic.map": "user.*=go-users"})
	if err := p.MapEventTopic("api.error", "go-errors"); err != nil {
		t.Fatal(err)
	}
	builder := EventBuilder{Source: "go-test", Version: "2"}
	ctx, cancel := context.WithTimeout(WithCorrelationID(context.Background(), "req-42"), 30*time.Second)
	defer cancel()
	registered, err := builder.Event(ctx, "user.registered", map[string]any{"user": map[string]int{"id": 7}})
	if err != nil {
		t.Fatal(err)
	}
	failed, err := builder.CausedBy(registered, "api.error", map[string]int{"status": 503})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range []Event{registered, failed} {
		if r, err := p.PublishEvent(ctx, e); err != nil || r.Outcome != OutcomeDelivered {
			t.Fatalf("%v %v", r, err)
		}
	}
	if registered.CorrelationID != "req-42" || failed.CorrelationID != "req-42" || failed.CausationID != registered.ID {
		t.Fatalf("correlation %q %q, causation %q", registered.CorrelationID, failed.CorrelationID, failed.CausationID)
	}
	for topic, e := range map[string]Event{"go-users": registered, "go-errors": failed} {
		records, err := c.ReadTopic(topic, 30*time.Second)
		if err != nil || len(records) != 1 {
			t.Fatalf("%s: %d records, %v", topic, len(records), err)
		}
		r := records[0]
		back, err := ParseEvent(r.Value)
		if err != nil || back.ID != e.ID || string(back.Data) != string(e.Data) || back.Version != "2" {
			t.Fatalf("%s: %+v %v", topic, back, err)
		}
		if string(r.Key) != "req-42" {
			t.Fatalf("key %q", r.Key)
		}
		headers := map[string]string{}
		for _, h := range r.Headers {
			headers[h.Key] = string(h.Value)
		}
		want := map[string]string{"ce_specversion": "1.0", "ce_id": e.ID, "ce_type": e.Type, "ce_source": "go-test",
			"correlation-id": "req-42", "content-type": "application/json"}
		if len(headers) != len(want) {
			t.Fatalf("headers %v", headers)
		}
		for k, v := range want {
			if headers[k] != v {
				t.Fatalf("header %s = %q, want %q", k, headers[k], v)
			}
		}
	}
}

func TestEventDataMustBeJSONAndTheKeyFieldPresent(t *testing.T) {
	c := cluster(t, "default-events", 1)
	p := producer(t, c, map[string]string{"event.key.field": "data.user.id"})
	builder := EventBuilder{Source: "go-test"}
	if _, err := builder.Event(context.Background(), "x.y", make(chan int)); err == nil {
		t.Fatal("a channel is not JSON")
	}
	e, err := builder.Event(context.Background(), "user.seen", map[string]any{"user": map[string]any{}})
	if err != nil {
		t.Fatal(err)
	}
	if len(e.CorrelationID) != 36 {
		t.Fatalf("a new correlation id: %q", e.CorrelationID)
	}
	var kerr *Error
	err = p.PublishEventAsync(e, func(DeliveryReport) { t.Error("a refused event is not reported") })
	if !errors.As(err, &kerr) || kerr.Kind() != KindInvalidRecord || !strings.Contains(err.Error(), "data.user.id") {
		t.Fatalf("%v", err)
	}
	if err := p.MapEventTopic("a*b", "x"); !errors.As(err, &kerr) || kerr.Kind() != KindConfig {
		t.Fatalf("%v", err)
	}
	var envelope map[string]any
	if err := json.Unmarshal([]byte(e.JSON()), &envelope); err != nil || envelope["specversion"] != "1.0" {
		t.Fatalf("%v %v", envelope, err)
	}
}

func TestAnIdleProducerTurnsUnhealthyWhenEveryBrokerGoesAndHealthyWhenTheyReturn(t *testing.T) {
	c := cluster(t, "idle-health", 3)
	p := producer(t, c, map[string]string{"health.check.interval.ms": "300", "statistics.interval.ms": "100"})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := p.Send(ctx, Message{Topic: "idle-health", Value: []byte("before")}); err != nil {
		t.Fatal(err)
	}
	waitFor := func(status HealthStatus, limit time.Duration) Health {
		deadline := time.Now().Add(limit)
		for {
			h, err := p.Health()
			if err != nil {
				t.Fatal(err)
			}
			if h.Status == status || time.Now().After(deadline) {
				return h
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	if h := waitFor(Healthy, 10*time.Second); h.Status != Healthy {
		t.Fatalf("%+v", h)
	}
	for id := int32(1); id <= 3; id++ {
		if err := c.BrokerDown(id); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.PushRequestErrors("metadata", -195, -195, -195); err != nil {
		t.Fatal(err)
	}
	h := waitFor(Unhealthy, 10*time.Second)
	named := false
	for _, reason := range h.Reasons {
		for _, address := range strings.Split(c.BootstrapServers(), ",") {
			named = named || (strings.HasPrefix(reason, "no broker reachable") && strings.Contains(reason, address+"/"))
		}
	}
	if h.Status != Unhealthy || !named {
		t.Fatalf("%+v", h)
	}
	for id := int32(1); id <= 3; id++ {
		if err := c.BrokerUp(id); err != nil {
			t.Fatal(err)
		}
	}
	if h := waitFor(Healthy, 20*time.Second); h.Status != Healthy {
		t.Fatalf("%+v", h)
	}
}
