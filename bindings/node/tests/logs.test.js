'use strict'
// Log lines reach a handler of the host's instead of stderr. A file of its own: the first
// producer of a process sets how much is logged, and this one must be it.

const assert = require('node:assert/strict')
const { test } = require('node:test')

const { Producer, setLogHandler } = require('..')

test('log lines go to the handler instead of stderr, and back to stderr with null', async () => {
  const lines = []
  setLogHandler((line) => lines.push(line))
  try {
    const producer = new Producer({ 'bootstrap.servers': '127.0.0.1:1', 'log.level': 'info' })
    const deadline = Date.now() + 10000
    while (!lines.some((l) => l.target === 'librdkafka') && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
    await producer.close()
  } finally {
    setLogHandler(null)
  }
  const line = lines.find((l) => l.target === 'librdkafka')
  assert.ok(line, JSON.stringify(lines.slice(0, 3)))
  assert.ok(['error', 'warn', 'info'].includes(line.level))
  assert.match(line.message, /127\.0\.0\.1:1/)
  assert.throws(() => setLogHandler('not a function'), TypeError)
})
