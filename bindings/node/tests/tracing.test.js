'use strict'
// OpenTelemetry through @opentelemetry/api: a PRODUCER span per send (one per sendBatch) with the
// messaging conventions, and a traceparent a consumer reads back that continues the sender's
// trace. node --test runs each file in its own process, so the provider registered here is this
// file's alone.

const assert = require('node:assert/strict')
const { test } = require('node:test')

const api = require('@opentelemetry/api')
const { InMemorySpanExporter, NodeTracerProvider, SimpleSpanProcessor } = require('@opentelemetry/sdk-trace-node')

const { MockCluster, Producer } = require('..')

const cluster = new MockCluster(1)
let next = 0
const freshTopic = () => {
  const topic = `node-traced-${process.pid}-${next++}`
  cluster.createTopic(topic, 2, 1)
  return topic
}
const traceparents = (topic) =>
  cluster.readTopic(topic).map((r) => r.headers.filter(([k]) => k === 'traceparent').map(([, v]) => v.toString()))
const traceparentOf = (span) => {
  const { traceId, spanId, traceFlags } = span.spanContext()
  return `00-${traceId}-${spanId}-${traceFlags.toString(16).padStart(2, '0')}`
}

test('without a registered tracer provider a send carries no trace headers', async () => {
  const topic = freshTopic()
  const producer = new Producer({ 'bootstrap.servers': cluster.bootstrapServers })
  await producer.send({ topic, value: 'v' })
  await producer.close()
  assert.deepEqual(traceparents(topic), [[]])
})

test('a send span continues the caller\'s trace to the consumer', async () => {
  const exporter = new InMemorySpanExporter()
  new NodeTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }).register()
  const topic = freshTopic()
  const producer = new Producer({ 'bootstrap.servers': cluster.bootstrapServers })
  let report
  await api.trace.getTracer('test').startActiveSpan('request', async (request) => {
    report = await producer.send({ topic, key: 'k', value: 'v', headers: { traceparent: '00-stale' } })
    await producer.sendBatch([{ topic, value: '1' }, { topic, value: '2' }])
    request.end()
  })
  await assert.rejects(producer.send({ topic: 'bad topic name!', value: 'v' }), { code: 'invalid_record' })
  await producer.close()

  const spans = exporter.getFinishedSpans()
  const request = spans.find((s) => s.name === 'request')
  const sends = spans.filter((s) => s.name === `send ${topic}`)
  assert.equal(sends.length, 2)
  const batch = sends.find((s) => s.attributes['messaging.batch.message_count'] === 2)
  const one = sends.find((s) => s !== batch)
  for (const send of [one, batch]) {
    assert.equal(send.kind, api.SpanKind.PRODUCER)
    assert.equal(send.parentSpanContext.spanId, request.spanContext().spanId)
    assert.equal(send.spanContext().traceId, request.spanContext().traceId)
    assert.equal(send.status.code, api.SpanStatusCode.UNSET)
    assert.equal(send.attributes['messaging.system'], 'kafka')
    assert.equal(send.attributes['messaging.destination.name'], topic)
    assert.equal(send.attributes['messaging.operation.type'], 'send')
  }
  assert.equal(one.attributes['messaging.kafka.message.key'], 'k')
  assert.equal(one.attributes['messaging.destination.partition.id'], String(report.partition))
  assert.equal(one.attributes['messaging.kafka.offset'], Number(report.offset))
  const refused = spans.find((s) => s.name === 'send bad topic name!')
  assert.equal(refused.status.code, api.SpanStatusCode.ERROR)
  assert.equal(refused.attributes['error.type'], 'invalid_record')

  // The caller's stale traceparent is replaced, not repeated.
  assert.deepEqual(traceparents(topic).sort(), [[traceparentOf(one)], [traceparentOf(batch)], [traceparentOf(batch)]].sort())
})
