'use strict'
// Business events from Node: the envelope read back from a mock cluster, topic mapping, key,
// headers, and the correlation id of the current async context (AsyncLocalStorage).

const assert = require('node:assert/strict')
const { test } = require('node:test')

const { Event, EventBuilder, KafkaSenderError, MockCluster, Producer, currentCorrelationId, withCorrelationId } = require('..')

const cluster = new MockCluster(3)
let next = 0
const freshTopic = (name) => {
  const topic = `node-${name}-${process.pid}-${next++}`
  cluster.createTopic(topic, 2, 3)
  return topic
}

test('events land where their type maps, keyed by correlation id, with ce_* headers and the envelope', async () => {
  const [users, errors, rest] = [freshTopic('users'), freshTopic('errors'), freshTopic('default')]
  const producer = new Producer({
    'bootstrap.servers': cluster.bootstrapServers,
    'event.topic.map': `user.*=${users}`,
    'event.default.topic': rest,
  })
  producer.mapEventTopic('api.error', errors)
  const builder = new EventBuilder('node-test', { version: '2' })
  const registered = withCorrelationId('req-42', () => builder.event('user.registered', { user: { id: 7 } }))
  const failed = builder.causedBy(registered, 'api.error', { status: 503 })
  const other = builder.event('order.placed', [1, 2.5, null, 'ünïcode'])
  assert.equal((await producer.publishEvent(registered)).outcome, 'delivered')
  const reports = await producer.publishEvents([failed, other], { rejectOnFailure: true })
  assert.deepEqual(reports.map((r) => r.topic), [errors, rest])
  await producer.close()

  for (const [event, topic] of [[registered, users], [failed, errors], [other, rest]]) {
    const [record] = cluster.readTopic(topic)
    const envelope = JSON.parse(record.value.toString())
    assert.equal(envelope.specversion, '1.0')
    assert.equal(envelope.datacontenttype, 'application/json')
    assert.deepEqual(envelope.data, event.data)
    assert.equal(record.key.toString(), event.correlationId)
    const headers = Object.fromEntries(record.headers.map(([k, v]) => [k, v.toString()]))
    assert.deepEqual(headers, {
      ce_specversion: '1.0', ce_id: event.id, ce_type: event.type, ce_source: 'node-test',
      'correlation-id': event.correlationId, 'content-type': 'application/json',
    })
    assert.equal(Event.fromJSON(record.value).toJSON(), event.toJSON())
  }
  assert.equal(registered.correlationId, 'req-42')
  assert.equal(failed.correlationId, 'req-42')
  assert.equal(failed.causationId, registered.id)
  assert.notEqual(other.correlationId, 'req-42')
})

test('each async context keeps its own correlation id across awaits', async () => {
  const builder = new EventBuilder('node-test')
  const handle = (id) => withCorrelationId(id, async () => {
    await new Promise((resolve) => setTimeout(resolve, 5))
    return builder.event('request.handled', {}).correlationId
  })
  assert.deepEqual(await Promise.all([0, 1, 2, 3].map((i) => handle(`req-${i}`))), ['req-0', 'req-1', 'req-2', 'req-3'])
  assert.equal(currentCorrelationId(), undefined)
})

test('data that is not JSON and an event without its key field are refused', async () => {
  const builder = new EventBuilder('node-test')
  assert.throws(() => builder.event('x.y', undefined), TypeError)
  assert.throws(() => builder.event('x.y', { n: 10n }), TypeError)
  const topic = freshTopic('keyed')
  const producer = new Producer({
    'bootstrap.servers': cluster.bootstrapServers, 'event.key.field': 'data.user.id', 'event.default.topic': topic,
  })
  assert.throws(() => producer.publishEvent(builder.event('user.seen', { user: {} })),
    (e) => e instanceof KafkaSenderError && e.code === 'invalid_record' && /data\.user\.id/.test(e.message))
  assert.throws(() => producer.publishEvent({ type: 'not an Event' }), TypeError)
  await producer.publishEvent(builder.event('user.seen', { user: { id: 9 } }))
  await producer.close()
  assert.equal(cluster.readTopic(topic)[0].key.toString(), '9')
})

test('an idle producer turns unhealthy when every broker goes, and healthy when they return', async () => {
  const local = new MockCluster(3)
  local.createTopic('idle-health', 3, 3)
  const producer = new Producer({
    'bootstrap.servers': local.bootstrapServers, 'health.check.interval.ms': 300, 'statistics.interval.ms': 100,
  })
  await producer.send({ topic: 'idle-health', value: 'before' })
  const waitFor = async (status, limitMs) => {
    const deadline = Date.now() + limitMs
    for (;;) {
      const health = producer.health()
      if (health.status === status || Date.now() > deadline) return health
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
  }
  assert.equal((await waitFor('healthy', 10000)).status, 'healthy')
  for (const id of [1, 2, 3]) local.brokerDown(id)
  local.pushRequestErrors('metadata', [-195, -195, -195])
  const health = await waitFor('unhealthy', 10000)
  assert.equal(health.status, 'unhealthy', JSON.stringify(health))
  const reason = health.reasons.find((r) => r.startsWith('no broker reachable'))
  assert.ok(local.bootstrapServers.split(',').some((address) => reason.includes(`${address}/`)), reason)
  for (const id of [1, 2, 3]) local.brokerUp(id)
  assert.equal((await waitFor('healthy', 20000)).status, 'healthy')
  await producer.close()
})
