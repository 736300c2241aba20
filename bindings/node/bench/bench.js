'use strict'
// kafkasender from Node against kafkajs (and @confluentinc/kafka-javascript when it is installed),
// same mock cluster, same settings: 100-byte values, acks=all, idempotence, linger 5 ms. One
// process serves the mock cluster; contenders run in turn, several times; medians and ratios are
// printed, because the machine is shared and noisy.
//
//   make bench-node

const { MockCluster, Producer } = require('..')

const COUNT = Number(process.env.BENCH_COUNT || 200000)
const RUNS = Number(process.env.BENCH_RUNS || 3)
const WINDOW = 10000 // Promises awaited per window by the per-message contender
const payload = Buffer.alloc(100, 'x')

async function kafkasenderSend(brokers, topic) {
  const p = new Producer({ 'bootstrap.servers': brokers, acks: 'all', 'enable.idempotence': true, 'linger.ms': 5, 'log.level': 'off' })
  const started = process.hrtime.bigint()
  for (let sent = 0; sent < COUNT; sent += WINDOW) {
    const window = []
    for (let i = 0; i < Math.min(WINDOW, COUNT - sent); i++) window.push(p.send({ topic, value: payload }))
    await Promise.all(window)
  }
  const seconds = Number(process.hrtime.bigint() - started) / 1e9
  await p.close()
  return COUNT / seconds
}

async function kafkasenderBatch(brokers, topic) {
  const p = new Producer({ 'bootstrap.servers': brokers, acks: 'all', 'enable.idempotence': true, 'linger.ms': 5, 'log.level': 'off' })
  const batch = Array.from({ length: WINDOW }, () => ({ topic, value: payload }))
  const started = process.hrtime.bigint()
  const pending = []
  for (let sent = 0; sent < COUNT; sent += WINDOW) pending.push(p.sendBatch(batch))
  const reports = (await Promise.all(pending)).flat()
  const seconds = Number(process.hrtime.bigint() - started) / 1e9
  await p.close()
  if (reports.some((r) => r.outcome !== 'delivered')) throw new Error('not all delivered')
  return COUNT / seconds
}

async function kafkajs(brokers, topic) {
  const { Kafka, logLevel } = require('kafkajs')
  const kafka = new Kafka({ brokers: brokers.split(','), logLevel: logLevel.NOTHING })
  // Not idempotent: kafkajs's idempotent producer looks for a controller broker, which the mock
  // cluster's metadata does not name (KafkaJSBrokerNotFound). acks=-1 all the same.
  const p = kafka.producer()
  await p.connect()
  const messages = Array.from({ length: 1000 }, () => ({ value: payload }))
  const started = process.hrtime.bigint()
  const inFlight = []
  for (let sent = 0; sent < COUNT; sent += messages.length) {
    // kafkajs's own batching: one send per 1,000 messages, up to 10 in flight.
    inFlight.push(p.send({ topic, acks: -1, messages }))
    if (inFlight.length >= 10) await inFlight.shift()
  }
  await Promise.all(inFlight)
  const seconds = Number(process.hrtime.bigint() - started) / 1e9
  await p.disconnect()
  return COUNT / seconds
}

async function confluentJs(brokers, topic) {
  const Kafka = require('@confluentinc/kafka-javascript')
  const p = new Kafka.Producer({ 'bootstrap.servers': brokers, acks: 'all', 'enable.idempotence': true, 'linger.ms': 5, dr_cb: true })
  await new Promise((resolve, reject) => { p.connect(); p.once('ready', resolve); p.once('event.error', reject) })
  let delivered = 0
  const done = new Promise((resolve) => p.on('delivery-report', () => { if (++delivered === COUNT) resolve() }))
  p.setPollInterval(5)
  const started = process.hrtime.bigint()
  for (let i = 0; i < COUNT; i++) {
    for (;;) {
      try { p.produce(topic, null, payload); break } catch (e) { await new Promise((r) => setTimeout(r, 1)) }
    }
  }
  await done
  const seconds = Number(process.hrtime.bigint() - started) / 1e9
  await new Promise((resolve) => p.disconnect(resolve))
  return COUNT / seconds
}

function available(name) {
  try { require.resolve(name); return true } catch { return false }
}

async function main() {
  const cluster = new MockCluster(3)
  const topic = 'bench-node'
  cluster.createTopic(topic, 6, 3)
  const contenders = {
    'kafkajs producer.send (1,000 per call, acks=-1)': kafkajs,
    'kafkasender send (a Promise per message, windows of 10,000)': kafkasenderSend,
    'kafkasender sendBatch (10,000 per call)': kafkasenderBatch,
  }
  if (available('@confluentinc/kafka-javascript')) contenders['@confluentinc/kafka-javascript produce + delivery-report'] = confluentJs
  const rates = Object.fromEntries(Object.keys(contenders).map((k) => [k, []]))
  for (let run = 1; run <= RUNS; run++) {
    for (const [name, contender] of Object.entries(contenders)) {
      const rate = await contender(cluster.bootstrapServers, topic)
      rates[name].push(rate)
      console.error(`run ${run}: ${name}: ${Math.round(rate).toLocaleString('en')} msg/s`)
    }
  }
  const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
  const kafkajsRate = median(rates[Object.keys(contenders)[0]])
  const confluent = rates['@confluentinc/kafka-javascript produce + delivery-report']
  console.log(`\n${COUNT.toLocaleString('en')} × 100 B, acks=all, idempotence, linger.ms=5, 3-broker mock cluster, median of ${RUNS}\n`)
  console.log('| contender | msg/s (median) | vs kafkajs | vs @confluentinc/kafka-javascript |')
  console.log('|---|---:|---:|---:|')
  for (const [name, xs] of Object.entries(rates)) {
    const m = median(xs)
    console.log(`| ${name} | ${Math.round(m).toLocaleString('en')} | ${(m / kafkajsRate).toFixed(2)} | ${confluent ? (m / median(confluent)).toFixed(2) : 'not built'} |`)
  }
}

main().catch((e) => { console.error(e); process.exit(1) })
