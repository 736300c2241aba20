'use strict'
// The Node face against librdkafka's mock cluster. Every delivery claim is read back, with
// kafkajs (an independent client) where a consumer is needed and the core's read-back otherwise.

const assert = require('node:assert/strict')
const { spawnSync } = require('node:child_process')
const path = require('node:path')
const { test } = require('node:test')
const { Worker } = require('node:worker_threads')

const { KafkaSenderError, MockCluster, Producer } = require('..')

process.env.KAFKA_LOG_LEVEL = 'off'
const cluster = new MockCluster(3)
let topics = 0
function topic(partitions = 4) {
  const name = `node-${process.pid}-${++topics}`
  cluster.createTopic(name, partitions, 3)
  return name
}
function producer(extra = {}) {
  return new Producer({ 'bootstrap.servers': cluster.bootstrapServers, 'log.level': 'off', ...extra })
}
const values = (records) => records.map((r) => (r.value === null ? null : r.value.toString()))

test('promises resolve with reports that kafkajs reads back', async () => {
  const t = topic()
  const p = producer()
  const reports = await Promise.all(Array.from({ length: 100 }, (_, i) =>
    p.send({ topic: t, value: `v-${i}`, key: `k-${i % 5}`, headers: { n: String(i) } })))
  await p.close()
  assert.ok(reports.every((r) => r.outcome === 'delivered' && r.error === null && typeof r.offset === 'bigint'))

  const { Kafka, logLevel } = require('kafkajs')
  const kafka = new Kafka({ brokers: cluster.bootstrapServers.split(','), logLevel: logLevel.NOTHING })
  const consumer = kafka.consumer({ groupId: `g-${t}` })
  await consumer.connect()
  await consumer.subscribe({ topic: t, fromBeginning: true })
  const seen = []
  await new Promise((resolve, reject) => {
    consumer.run({
      eachMessage: async ({ partition, message }) => {
        seen.push({ partition, offset: BigInt(message.offset), key: message.key.toString(), value: message.value.toString(), n: message.headers.n.toString() })
        if (seen.length === 100) resolve()
      },
    }).catch(reject)
  })
  await consumer.disconnect()
  for (const [i, report] of reports.entries()) {
    const read = seen.find((s) => s.partition === report.partition && s.offset === report.offset)
    assert.deepEqual(read, { partition: report.partition, offset: report.offset, key: `k-${i % 5}`, value: `v-${i}`, n: String(i) })
    assert.equal(report.key.toString(), `k-${i % 5}`)
  }
})

test('the callback form is called once with (null, report)', async () => {
  const t = topic()
  const p = producer()
  const calls = await new Promise((resolve) => {
    const got = []
    for (let i = 0; i < 10; i++) {
      p.send({ topic: t, value: String(i) }, (err, report) => {
        got.push([err, report.outcome])
        if (got.length === 10) resolve(got)
      })
    }
  })
  assert.deepEqual(calls, Array(10).fill([null, 'delivered']))
  await p.close()
  assert.equal(cluster.readTopic(t).length, 10)
})

test('ten thousand concurrent send promises', async () => {
  const t = topic(8)
  const p = producer()
  const reports = await Promise.all(Array.from({ length: 10000 }, (_, i) => p.send({ topic: t, value: String(i) })))
  await p.close()
  assert.equal(reports.filter((r) => r.outcome === 'delivered').length, 10000)
  assert.equal(new Set(values(cluster.readTopic(t))).size, 10000)
})

test('a loop of sends that never yields hands them over a chunk at a time and calls back only after it', async () => {
  const t = topic()
  const p = producer({ 'message.max.bytes': 2000 })
  let looping = true
  let calledInLoop = 0
  const outcomes = []
  const done = new Promise((resolve) => {
    for (let i = 0; i < 10000; i++) {
      // Message 10 is refused as the first chunk crosses, inside a later send of this loop.
      p.send({ topic: t, value: i === 10 ? Buffer.alloc(5000) : String(i) }, (err, report) => {
        if (looping) calledInLoop++
        outcomes[i] = err ? err.code : report.outcome
        if (outcomes.filter(Boolean).length === 10000) resolve()
      })
    }
  })
  const sentInLoop = p.metrics().sent
  looping = false
  await done
  await p.close()
  assert.ok(sentInLoop >= 8000, `${sentInLoop} of 10000 handed over before the loop yielded`)
  assert.equal(calledInLoop, 0, 'no callback runs inside send')
  assert.equal(outcomes[10], 'message_too_large')
  assert.equal(outcomes.filter((o) => o === 'delivered').length, 9999)
  assert.equal(cluster.readTopic(t).length, 9999)
})

test('a full queue makes sends wait off the event loop, in order', async () => {
  const t = topic(1)
  const p = producer({ 'queue.buffering.max.messages': 10 })
  let ticks = 0
  const ticker = setInterval(() => ticks++, 1)
  const reports = await Promise.all(Array.from({ length: 2000 }, (_, i) =>
    p.send({ topic: t, value: String(i), key: 'one key', ...(i % 7 === 0 ? { headers: { n: String(i) } } : {}) })))
  clearInterval(ticker)
  await p.close()
  assert.ok(reports.every((r) => r.outcome === 'delivered'))
  assert.ok(ticks > 0, 'the event loop kept running while sends waited for room')
  assert.deepEqual(values(cluster.readTopic(t)), Array.from({ length: 2000 }, (_, i) => String(i)), 'send order kept')
})

test('every accepted argument type lands as bytes', async () => {
  const t = topic(1)
  const p = producer()
  await p.send({ topic: t, value: Buffer.from('buffer'), key: null })
  await p.send({ topic: t, value: new Uint8Array([104, 105]), key: new Uint8Array([107]), headers: [['h', '1'], ['h', Buffer.from('2')]] })
  await p.send({ topic: t, value: 'strüng', key: 'kéy', headers: { h: 'värde', nothing: null } })
  await p.send({ topic: t, value: null, key: 'tombstone', partition: 0, timestamp: 1700000000000 })
  const batch = await p.sendBatch([{ topic: t, value: 'b1' }, { topic: 'bad topic!', value: 'x' }, { topic: t, value: 'b2' }])
  await p.close()
  assert.deepEqual(batch.map((r) => r.outcome), ['delivered', 'failed', 'delivered'])
  assert.equal(batch[1].error.code, 'invalid_record')
  const read = cluster.readTopic(t)
  assert.deepEqual(values(read), ['buffer', 'hi', 'strüng', null, 'b1', 'b2'])
  assert.deepEqual(read[1].headers.map(([k, v]) => [k, v.toString()]), [['h', '1'], ['h', '2']])
  assert.deepEqual(read[2].headers.map(([k, v]) => [k, v === null ? null : v.toString()]), [['h', 'värde'], ['nothing', null]])
  assert.equal(read[2].key.toString(), 'kéy')
})

test('sendBatch keeps its place among sends, carries headers, partitions and timestamps, and fails all after close', async () => {
  const t = topic(1)
  const p = producer()
  const before = p.send({ topic: t, value: 'a' })
  const batch = p.sendBatch([
    { topic: t, value: 'b1', key: 'k', headers: { h: 'x' } },
    { topic: t, value: 'b2', partition: 0, timestamp: 1700000000000 },
    { topic: t, value: 'b3' },
  ])
  const after = p.send({ topic: t, value: 'c' })
  assert.deepEqual(await p.sendBatch([]), [])
  const reports = await batch
  await Promise.all([before, after])
  assert.equal(p.inFlight, 0)
  const u = topic(1)
  await assert.rejects(p.sendBatch([{ topic: u, value: 'ok' }, { topic: 'bad topic!', value: 'x' }], { rejectOnFailure: true }),
    (e) => e.code === 'invalid_record' && e.reports.map((r) => r.outcome).join() === 'delivered,failed')
  assert.equal((await p.sendBatch([{ topic: u, value: 'ok' }], { rejectOnFailure: true }))[0].outcome, 'delivered')
  await p.close()
  assert.deepEqual(reports.map((r) => [r.outcome, r.topic, r.key?.toString() ?? null]),
    [['delivered', t, 'k'], ['delivered', t, null], ['delivered', t, null]])
  const read = cluster.readTopic(t)
  assert.deepEqual(values(read), ['a', 'b1', 'b2', 'b3', 'c'])
  assert.deepEqual(read[1].headers.map(([k, v]) => [k, v.toString()]), [['h', 'x']])
  const closed = await p.sendBatch([{ topic: t, value: 'late' }, { topic: t, value: 'later' }])
  assert.deepEqual(closed.map((r) => [r.outcome, r.error.code]), [['failed', 'closed'], ['failed', 'closed']])
  assert.equal(p.inFlight, 0)
})

test('metrics and error codes are the core lists (tests/parity)', async () => {
  const fs = require('node:fs')
  const parity = path.join(__dirname, '..', '..', '..', 'tests', 'parity')
  const camel = (name) => name.replace(/_([a-z0-9])/g, (_, c) => c.toUpperCase())
  const names = fs.readFileSync(path.join(parity, 'metrics.txt'), 'utf8').trim().split('\n').map(camel)
  const p = producer()
  assert.deepEqual(Object.keys(p.metrics()).sort(), [...names].sort())
  await p.close()
  const kinds = fs.readFileSync(path.join(parity, 'error_kinds.txt'), 'utf8').trim().split('\n').map((l) => l.split(' ')[1])
  const declared = fs.readFileSync(path.join(__dirname, '..', 'index.d.ts'), 'utf8')
  const union = declared.slice(declared.indexOf('code:'), declared.indexOf('retriable'))
  assert.deepEqual([...union.matchAll(/'([a-z_]+)'/g)].map((m) => m[1]).sort(), [...kinds].sort())
})

test('wrong argument types throw TypeError at once', () => {
  const p = producer()
  const t = 'whatever'
  for (const [message, named] of [
    [null, /message/], [{ topic: 1 }, /topic/], [{ topic: t, value: 1 }, /value/], [{ topic: t, key: {} }, /key/],
    [{ topic: t, headers: 'h' }, /headers/], [{ topic: t, headers: [['h']] }, /header/], [{ topic: t, partition: 1.5 }, /partition/],
    [{ topic: t, timestamp: 'now' }, /timestamp/],
  ]) {
    assert.throws(() => p.send(message), (e) => e instanceof TypeError && named.test(e.message))
  }
  assert.throws(() => p.send({ topic: t }, 'not a function'), TypeError)
  assert.throws(() => p.sendBatch('x'), TypeError)
  assert.throws(() => new Producer([]), TypeError)
  assert.throws(() => new Producer({ 'linger.ms': {} }), TypeError)
  return p.close()
})

test('every reachable error code arrives as a KafkaSenderError', async () => {
  assert.throws(() => new Producer({ 'bootstrap.servers': cluster.bootstrapServers, 'no.such.key': 1, 'linger.ms': 'soon' }),
    (e) => e instanceof KafkaSenderError && e.code === 'config' && /no\.such\.key/.test(e.message) && /linger\.ms/.test(e.message))

  const t = topic(1)
  const p = producer({ 'message.max.bytes': 1000, 'ratelimit.messages.per.second': 1, 'ratelimit.burst': 1, 'enqueue.timeout.ms': 50 })
  const codeOf = (promise) => promise.then(() => 'ok', (e) => (e instanceof KafkaSenderError ? e.code : e))
  assert.equal(await codeOf(p.send({ topic: 'bad topic!', value: 'x' })), 'invalid_record')
  assert.equal(await codeOf(p.send({ topic: t, value: 'x'.repeat(2000) })), 'message_too_large')
  // Back to back: awaiting the first could take longer than the second a new token takes.
  const first = p.send({ topic: t, value: 'first' })
  const limited = await p.send({ topic: t, value: 'second' }).catch((e) => e)
  assert.equal(limited.code, 'rate_limited')
  assert.equal(limited.retriable, true)
  assert.equal(await codeOf(first), 'ok')
  await p.close()
  assert.equal(await codeOf(p.send({ topic: t, value: 'late' })), 'closed')

  const down = new MockCluster(1)
  down.brokerDown(1)
  const base = { 'bootstrap.servers': down.bootstrapServers, 'log.level': 'off', 'message.timeout.ms': 300, 'retry.max': 0 }
  const q = new Producer(base)
  const timedOut = await q.send({ topic: 't', value: 'lost' }).catch((e) => e)
  assert.equal(timedOut.code, 'timeout')
  assert.equal(typeof timedOut.rdkafkaCode, 'number')
  await q.close()
  const b = new Producer({ ...base, 'breaker.enabled': true, 'breaker.consecutive.failures': 1, 'breaker.timeout.ms': '1h' })
  let refused = null
  for (let i = 0; i < 100 && refused === null; i++) {
    const e = await b.send({ topic: 't', value: 'x' }).catch((err) => err)
    if (e.code === 'circuit_open') refused = e
  }
  assert.equal(refused?.code, 'circuit_open')
  await b.close()
  assert.deepEqual(values(cluster.readTopic(t)), ['first'])
})

test('close in flight settles every promise exactly once', async () => {
  const down = new MockCluster(1)
  down.brokerDown(1)
  const p = new Producer({ 'bootstrap.servers': down.bootstrapServers, 'log.level': 'off' })
  let settled = 0
  const all = Array.from({ length: 300 }, () => p.send({ topic: 't', value: 'x' }).then(
    () => { settled++; return 'delivered' }, (e) => { settled++; return e.code }))
  await p.close(200)
  const codes = await Promise.all(all)
  assert.equal(settled, 300)
  assert.ok(codes.every((c) => c === 'closed'), codes[0])
  assert.equal(p.inFlight, 0)
})

test('worker threads use producers of their own', async () => {
  const t = topic()
  const script = `
    const { parentPort, workerData } = require('node:worker_threads')
    const { Producer } = require(${JSON.stringify(path.join(__dirname, '..'))})
    const p = new Producer({ 'bootstrap.servers': workerData.bootstrap, 'log.level': 'off' })
    Promise.all(Array.from({ length: 500 }, (_, i) => p.send({ topic: workerData.topic, value: workerData.id + '-' + i })))
      .then(() => p.close()).then(() => parentPort.postMessage('done'))`
  const results = await Promise.all([1, 2, 3, 4].map((id) => new Promise((resolve, reject) => {
    const worker = new Worker(script, { eval: true, workerData: { bootstrap: cluster.bootstrapServers, topic: t, id } })
    worker.on('message', resolve)
    worker.on('error', reject)
  })))
  assert.deepEqual(results, ['done', 'done', 'done', 'done'])
  assert.equal(new Set(values(cluster.readTopic(t))).size, 2000)
})

function runScript(body) {
  const script = `const { Producer } = require(${JSON.stringify(path.join(__dirname, '..'))});\n${body}`
  return spawnSync(process.execPath, ['-e', script], { timeout: 30000, encoding: 'utf8', env: { ...process.env, KAFKA_LOG_LEVEL: 'off' } })
}

test('a process exits by itself once its producer is closed, and exit with one open does not crash', () => {
  const t = topic(1)
  const closed = runScript(`
    const p = new Producer({ 'bootstrap.servers': ${JSON.stringify(cluster.bootstrapServers)} })
    p.send({ topic: ${JSON.stringify(t)}, value: 'closed' }).then(() => p.close())`)
  assert.equal(closed.status, 0, closed.stderr)
  assert.equal(closed.signal, null, 'exited by itself, not killed by the timeout')

  const pending = runScript(`
    const p = new Producer({ 'bootstrap.servers': ${JSON.stringify(cluster.bootstrapServers)} })
    p.send({ topic: ${JSON.stringify(t)}, value: 'pending' }).then((r) => console.log(r.outcome))`)
  assert.equal(pending.status, 0, pending.stderr)
  assert.equal(pending.stdout.trim(), 'delivered', 'an open producer keeps the process alive while a send is pending')

  const exiting = runScript(`
    const p = new Producer({ 'bootstrap.servers': ${JSON.stringify(cluster.bootstrapServers)} })
    for (let i = 0; i < 1000; i++) p.send({ topic: ${JSON.stringify(t)}, value: 'x' })
    setTimeout(() => process.exit(0), 20)`)
  assert.equal(exiting.status, 0, exiting.stderr)
  assert.deepEqual(values(cluster.readTopic(t)).slice(0, 2), ['closed', 'pending'])
})

test('metrics, prometheus text and health describe the producer', async () => {
  const t = topic()
  const p = producer()
  await Promise.all(Array.from({ length: 10 }, () => p.send({ topic: t, value: '0123456789' })))
  const m = p.metrics()
  assert.deepEqual([m.sent, m.delivered, m.failed, m.bytesSent, m.inFlight], [10, 10, 0, 100, 0])
  assert.ok(m.latencyP99Seconds >= m.latencyP50Seconds && m.latencyP50Seconds > 0)
  assert.match(p.metricsPrometheus(), /kafkasender_messages_delivered_total\{client_id="kafkasender"\} 10/)
  assert.deepEqual(p.health(), { status: 'healthy', reasons: [] })
  await p.close()
  assert.equal(p.health().status, 'unhealthy')
})

test('fromEnv reads KAFKA_* variables', async () => {
  const t = topic(1)
  process.env.KAFKA_BROKERS = cluster.bootstrapServers
  try {
    const p = Producer.fromEnv()
    assert.equal((await p.send({ topic: t, value: 'env' })).outcome, 'delivered')
    await p.close()
  } finally {
    delete process.env.KAFKA_BROKERS
  }
})

test('transactions: reports wait for the end, an abort rejects every send, calls out of turn are typed', async () => {
  const t = topic()
  const plain = producer()
  await assert.rejects(plain.beginTransaction(), (e) => e instanceof KafkaSenderError && e.code === 'transaction')
  await plain.close()
  const p = producer({ 'transactional.id': `node-${process.pid}` })
  await assert.rejects(p.send({ topic: t, value: 'outside' }), (e) => e.code === 'transaction' && !e.retriable)
  await assert.rejects(p.commitTransaction(), (e) => e.code === 'transaction')

  const settled = []
  const committed = await p.transaction(async (tx) => {
    const sends = Array.from({ length: 100 }, (_, i) => tx.send({ topic: t, value: `c${i}`, key: `k${i % 3}` }))
    sends.forEach((s) => s.then(() => settled.push(s)))
    await tx.flush()
    assert.equal(settled.length, 0, 'reported only when the transaction ends')
    return sends
  })
  const reports = await Promise.all(committed)
  assert.ok(reports.every((r) => r.outcome === 'delivered'))

  let aborted
  await assert.rejects(p.transaction(async (tx) => {
    aborted = Array.from({ length: 50 }, (_, i) => tx.send({ topic: t, value: `a${i}` }))
    aborted.forEach((s) => s.catch(() => {}))
    throw new Error('the application failed half-way')
  }), /half-way/)
  const outcomes = await Promise.allSettled(aborted)
  assert.ok(outcomes.every((o) => o.status === 'rejected' && o.reason.code === 'transaction' && o.reason.retriable))
  await p.close()
})

test('a fatal error is recovered from and shows in reports', async () => {
  const { injectFatalError } = require('..')
  const t = topic()
  const p = producer()
  const send = (i) => p.send({ topic: t, value: String(i), key: `k${i % 10}` })
  const first = Array.from({ length: 2000 }, (_, i) => send(i))
  await p.flush()
  injectFatalError(p)
  const second = Array.from({ length: 2000 }, (_, i) => send(2000 + i))
  const reports = await Promise.all([...first, ...second])
  assert.ok(reports.every((r) => r.outcome === 'delivered'))
  assert.ok(reports.filter((r) => r.recovered).every((r) => r.attempts === 2))
  assert.equal(p.metrics().recoveries, 1)
  await p.close()
  assert.equal(new Set(values(cluster.readTopic(t))).size, 4000)
})
