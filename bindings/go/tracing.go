package kafkasender

import (
	"context"
	"strconv"
	"sync/atomic"
	"unicode/utf8"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// OpenTelemetry through the program's own global tracer provider and propagator (otel's API; no
// SDK is linked): Send and PublishEvent start a "send <topic>" PRODUCER span under ctx with the
// messaging semantic conventions, lasting until the report, and add the W3C traceparent and
// tracestate headers of its context. While no SDK tracer provider is set the span does not record
// and nothing is added.
const tracerName = "github.com/kafkasender/kafkasender-go"

// providerTracer is the tracer of the global provider it came from.
type providerTracer struct {
	provider trace.TracerProvider
	tracer   trace.Tracer
}

var lastTracer atomic.Pointer[providerTracer]

// currentTracer is the global provider's tracer, made again when the program sets another
// provider (a tracer taken once would stay with the first provider).
func currentTracer() trace.Tracer {
	provider := otel.GetTracerProvider()
	if last := lastTracer.Load(); last != nil && last.provider == provider {
		return last.tracer
	}
	fresh := &providerTracer{provider, provider.Tracer(tracerName)}
	lastTracer.Store(fresh)
	return fresh.tracer
}

// traceSend starts the span of sending m under ctx. It returns m with the trace headers (replacing
// any of the same name; the caller's slice is not changed) and the function that ends the span
// with the report or the refusal, or ok=false when nobody traces.
func traceSend(ctx context.Context, m Message) (traced Message, end func(DeliveryReport, error), ok bool) {
	attributes := []attribute.KeyValue{
		attribute.String("messaging.system", "kafka"),
		attribute.String("messaging.operation.type", "send"),
		attribute.String("messaging.operation.name", "send"),
		attribute.String("messaging.destination.name", m.Topic),
	}
	if m.Key != nil && utf8.Valid(m.Key) {
		attributes = append(attributes, attribute.String("messaging.kafka.message.key", string(m.Key)))
	}
	ctx, span := currentTracer().Start(ctx, "send "+m.Topic, trace.WithSpanKind(trace.SpanKindProducer), trace.WithAttributes(attributes...))
	if !span.IsRecording() {
		return m, nil, false
	}
	carrier := headerCarrier{}
	otel.GetTextMapPropagator().Inject(ctx, &carrier)
	headers := make([]Header, 0, len(m.Headers)+len(carrier))
	for _, h := range m.Headers {
		if _, replaced := carrier.get(h.Key); !replaced {
			headers = append(headers, h)
		}
	}
	m.Headers = append(headers, carrier...)
	end = func(r DeliveryReport, refused error) {
		err := refused
		if err == nil {
			err = r.Err
		}
		if err == nil && r.Outcome == OutcomeDelivered {
			span.SetAttributes(attribute.String("messaging.destination.partition.id", strconv.Itoa(int(r.Partition))),
				attribute.Int64("messaging.kafka.offset", r.Offset))
		}
		if err != nil {
			errorType := "internal"
			if e, isOurs := err.(*Error); isOurs {
				errorType = e.Kind().String()
			}
			span.SetAttributes(attribute.String("error.type", errorType))
			span.SetStatus(codes.Error, err.Error())
		}
		span.End()
	}
	return m, end, true
}

// sendTraced sends m with SendAsync, within the span of ctx when someone traces.
func (p *Producer) sendTraced(ctx context.Context, m Message, onDelivery func(DeliveryReport)) error {
	traced, end, ok := traceSend(ctx, m)
	if !ok {
		return p.SendAsync(m, onDelivery)
	}
	err := p.SendAsync(traced, func(r DeliveryReport) {
		end(r, nil)
		onDelivery(r)
	})
	if err != nil {
		end(DeliveryReport{}, err)
	}
	return err
}

// headerCarrier collects what the propagator injects, as headers.
type headerCarrier []Header

func (c headerCarrier) get(key string) (string, bool) {
	for _, h := range c {
		if h.Key == key {
			return string(h.Value), true
		}
	}
	return "", false
}

func (c headerCarrier) Get(key string) string {
	value, _ := c.get(key)
	return value
}

func (c *headerCarrier) Set(key, value string) {
	for i, h := range *c {
		if h.Key == key {
			(*c)[i].Value = []byte(value)
			return
		}
	}
	*c = append(*c, Header{Key: key, Value: []byte(value)})
}

func (c headerCarrier) Keys() []string {
	keys := make([]string, len(c))
	for i, h := range c {
		keys[i] = h.Key
	}
	return keys
}
