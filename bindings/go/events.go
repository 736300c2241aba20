package kafkasender

/*
#include <stdlib.h>
#include "shim.h"
*/
import "C"

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"time"
	"unsafe"
)

// Event is one business event: a CloudEvents 1.0 envelope made by the core. Make events with an
// EventBuilder; publish them with PublishEvent.
type Event struct {
	ID            string
	Type          string
	Source        string
	Time          time.Time
	Data          json.RawMessage
	CorrelationID string
	CausationID   string // "" when none
	Version       string // "" when none
	envelope      string
}

// JSON is the envelope in the CloudEvents JSON format, as published.
func (e Event) JSON() string { return e.envelope }

// ParseEvent reads an envelope (the value of a record PublishEvent wrote).
func ParseEvent(envelope []byte) (Event, error) {
	var fields struct {
		SpecVersion   string          `json:"specversion"`
		ID            string          `json:"id"`
		Type          string          `json:"type"`
		Source        string          `json:"source"`
		Time          time.Time       `json:"time"`
		Data          json.RawMessage `json:"data"`
		CorrelationID string          `json:"correlationid"`
		CausationID   string          `json:"causationid"`
		Version       string          `json:"version"`
	}
	if err := json.Unmarshal(envelope, &fields); err != nil || fields.SpecVersion != "1.0" {
		return Event{}, statusError(C.KS_STATUS_INVALID_RECORD, fmt.Sprintf("not a kafkasender event: %v", err))
	}
	return Event{ID: fields.ID, Type: fields.Type, Source: fields.Source, Time: fields.Time, Data: fields.Data,
		CorrelationID: fields.CorrelationID, CausationID: fields.CausationID, Version: fields.Version,
		envelope: string(envelope)}, nil
}

// EventBuilder makes events of one Source. Each event gets a new id, the current time, Version
// and a correlation id: the builder's CorrelationID, else the one ctx carries (WithCorrelationID),
// else a new one.
type EventBuilder struct {
	Source        string
	Version       string
	CorrelationID string
}

// Event makes an event of eventType whose data is data encoded by encoding/json (what it cannot
// encode is an error: nothing is guessed).
func (b EventBuilder) Event(ctx context.Context, eventType string, data any) (Event, error) {
	correlationID := b.CorrelationID
	if correlationID == "" {
		correlationID = CorrelationID(ctx)
	}
	return b.event(eventType, data, correlationID, "")
}

// CausedBy makes an event that cause led to: the correlation id carries over, the causation id is
// cause.ID.
func (b EventBuilder) CausedBy(cause Event, eventType string, data any) (Event, error) {
	return b.event(eventType, data, cause.CorrelationID, cause.ID)
}

func (b EventBuilder) event(eventType string, data any, correlationID, causationID string) (Event, error) {
	dataJSON, err := json.Marshal(data)
	if err != nil {
		return Event{}, statusError(C.KS_STATUS_INVALID_RECORD, "event data: "+err.Error())
	}
	var strings []*C.char
	text := func(s string) *C.char {
		if s == "" {
			return nil
		}
		c := C.CString(s)
		strings = append(strings, c)
		return c
	}
	defer func() {
		for _, s := range strings {
			C.free(unsafe.Pointer(s))
		}
	}()
	fields := C.ks_event_fields{
		event_type: text(eventType), data_json: text(string(dataJSON)), source: text(b.Source),
		correlation_id: text(correlationID), causation_id: text(causationID), version: text(b.Version),
	}
	runtime.LockOSThread() // the last error belongs to this thread
	defer runtime.UnlockOSThread()
	var envelope *C.char
	if err := lastError(C.ks_event_new(&fields, &envelope)); err != nil {
		return Event{}, err
	}
	defer C.ks_string_free(envelope)
	return ParseEvent([]byte(C.GoString(envelope)))
}

type correlationKey struct{}

// WithCorrelationID returns a context whose events (EventBuilder.Event) carry correlationID.
func WithCorrelationID(ctx context.Context, correlationID string) context.Context {
	return context.WithValue(ctx, correlationKey{}, correlationID)
}

// CorrelationID is the correlation id ctx carries, or "".
func CorrelationID(ctx context.Context) string {
	id, _ := ctx.Value(correlationKey{}).(string)
	return id
}

// PublishEventAsync publishes e like SendAsync: the envelope as the value, to the topic its type
// maps to (event.topic.map, MapEventTopic), keyed by event.key.field, with ce_* headers.
func (p *Producer) PublishEventAsync(e Event, onDelivery func(DeliveryReport)) error {
	return p.withEventMessage(e, func(msg *C.ks_message) error {
		key := C.GoBytes(unsafe.Pointer(msg.key), C.int(msg.key_len))
		return p.sendTokened(pending{onDelivery: onDelivery, topic: C.GoString(msg.topic), key: key},
			func(c *C.ks_producer, token C.uint64_t) C.ks_go_result { return C.ks_go_send_message(c, msg, token) })
	})
}

// PublishEvent publishes e and waits for its report, like Send (and traced like it).
func (p *Producer) PublishEvent(ctx context.Context, e Event) (DeliveryReport, error) {
	var m Message
	if err := p.withEventMessage(e, func(msg *C.ks_message) error { m = goMessage(msg); return nil }); err != nil {
		return DeliveryReport{}, err
	}
	return waitForReport(ctx, func(onDelivery func(DeliveryReport)) error { return p.sendTraced(ctx, m, onDelivery) })
}

// withEventMessage calls use with the message the core makes of e, valid only during the call.
func (p *Producer) withEventMessage(e Event, use func(msg *C.ks_message) error) error {
	envelope := C.CString(e.envelope)
	defer C.free(unsafe.Pointer(envelope))
	var record *C.ks_event_record
	if err := p.call(func(c *C.ks_producer) uint32 { return C.ks_producer_event_record(c, envelope, &record) }); err != nil {
		return err
	}
	defer C.ks_event_record_free(record)
	return use(C.ks_event_record_message(record))
}

// goMessage copies a C message into Go memory.
func goMessage(msg *C.ks_message) Message {
	m := Message{Topic: C.GoString(msg.topic)}
	if msg.key != nil {
		m.Key = C.GoBytes(unsafe.Pointer(msg.key), C.int(msg.key_len))
	}
	if msg.value != nil {
		m.Value = C.GoBytes(unsafe.Pointer(msg.value), C.int(msg.value_len))
	}
	for _, h := range unsafe.Slice(msg.headers, msg.headers_len) {
		header := Header{Key: C.GoString(h.key)}
		if h.value != nil {
			header.Value = C.GoBytes(unsafe.Pointer(h.value), C.int(h.value_len))
		}
		m.Headers = append(m.Headers, header)
	}
	return m
}

// MapEventTopic sends events of a type ("api.error") or a prefix pattern ("user.*") to topic
// from now on, over what event.topic.map said.
func (p *Producer) MapEventTopic(pattern, topic string) error {
	cPattern, cTopic := C.CString(pattern), C.CString(topic)
	defer C.free(unsafe.Pointer(cPattern))
	defer C.free(unsafe.Pointer(cTopic))
	return p.call(func(c *C.ks_producer) uint32 { return C.ks_producer_map_event_topic(c, cPattern, cTopic) })
}
