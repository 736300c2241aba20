'use strict'
// The prom-client collector: two producers in one registry, exposed and parsed back by an
// independent parser (parse-prometheus-text-format).

const assert = require('node:assert/strict')
const { test } = require('node:test')

const parsePrometheus = require('parse-prometheus-text-format')
const promClient = require('prom-client')

const { MockCluster, Producer } = require('..')
const { KafkaSenderCollector } = require('../prometheus')

test('two producers share one registry with histograms and breaker states', async () => {
  const cluster = new MockCluster(1)
  cluster.createTopic('prom', 1, 1)
  const config = { 'bootstrap.servers': cluster.bootstrapServers }
  const orders = new Producer({ ...config, 'client.id': 'orders' })
  const clicks = new Producer({ ...config, 'client.id': 'clicks "web"' })
  await Promise.all([1, 2, 3].map(() => orders.send({ topic: 'prom', value: 'o' })))
  await clicks.send({ topic: 'prom', value: 'c' })

  const registry = new promClient.Registry()
  new promClient.Counter({ name: 'app_requests_total', help: 'The application\'s own.', registers: [registry] }).inc()
  new KafkaSenderCollector(registry, orders, clicks)
  const text = await registry.metrics()
  const families = new Map(parsePrometheus(text).map((f) => [f.name, f]))
  await Promise.all([orders.close(), clicks.close()])

  assert.equal(families.get('app_requests_total').metrics[0].value, '1')
  const byClient = (family) => Object.fromEntries(family.metrics.map((m) => [m.labels.client_id, m]))
  const delivered = byClient(families.get('kafkasender_messages_delivered_total'))
  assert.equal(families.get('kafkasender_messages_delivered_total').type, 'COUNTER')
  assert.deepEqual([delivered.orders.value, delivered['clicks "web"'].value], ['3', '1'])
  assert.equal(families.get('kafkasender_delivery_latency_seconds').type, 'HISTOGRAM')
  // That parser drops a histogram's labels: its samples are checked as lines.
  for (const line of [
    'kafkasender_delivery_latency_seconds_bucket{client_id="orders",le="+Inf"} 3',
    'kafkasender_delivery_latency_seconds_count{client_id="orders"} 3',
    'kafkasender_delivery_latency_seconds_count{client_id="clicks \\"web\\""} 1',
  ]) assert.ok(text.split('\n').includes(line), line)
  const states = families.get('kafkasender_breaker_state').metrics.map((m) => [m.labels.client_id, m.labels.state, m.value])
  assert.ok(states.some(([c, s, v]) => c === 'orders' && s === 'closed' && v === '1'))
  assert.ok(states.some(([c, s, v]) => c === 'clicks "web"' && s === 'open' && v === '0'))
  const failed = families.get('kafkasender_messages_failed_total').metrics.filter((m) => m.labels.client_id === 'orders')
  assert.ok(failed.some((m) => m.labels.kind === 'queue_full'))

  // A closed producer is left out of later scrapes.
  const after = new Map(parsePrometheus(await registry.metrics()).map((f) => [f.name, f]))
  assert.deepEqual(after.get('kafkasender_messages_delivered_total')?.metrics ?? [], [])
})
