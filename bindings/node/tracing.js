'use strict'
// OpenTelemetry through the program's own `@opentelemetry/api` (an optional peer dependency): a
// `send <topic>` PRODUCER span per message (one per sendBatch) with the messaging semantic
// conventions, lasting until the report, and the W3C `traceparent`/`tracestate` headers of its
// context, written by the program's global propagator. Without the API, or while no tracer
// provider is registered, a send adds nothing (and costs one lookup).

let api = null
try {
  api = require('@opentelemetry/api')
} catch (error) {
  if (error.code !== 'MODULE_NOT_FOUND') throw error
}
const tracer = api?.trace.getTracer('kafkasender', require('./package.json').version)
// What the global tracer provider delegates to while no SDK has registered one.
const unregistered = api && new api.ProxyTracerProvider().getDelegate()

/** Whether a tracer provider is registered: the one check a send makes while nobody traces. */
function active() {
  return api !== null && api.trace.getTracerProvider().getDelegate() !== unregistered
}

/**
 * The span of sending `count` messages to `topic` (null: several topics) and the `[name, value]`
 * trace headers to add to each, or null when nobody traces.
 */
function start(topic, key, count) {
  if (!active()) return null
  const attributes = {
    'messaging.system': 'kafka',
    'messaging.operation.type': 'send',
    'messaging.operation.name': 'send',
  }
  if (topic !== null) attributes['messaging.destination.name'] = topic
  if (key !== null) attributes['messaging.kafka.message.key'] = textOf(key)
  if (count > 1) attributes['messaging.batch.message_count'] = count
  const span = tracer.startSpan(topic === null ? 'send' : `send ${topic}`, { kind: api.SpanKind.PRODUCER, attributes })
  if (!span.isRecording()) return null
  const carrier = {}
  api.propagation.inject(api.trace.setSpan(api.context.active(), span), carrier)
  return { span, headers: Object.entries(carrier).map(([name, value]) => [name, Buffer.from(String(value))]) }
}

/** Ends `span` with its reports: where the one message landed, or the first error's code. */
function end(span, reports) {
  if (reports.length === 1 && reports[0].outcome === 'delivered') {
    span.setAttribute('messaging.destination.partition.id', String(reports[0].partition))
    span.setAttribute('messaging.kafka.offset', Number(reports[0].offset))
  }
  const error = reports.find((report) => report.error !== null)?.error
  if (error) fail(span, error)
  else span.end()
}

/** Ends `span` of a send that failed with `error`. */
function fail(span, error) {
  span.setAttribute('error.type', error.code ?? error.name)
  span.setStatus({ code: api.SpanStatusCode.ERROR, message: error.message })
  span.end()
}

/** A key as the conventions want it: text, when it is UTF-8. */
function textOf(key) {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(key)
  } catch {
    return undefined
  }
}

/**
 * Tracing never fails a send: an error of the tracing SDK becomes a process warning, and the send
 * goes on untraced.
 */
function guarded(trace) {
  try {
    return trace()
  } catch (error) {
    process.emitWarning(`kafkasender: tracing failed: ${error}`)
    return null
  }
}

module.exports = {
  active,
  startSend: (topic, key, count) => guarded(() => start(topic, key, count)),
  endSend: (span, reports) => guarded(() => end(span, reports)),
  failSend: (span, error) => guarded(() => fail(span, error)),
}
