'use strict'
// Node contenders for `kafkasender bench --external NAME=PROGRAM`, under the rules at the top of
// crates/kafkasender-cli/src/bench.rs (warm producer, distinct 16-byte keys, the broker in another
// process, the clock from the first send to the last report):
// - node-send: kafkasender `send` (a Promise per message), all sent before any is awaited;
// - node-send-callback: kafkasender `send(message, callback)`, no Promise;
// - node-send-batch: kafkasender `sendBatch` of 10,000 messages a call;
// Each keeps a report's latency, not the report (nor does any other contender).
// - kafkajs: kafkajs 2.2.4 `producer.send` of 1,000 messages a call, up to 10 in flight (its own
//   batching), acks=-1. Not idempotent: kafkajs's idempotent producer looks for a controller
//   broker that the mock cluster's metadata does not name.
// Usage: contender.js NAME BOOTSTRAP TOPIC COUNT SIZE RATE   (RATE 0: as fast as it goes)
// Prints: result<TAB>NAME<TAB>MSG_PER_S<TAB>P50_MS<TAB>P99_MS<TAB>PEAK_RSS_KB<TAB>CPU_SECONDS

const path = require('node:path')

const BATCH = 10000

// Keys come from Buffer's shared pool (allocUnsafe, as Buffer.from of a string does): Buffer.alloc
// gives each 16-byte key a backing store of its own, about 480 bytes of RSS, which charged every
// Node contender 140 MB of harness for 300,000 keys.
function keys(count) {
  return Array.from({ length: count }, (_, i) => {
    const key = Buffer.allocUnsafe(16).fill('ks-bench')
    key.writeBigUInt64BE(BigInt(i))
    return key
  })
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

/**
 * When `rate` is set and message `i` is not due yet, a Promise of its time; null otherwise. Callers
 * await only a Promise: at full speed nothing is awaited per message (an `await` yields to the
 * event loop even when there is nothing to wait for, which a program's loop of sends would not).
 */
function pace(started, i, rate) {
  if (rate <= 0) return null
  const due = started + (i / rate) * 1e3 - performance.now()
  return due > 0 ? sleep(due) : null
}

function kafkasender(mode) {
  return async (brokers, topic, count, payload, rate) => {
    const { Producer } = require(path.join(__dirname, '..'))
    const p = new Producer({ 'bootstrap.servers': brokers, 'log.level': 'off' })
    await p.send({ topic, value: payload, key: 'warm-up' })
    const ks = keys(count)
    const latencies = []
    let lost = 0
    const note = (report) => {
      if (report.outcome === 'delivered') latencies.push(report.latencyMs)
      else lost++
    }
    const started = performance.now()
    if (mode === 'batch') {
      // At a fixed rate, a batch per millisecond (as the Rust contender does). Each batch's
      // reports are read as it completes, and not kept (as the other contenders keep none).
      const size = rate > 0 ? Math.max(Math.floor(rate / 1000), 1) : BATCH
      const batches = []
      for (let i = 0; i < count; i += size) {
        const due = pace(started, i, rate)
        if (due) await due
        batches.push(p.sendBatch(ks.slice(i, i + size).map((key) => ({ topic, value: payload, key }))).then((rs) => rs.forEach(note)))
      }
      await Promise.all(batches)
    } else if (mode === 'callback') {
      await new Promise((resolve) => {
        let reported = 0
        const done = (err, report) => {
          if (report) note(report)
          else lost++
          if (++reported === count) resolve()
        }
        ;(async () => {
          for (let i = 0; i < count; i++) {
            const due = pace(started, i, rate)
            if (due) await due
            p.send({ topic, value: payload, key: ks[i] }, done)
          }
        })()
      })
    } else {
      const sends = []
      for (let i = 0; i < count; i++) {
        const due = pace(started, i, rate)
        if (due) await due
        sends.push(p.send({ topic, value: payload, key: ks[i] }).then(note))
      }
      await Promise.all(sends)
    }
    const finished = performance.now()
    await p.close()
    if (lost) throw new Error(`${lost} not delivered`)
    return { started, finished, latencies }
  }
}

async function kafkajs(brokers, topic, count, payload, rate) {
  const { Kafka, logLevel } = require('kafkajs')
  const kafka = new Kafka({ brokers: brokers.split(','), logLevel: logLevel.NOTHING })
  const p = kafka.producer()
  await p.connect()
  await p.send({ topic, acks: -1, messages: [{ key: 'warm-up', value: payload }] })
  const ks = keys(count)
  const latencies = []
  const inFlight = []
  const started = performance.now()
  for (let i = 0; i < count; i += 1000) {
    const due = pace(started, i, rate)
    if (due) await due
    const messages = ks.slice(i, i + 1000).map((key) => ({ key, value: payload }))
    const sentAt = performance.now()
    inFlight.push(p.send({ topic, acks: -1, messages }).then(() => {
      const latency = performance.now() - sentAt
      for (let j = 0; j < messages.length; j++) latencies.push(latency)
    }))
    if (inFlight.length >= 10) await inFlight.shift()
  }
  await Promise.all(inFlight)
  const finished = performance.now()
  await p.disconnect()
  return { started, finished, latencies }
}

const CONTENDERS = {
  'node-send': kafkasender('promise'),
  'node-send-callback': kafkasender('callback'),
  'node-send-batch': kafkasender('batch'),
  kafkajs,
}

async function main() {
  const [name, brokers, topic, count, size, rate] = process.argv.slice(2)
  const n = Number(count)
  const { started, finished, latencies } = await CONTENDERS[name](brokers, topic, n, Buffer.alloc(Number(size), 'x'), Number(rate))
  if (latencies.length !== n) throw new Error(`${latencies.length} of ${n} reported`)
  latencies.sort((a, b) => a - b)
  const usage = process.resourceUsage()
  const cpu = (usage.userCPUTime + usage.systemCPUTime) / 1e6
  console.log(['result', name, Math.round(n / ((finished - started) / 1e3)), latencies[Math.floor(n / 2)].toFixed(3),
    latencies[Math.floor((n * 99) / 100)].toFixed(3), usage.maxRSS, cpu.toFixed(3)].join('\t'))
}

main().catch((e) => { console.error(e); process.exit(1) })
