'use strict'
// kafkasender for Node: Promises and callbacks over the native producer. Every send ends in one
// DeliveryReport, reported once. Reports reach JavaScript in batches (one wake-up of the event
// loop serves every report that arrived meanwhile); flush and close run off the event loop.

const { AsyncLocalStorage } = require('node:async_hooks')
const tracing = require('./tracing')

const native = loadNative()

/**
 * The addon for this platform: the one built in this folder (a checkout, `make node`), else the
 * platform package npm installed through optionalDependencies (`@kafkasender/linux-x64-gnu`).
 */
function loadNative() {
  const fs = require('node:fs')
  const path = require('node:path')
  const glibc = process.platform !== 'linux' || Boolean(process.report?.getReport().header.glibcVersionRuntime)
  const platform = `${process.platform}-${process.arch}${process.platform === 'linux' ? (glibc ? '-gnu' : '-musl') : ''}`
  const local = path.join(__dirname, `kafkasender.${platform}.node`)
  if (fs.existsSync(local)) return require(local)
  const pkg = `@kafkasender/${platform}`
  try {
    return require(pkg)
  } catch (error) {
    if (error.code !== 'MODULE_NOT_FOUND') throw error
    throw new Error(
      `kafkasender has no native addon for ${platform}: ${pkg} is not installed. Prebuilt: linux-x64-gnu ` +
        '(npm installs it unless optional dependencies are omitted); elsewhere build from source: `make node` in a checkout.',
      { cause: error },
    )
  }
}

/** Every error kafkasender reports: `code` is the core's error kind (`queue_full`, `timeout`, …). */
class KafkaSenderError extends Error {
  constructor(message, code, retriable, rdkafkaCode) {
    super(message)
    this.name = 'KafkaSenderError'
    this.code = code
    this.retriable = retriable
    this.rdkafkaCode = rdkafkaCode ?? null
  }
}

function errorOf(info) {
  return new KafkaSenderError(info.message, info.code, info.retriable, info.rdkafkaCode)
}

function bytes(value, name) {
  if (value === null || value === undefined) return null
  if (typeof value === 'string') return Buffer.from(value, 'utf8')
  if (Buffer.isBuffer(value)) return value
  if (value instanceof Uint8Array) return Buffer.from(value.buffer, value.byteOffset, value.byteLength)
  throw new TypeError(`${name} must be a Buffer, Uint8Array, string or null, not ${typeof value}`)
}

const NO_HEADERS = Object.freeze([])

function headerPairs(headers) {
  if (headers === null || headers === undefined) return [NO_HEADERS, NO_HEADERS]
  let pairs
  if (Array.isArray(headers)) {
    pairs = headers
  } else if (typeof headers === 'object') {
    pairs = Object.entries(headers)
  } else {
    throw new TypeError('headers must be an object or an array of [key, value] pairs')
  }
  const keys = []
  const values = []
  for (const pair of pairs) {
    if (!Array.isArray(pair) || pair.length !== 2 || typeof pair[0] !== 'string') {
      throw new TypeError('each header must be a [key: string, value] pair')
    }
    keys.push(pair[0])
    values.push(bytes(pair[1], `header ${pair[0]}`))
  }
  return [keys, values]
}

function integer(value, name) {
  if (value === null || value === undefined) return null
  if (typeof value === 'bigint') value = Number(value)
  if (!Number.isInteger(value)) throw new TypeError(`${name} must be an integer`)
  return value
}

function configMap(config) {
  if (config === null || config === undefined) return {}
  if (typeof config !== 'object' || Array.isArray(config)) {
    throw new TypeError('config must be an object of string, number or boolean values')
  }
  const map = {}
  for (const [key, value] of Object.entries(config)) {
    if (!['string', 'number', 'boolean'].includes(typeof value)) {
      throw new TypeError(`config value of ${key} must be a string, number or boolean`)
    }
    map[key] = String(value)
  }
  return map
}

const OUTCOMES = ['delivered', 'failed', 'dead_lettered', 'spooled']

/** Row `i` of a native report batch, for a message to `topic` with `key`. */
function reportOf(batch, i, topic, key, problem) {
  const timestamp = batch.timestamps[i]
  return Object.freeze({
    topic,
    partition: batch.partitions[i],
    offset: batch.offsets[i],
    timestamp: Number.isNaN(timestamp) ? null : timestamp,
    key,
    attempts: batch.attempts[i],
    latencyMs: batch.latenciesMs[i],
    outcome: OUTCOMES[batch.outcomes[i]],
    destination: problem?.destination ?? null,
    error: problem ? errorOf(problem.error) : null,
    recovered: batch.recovered[i] === 1,
  })
}

/** Most plain messages handed to the addon in one `sendMany` call. */
const SEND_CHUNK = 4096

// Sends settled by a report, until then keeping the event loop alive (and only until then).
const KEEP_ALIVE_MS = 2 ** 30
const FROM_ENV = Symbol('kafkasender: configure from KAFKA_* variables')

/**
 * Makes `producer`'s librdkafka client fail fatally, as if a broker had answered with `code` (59:
 * UNKNOWN_PRODUCER_ID): the producer replaces the client and re-sends what it held (their reports
 * have `recovered` set) or, past `recovery.max`, fails from then on. For tests.
 */
let injectFatalError

class Producer {
  static {
    injectFatalError = (producer, code = 59) => {
      const info = producer.#native.injectFatalError(code)
      if (info) throw errorOf(info)
    }
  }

  #native
  /**
   * Sends not yet reported, by id: an id is a slot, reused once its send is settled. A slot is a
   * row of these columns rather than an object, so a burst of sends in flight leaves the garbage
   * collector little to copy: who is told (a Promise's `resolve`, a `callback`, or a
   * `BatchWaiter`), whether that is a callback, and the topic and key its report names.
   */
  #settlers = []
  #byCallback = []
  #topics = []
  #keys = []
  /** The spans of traced sends, by id (empty unless OpenTelemetry is on). */
  #spans = new Map()
  /** Slots of settled sends, for reuse. */
  #freeSlots = []
  #inFlight = 0
  #keepAlive = null
  /** Prepared sends waiting to cross into the native producer, in send order. */
  #queue = []
  #flushScheduled = false
  /** The queue is being handed over (a partitioner function may send meanwhile). */
  #flushing = false
  /** A send that found the queue full is being sent off the event loop; later ones wait behind it. */
  #waiting = null

  /** `valueSerializer` and `keySerializer`, as functions (null: values must be bytes or strings). */
  #serializeValue
  #serializeKey

  /**
   * `new Producer(config, { valueSerializer, keySerializer })`: kafkasender settings and librdkafka
   * properties, e.g. `{ 'bootstrap.servers': '…' }`. A serializer (`'json'`, `'string'` or a
   * function returning bytes) turns every value or key given to `send` and `sendBatch` into bytes;
   * without one they must be Buffers, typed arrays or strings.
   */
  constructor(config = {}, { valueSerializer = null, keySerializer = null } = {}) {
    this.#serializeValue = serializerOf(valueSerializer, 'valueSerializer')
    this.#serializeKey = serializerOf(keySerializer, 'keySerializer')
    const fromEnv = config === FROM_ENV
    const named = config instanceof NamedProducer ? config : null
    const created = native.createProducer(fromEnv || named ? {} : configMap(config), fromEnv, named?.file ?? null,
      named?.name ?? null, () => this.#drain())
    if (!(created instanceof native.NativeProducer)) throw errorOf(created)
    this.#native = created
  }

  /** A producer configured from `KAFKA_*` environment variables. */
  static fromEnv() {
    return new Producer(FROM_ENV)
  }

  /**
   * Sends `{ topic, value, key?, headers?, partition?, timestamp? }`. Without a callback, returns a
   * Promise of the DeliveryReport that rejects (with a KafkaSenderError) only when the message is
   * lost; with `callback(err, report)`, calls it once instead. Wrong argument types throw a
   * TypeError at once.
   */
  send(message, callback) {
    return this.#sendPrepared(this.#prepare(message), callback)
  }

  #sendPrepared(send, callback) {
    if (callback !== undefined && typeof callback !== 'function') throw new TypeError('callback must be a function')
    const span = tracing.active() ? traced([send]) : null
    if (callback) {
      this.#enqueue(send, callback, true, span)
      return undefined
    }
    // Only `resolve` is kept: a loss rejects through it (see `rejectThrough`).
    return new Promise((resolve) => this.#enqueue(send, resolve, false, span))
  }

  /**
   * Sends many messages in one call into the core's batch send; resolves with one report per
   * message, in order, once every one is reported. A lost message gets a failed report in its
   * place (its `error` says why): the Promise still resolves, unless `rejectOnFailure` is set,
   * when it rejects with the first lost message's error, whose `reports` holds every report.
   * Wrong argument types throw a TypeError at once, before anything is sent.
   */
  sendBatch(messages, options) {
    if (!Array.isArray(messages)) throw new TypeError('messages must be an array')
    return this.#sendPreparedBatch(messages.map((m) => this.#prepare(m)), options)
  }

  #sendPreparedBatch(sends, { rejectOnFailure = false } = {}) {
    const settled = new Promise((resolve) => {
      if (sends.length === 0) return resolve([])
      const span = tracing.active() ? traced(sends) : null
      const id = this.#register(new BatchWaiter(resolve, sends), false, null, null, sends.length, span)
      this.#push(new QueuedBatch(id, sends))
    })
    if (!rejectOnFailure) return settled
    return settled.then((reports) => {
      const lost = reports.find((r) => r.outcome === 'failed')
      if (lost) throw Object.assign(lost.error, { reports })
      return reports
    })
  }

  /** Resolves when every message sent so far is reported (rejects with a timeout error after `timeoutMs`). */
  async flush(timeoutMs = Infinity) {
    await this.#sendQueued()
    const info = await this.#native.flush(timeoutMs)
    this.#drain()
    if (info) throw errorOf(info)
  }

  /**
   * Stops accepting messages, waits up to `timeoutMs` (default `close.timeout.ms`) for those in
   * flight, then fails (or spools) the rest. Every Promise and callback is settled when it
   * resolves; afterwards the producer keeps nothing alive.
   */
  async close(timeoutMs) {
    await this.#sendQueued()
    await this.#native.close(timeoutMs ?? this.#native.closeTimeoutMs)
    this.#drain()
  }

  /**
   * Opens a transaction (a producer made with `transactional.id`): every send until the commit or
   * abort belongs to it. Rejects with a `transaction` error without `transactional.id` or when one
   * is open. Sends made before it cross into the native producer first.
   */
  beginTransaction() {
    const begin = () => {
      const info = this.#native.beginTransaction()
      if (info) throw errorOf(info)
    }
    if (this.#waiting === null) {
      this.#flushQueue()
      try {
        return Promise.resolve(begin())
      } catch (error) {
        return Promise.reject(error)
      }
    }
    return this.#sendQueued().then(begin)
  }

  /**
   * Commits the open transaction. When it resolves, every message of it is committed and its
   * Promise resolved as delivered (a message is reported only when its transaction ends). When it
   * cannot commit it is aborted: every message's Promise rejects with a retriable `transaction`
   * error, and so does this one, naming the transaction. A `timeout` rejection leaves it ending:
   * commit or abort again.
   */
  async commitTransaction(timeoutMs = Infinity) {
    await this.#endTransaction(this.#native.commitTransaction.bind(this.#native), timeoutMs)
  }

  /** Aborts the open transaction: every message's Promise rejects with a retriable `transaction` error. */
  async abortTransaction(timeoutMs = Infinity) {
    await this.#endTransaction(this.#native.abortTransaction.bind(this.#native), timeoutMs)
  }

  /**
   * Runs `work(producer)` in a transaction: commits when it resolves, aborts when it throws (and
   * rethrows). Resolves with what `work` returned.
   */
  async transaction(work, timeoutMs = Infinity) {
    if (typeof work !== 'function') throw new TypeError('work must be a function')
    await this.beginTransaction()
    let result
    try {
      result = await work(this)
    } catch (error) {
      await this.abortTransaction(timeoutMs)
      throw error
    }
    await this.commitTransaction(timeoutMs)
    return result
  }

  async #endTransaction(end, timeoutMs) {
    await this.#sendQueued()
    const info = await end(timeoutMs)
    this.#drain()
    if (info) throw errorOf(info)
  }

  get closed() {
    return this.#native.closed
  }

  /** Messages sent and not yet reported. */
  get inFlight() {
    return this.#inFlight
  }

  metrics() {
    return this.#native.metrics()
  }

  metricsPrometheus() {
    return this.#native.metricsPrometheus()
  }

  health() {
    return this.#native.health()
  }

  /**
   * Publishes a business event (from `EventBuilder#event`): the CloudEvents envelope as the value,
   * to the topic its type maps to (`event.topic.map`, `mapEventTopic`), keyed by
   * `event.key.field`, with `ce_*`, `correlation-id` and `content-type` headers. Returns and
   * reports like `send`.
   */
  publishEvent(event, callback) {
    return this.#sendPrepared(this.#prepare(this.#eventMessage(event), false), callback)
  }

  /** Publishes events as one batch, like `sendBatch`; nothing is sent if one cannot be. */
  publishEvents(events, options) {
    if (!Array.isArray(events)) throw new TypeError('events must be an array')
    return this.#sendPreparedBatch(events.map((event) => this.#prepare(this.#eventMessage(event), false)), options)
  }

  /**
   * Sets a partitioner function `(topic, key, partitionCount) => partition` for records without a
   * partition: called on the event loop before the record is enqueued (a topic's first send waits
   * for its partition count); what it returns becomes the record's partition. A result out of
   * range, not an integer, or a throw fails that send with `invalid_record`. Set once, before
   * sending.
   */
  setPartitioner(partition) {
    if (typeof partition !== 'function') throw new TypeError('partition must be a function')
    const info = this.#native.setPartitioner(partition)
    if (info) throw errorOf(info)
  }

  /** Sends events of a type (`api.error`) or a prefix pattern (`user.*`) to `topic` from now on. */
  mapEventTopic(pattern, topic) {
    if (typeof pattern !== 'string' || typeof topic !== 'string') throw new TypeError('pattern and topic must be strings')
    const info = this.#native.mapEventTopic(pattern, topic)
    if (info) throw errorOf(info)
  }

  #eventMessage(event) {
    if (!(event instanceof Event)) throw new TypeError('event must be an Event (from EventBuilder#event)')
    const record = this.#native.eventRecord(event.toJSON())
    if (record.topic === undefined) throw errorOf(record)
    const headers = record.headerKeys.map((k, i) => [k, record.headerValues[i]])
    return { topic: record.topic, key: record.key, value: record.value, headers }
  }

  /** A message as the queue holds it; `serialize`: through the serializers (not for events, bytes already). */
  #prepare(message, serialize = true) {
    if (message === null || typeof message !== 'object') throw new TypeError('message must be an object')
    if (typeof message.topic !== 'string') throw new TypeError('message.topic must be a string')
    const [headerKeys, headerValues] = headerPairs(message.headers)
    let { value, key } = message
    if (serialize && this.#serializeValue !== null && value !== null && value !== undefined) value = this.#serializeValue(value)
    if (serialize && this.#serializeKey !== null && key !== null && key !== undefined) key = this.#serializeKey(key)
    return [0, message.topic, bytes(value, 'message.value'), bytes(key, 'message.key'),
      headerKeys, headerValues, integer(message.partition, 'message.partition'),
      integer(message.timestamp, 'message.timestamp')]
  }

  /** Gives a send (`size` messages) a slot until it is settled; returns the slot's id. */
  #register(settler, byCallback, topic, key, size, span) {
    const id = this.#freeSlots.length > 0 ? this.#freeSlots.pop() : this.#settlers.length
    this.#settlers[id] = settler
    this.#byCallback[id] = byCallback
    this.#topics[id] = topic
    this.#keys[id] = key
    if (span !== null) this.#spans.set(id, span)
    this.#inFlight += size
    if (this.#keepAlive === null) this.#keepAlive = setInterval(() => {}, KEEP_ALIVE_MS)
    return id
  }

  /**
   * Queues a prepared send; the queue crosses into the native producer once per microtask, in one
   * call for a run of plain messages, so a burst of sends costs one boundary crossing.
   */
  #enqueue(send, settler, byCallback, span) {
    send[0] = this.#register(settler, byCallback, send[1], send[3], 1, span)
    this.#push(send)
  }

  #push(entry) {
    this.#queue.push(entry)
    if (this.#waiting !== null) return
    if (this.#queue.length >= SEND_CHUNK && !this.#flushing) {
      // A loop of sends that never yields still has its messages on their way a chunk at a time,
      // rather than all of them held here until it ends.
      this.#flushQueue()
    } else if (!this.#flushScheduled) {
      this.#flushScheduled = true
      queueMicrotask(() => {
        this.#flushScheduled = false
        if (this.#waiting === null) this.#flushQueue()
      })
    }
  }

  /** Hands the queue to the native producer, without ever waiting on the event loop. */
  #flushQueue() {
    this.#flushing = true
    try {
      this.#sendQueue()
    } finally {
      this.#flushing = false
    }
  }

  #sendQueue() {
    const queue = this.#queue
    let i = 0
    while (i < queue.length) {
      // In chunks: the addon converts a whole chunk before sending, and a full queue stops it part
      // way, so a chunk of the whole queue would convert the rest again and again.
      let end = i
      while (end < queue.length && end - i < SEND_CHUNK && isPlain(queue[end])) end++
      if (end > i) {
        const ids = new Uint32Array(end - i)
        const topics = []
        const values = []
        const keys = []
        for (let j = i; j < end; j++) {
          ids[j - i] = queue[j][0]
          topics.push(queue[j][1])
          values.push(queue[j][2])
          keys.push(queue[j][3])
        }
        const result = this.#native.sendMany(ids, topics, values, keys)
        for (const refusal of result.refused) this.#refuse(queue[i + refusal.index][0], refusal.error)
        i += result.sent
        if (i < end) return this.#sendWaiting(queue, i)
        continue
      }
      const send = queue[i]
      if (send instanceof QueuedBatch) return this.#sendBatch(queue, i)
      const result = this.#native.send(send[0], send[1], send[2], send[3], send[4], send[5], send[6], send[7])
      if (result.wouldBlock) return this.#sendWaiting(queue, i)
      if (result.refused) this.#refuse(send[0], result.refused)
      i++
    }
    this.#queue = []
  }

  /** The queue is full (or the rate limit has no token): send queue[i] off the loop, then go on. */
  #sendWaiting(queue, i) {
    this.#queue = queue.slice(i + 1)
    const send = queue[i]
    this.#waiting = this.#native
      .sendWaiting(send[0], send[1], send[2], send[3], send[4], send[5], send[6], send[7])
      .then((refused) => {
        if (refused) this.#refuse(send[0], refused)
        this.#waiting = null
        this.#flushQueue()
      })
  }

  /**
   * Hands the batch queue[i] to the native producer, which sends it off the event loop; until it
   * is in, later sends wait behind it, so messages keep the order they were sent in.
   */
  #sendBatch(queue, i) {
    this.#queue = queue.slice(i + 1)
    const { id, sends } = queue[i]
    const plain = sends.every(isPlain)
    const column = (i) => sends.map((send) => send[i])
    this.#waiting = this.#native
      .sendBatch(id, column(1), column(2), column(3),
        plain ? null : Uint32Array.from(sends, (send) => send[4].length),
        plain ? null : sends.flatMap((send) => send[4]),
        plain ? null : sends.flatMap((send) => send[5]),
        plain ? null : column(6),
        plain ? null : column(7))
      .then((refused) => {
        if (refused) {
          const span = this.#spanOf(id)
          const waiter = this.#settle(id)
          const error = errorOf(refused)
          if (span) tracing.failSend(span, error)
          waiter.resolve(waiter.sends.map((send) => failedReport(send, error)))
          this.#stopKeepAliveWhenIdle()
        }
        this.#waiting = null
        this.#flushQueue()
      })
  }

  /** Resolves once every send made so far has crossed into the native producer. */
  async #sendQueued() {
    if (this.#waiting === null) this.#flushQueue()
    while (this.#waiting !== null) await this.#waiting
  }

  /**
   * Settles a send the native producer did not accept, in a microtask: the queue may be handed
   * over inside a later `send`, which must not call back into the caller.
   */
  #refuse(id, info) {
    queueMicrotask(() => this.#settleRefused(id, info))
  }

  #settleRefused(id, info) {
    const span = this.#spanOf(id)
    const byCallback = this.#byCallback[id]
    const settler = this.#settle(id)
    const error = errorOf(info)
    if (span) tracing.failSend(span, error)
    if (byCallback) {
      settler(error, null)
    } else {
      rejectThrough(settler, error)
    }
    this.#stopKeepAliveWhenIdle()
  }

  #spanOf(id) {
    return this.#spans.size === 0 ? undefined : this.#spans.get(id)
  }

  /** Empties slot `id`; returns who was to be told (undefined if it was settled already). */
  #settle(id) {
    const settler = this.#settlers[id]
    if (settler !== undefined) {
      this.#settlers[id] = undefined
      this.#topics[id] = undefined
      this.#keys[id] = undefined
      if (this.#spans.size > 0) this.#spans.delete(id)
      this.#freeSlots.push(id)
      this.#inFlight -= settler instanceof BatchWaiter ? settler.sends.length : 1
    }
    return settler
  }

  #stopKeepAliveWhenIdle() {
    if (this.#inFlight === 0 && this.#keepAlive !== null) {
      clearInterval(this.#keepAlive)
      this.#keepAlive = null
    }
  }

  #drain() {
    const batch = this.#native.takeReports()
    const problems = batch.problems.length === 0 ? null : new Map(batch.problems.map((p) => [p.index, p]))
    for (let i = 0; i < batch.ids.length; i++) {
      const id = batch.ids[i]
      const settler = this.#settlers[id]
      if (settler === undefined) continue
      const problem = problems?.get(i)
      if (settler instanceof BatchWaiter) {
        // A batch's reports arrive together and in order.
        const { rows, sends } = settler
        const send = sends[rows.length]
        rows.push(reportOf(batch, i, send[1], send[3], problem))
        if (rows.length === sends.length) {
          const span = this.#spanOf(id)
          if (span) tracing.endSend(span, rows)
          this.#settle(id).resolve(rows)
        }
        continue
      }
      const report = reportOf(batch, i, this.#topics[id], this.#keys[id], problem)
      const span = this.#spanOf(id)
      const byCallback = this.#byCallback[id]
      this.#settle(id)
      const lost = report.outcome === 'failed'
      if (span) tracing.endSend(span, [report])
      if (byCallback) {
        settler(lost ? report.error : null, report)
      } else if (lost) {
        rejectThrough(settler, report.error)
      } else {
        settler(report)
      }
    }
    this.#stopKeepAliveWhenIdle()
  }
}

/**
 * Rejects, with `error`, the Promise that `resolve` belongs to: resolving with a thenable that
 * rejects settles it as rejected, so sends keep only `resolve` in flight, not `reject` too.
 */
function rejectThrough(resolve, error) {
  resolve({ then: (_, reject) => reject(error) })
}

/** The report of a message the producer did not accept (see `#prepare` for `send`). */
function failedReport(send, error) {
  return Object.freeze({
    topic: send[1], partition: send[6] ?? -1, offset: -1n, timestamp: send[7], key: send[3], attempts: 0,
    latencyMs: 0, outcome: 'failed', destination: null, error, recovered: false,
  })
}

/**
 * Starts the OpenTelemetry span of `sends` (see `#prepare`), adding its trace headers to each
 * (replacing any of the same name); returns the span, or null when nobody traces.
 */
function traced(sends) {
  const topic = sends.every((send) => send[1] === sends[0][1]) ? sends[0][1] : null
  const started = tracing.startSend(topic, sends.length === 1 ? sends[0][3] : null, sends.length)
  if (started === null) return null
  const names = new Set(started.headers.map(([name]) => name))
  for (const send of sends) {
    const keys = []
    const values = []
    send[4].forEach((key, i) => {
      if (!names.has(key)) {
        keys.push(key)
        values.push(send[5][i])
      }
    })
    for (const [name, value] of started.headers) {
      keys.push(name)
      values.push(value)
    }
    send[4] = keys
    send[5] = values
  }
  return started.span
}

/** A serializer option as a function (null when none is given). */
function serializerOf(option, name) {
  if (option === null || option === undefined) return null
  if (option === 'json') return (value) => Buffer.from(JSON.stringify(value))
  if (option === 'string') return (value) => Buffer.from(String(value))
  if (typeof option === 'function') return option
  throw new TypeError(`${name} must be 'json', 'string' or a function returning bytes`)
}

/** A message the native producer can take in a `sendMany` run: no headers, partition or timestamp. */
function isPlain(send) {
  return !(send instanceof QueuedBatch) && send[4].length === 0 && send[6] === null && send[7] === null
}

/** A batch's Promise (`resolve`), waiting for a report of each of `sends` (gathered in `rows`). */
class BatchWaiter {
  constructor(resolve, sends) {
    this.resolve = resolve
    this.sends = sends
    this.rows = []
  }
}

/** A `sendBatch` call's messages (see `#prepare`) in the queue, and the slot of their waiter. */
class QueuedBatch {
  constructor(id, sends) {
    this.id = id
    this.sends = sends
  }
}

/**
 * Sends kafkasender's and librdkafka's log lines (`{ level, target, message }`, level `error` to
 * `trace`) to `handler` on the event loop instead of stderr; `null` restores stderr. How much is
 * logged follows the first producer's `log.level`.
 */
function setLogHandler(handler) {
  if (handler !== null && typeof handler !== 'function') throw new TypeError('handler must be a function or null')
  native.setLogHandler(handler === null ? null : (line) => {
    try {
      handler(Object.freeze(line))
    } catch (error) {
      process.emitWarning(`kafkasender: the log handler threw: ${error}`)
    }
  })
}

/** Which producer of which file a `Producers#get` producer is configured as. */
class NamedProducer {
  constructor(file, name) {
    this.file = file
    this.name = name
  }
}

/**
 * Named producers from one TOML file (`[defaults]` and `[producers.NAME]` tables; `KAFKA_*`
 * variables still override): `Producers.fromFile(path)` checks every producer it names and
 * throws one KafkaSenderError listing every problem; `get(name)` makes that producer once.
 */
class Producers {
  #file
  #open = new Map()

  constructor(file, names) {
    this.#file = file
    this.names = Object.freeze(names)
  }

  static fromFile(file) {
    if (typeof file !== 'string') throw new TypeError('file must be a string')
    const names = native.producerNames(file)
    if (!Array.isArray(names)) throw errorOf(names)
    return new Producers(file, names)
  }

  /** The producer `name` (the same one on every call until `close`); a `config` error for a name the file does not have. */
  get(name) {
    if (!this.#open.has(name)) this.#open.set(name, new Producer(new NamedProducer(this.#file, name)))
    return this.#open.get(name)
  }

  /** Closes every producer `get` made. */
  async close() {
    const open = [...this.#open.values()]
    this.#open.clear()
    await Promise.all(open.map((producer) => producer.close()))
  }
}

/** The correlation id of the current async context (see `withCorrelationId`). */
const correlation = new AsyncLocalStorage()

/** Runs `fn` with `correlationId` as the correlation id of events made inside, across awaits. */
function withCorrelationId(correlationId, fn) {
  if (typeof correlationId !== 'string') throw new TypeError('correlationId must be a string')
  return correlation.run(correlationId, fn)
}

/** The correlation id set by the innermost `withCorrelationId` around this call, if any. */
function currentCorrelationId() {
  return correlation.getStore()
}

/** One business event: a CloudEvents 1.0 envelope made by the core. Read its attributes; send it with `publishEvent`. */
class Event {
  #envelope

  constructor(envelope) {
    const parsed = JSON.parse(envelope)
    this.#envelope = envelope
    this.id = parsed.id
    this.type = parsed.type
    this.source = parsed.source
    this.time = parsed.time
    this.data = parsed.data
    this.correlationId = parsed.correlationid
    this.causationId = parsed.causationid ?? null
    this.version = parsed.version ?? null
    Object.freeze(this)
  }

  /** The envelope as CloudEvents JSON (also what `JSON.stringify(event)` gives). */
  toJSON() {
    return this.#envelope
  }

  /** Reads an envelope (the value of a record `publishEvent` wrote). */
  static fromJSON(json) {
    return new Event(typeof json === 'string' ? json : Buffer.from(json).toString('utf8'))
  }
}

/**
 * Makes events of one `source`: `new EventBuilder('checkout', { version: '2' })`. Each event gets
 * a new id, the current time, and a correlation id: the one passed to `event`, else the
 * builder's, else the current async context's (`withCorrelationId`), else a new one.
 */
class EventBuilder {
  constructor(source, { version = null, correlationId = null } = {}) {
    if (typeof source !== 'string') throw new TypeError('source must be a string')
    this.source = source
    this.version = version
    this.correlationId = correlationId
  }

  /** An event of `type` whose data is `data` as JSON (`JSON.stringify`; what it cannot write throws a TypeError). */
  event(type, data, { correlationId = null, causationId = null } = {}) {
    if (typeof type !== 'string') throw new TypeError('type must be a string')
    const json = JSON.stringify(data)
    if (json === undefined) throw new TypeError('data must be a JSON value (not undefined, a function or a symbol)')
    const correlationIdNow = correlationId ?? this.correlationId ?? correlation.getStore() ?? null
    return new Event(native.newEvent(type, json, this.source, correlationIdNow, causationId, this.version))
  }

  /** An event that `cause` led to: its correlation id carries over, its causation id is `cause.id`. */
  causedBy(cause, type, data) {
    return this.event(type, data, { correlationId: cause.correlationId, causationId: cause.id })
  }
}

/** librdkafka's mock Kafka brokers in this process, for tests. */
class MockCluster {
  #native

  constructor(brokers = 3) {
    this.#native = new native.MockCluster(brokers)
  }

  get bootstrapServers() {
    return this.#native.bootstrapServers
  }

  createTopic(topic, partitions = 4, replicationFactor = 1) {
    this.#native.createTopic(topic, partitions, replicationFactor)
  }

  brokerDown(id) {
    this.#native.brokerDown(id)
  }

  brokerUp(id) {
    this.#native.brokerUp(id)
  }

  /** Makes the next requests of `api` ('produce', 'metadata', …) fail with `codes` (librdkafka's), one each. */
  pushRequestErrors(api, codes) {
    this.#native.pushRequestErrors(api, codes)
  }

  /** Every record of `topic`, read with a consumer of its own (blocks: for tests). */
  readTopic(topic, timeoutMs = 60000) {
    return this.#native.readTopic(topic, timeoutMs).map((r) => ({
      partition: r.partition,
      offset: r.offset,
      key: r.key ?? null,
      value: r.value ?? null,
      headers: r.headerKeys.map((k, i) => [k, r.headerValues[i] ?? null]),
    }))
  }
}

module.exports = {
  Producer,
  Producers,
  MockCluster,
  KafkaSenderError,
  injectFatalError,
  Event,
  EventBuilder,
  withCorrelationId,
  currentCorrelationId,
  setLogHandler,
}
