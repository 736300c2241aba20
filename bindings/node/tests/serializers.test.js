'use strict'
// Serializers are an explicit choice: without one only bytes and strings are taken; with 'json',
// 'string' or a function, values and keys become bytes as asked, tombstones stay tombstones.

const assert = require('node:assert/strict')
const { test } = require('node:test')

const { MockCluster, Producer } = require('..')

const cluster = new MockCluster(1)
cluster.createTopic('node-serialized', 1, 1)
const config = { 'bootstrap.servers': cluster.bootstrapServers }

test('without a serializer nothing is guessed', async () => {
  const producer = new Producer(config)
  for (const value of [{ a: 1 }, [1], 3, true]) {
    assert.throws(() => producer.send({ topic: 'node-serialized', value }), TypeError)
  }
  await producer.close()
})

test('json and string serializers and a function write what they say', async () => {
  const producer = new Producer(config, { valueSerializer: 'json', keySerializer: 'string' })
  await producer.send({ topic: 'node-serialized', key: 42, value: { user: 'ünï', n: [1, 2.5, null] } })
  await producer.send({ topic: 'node-serialized', key: 7, value: null })
  await producer.sendBatch([{ topic: 'node-serialized', key: 1, value: [true] }, { topic: 'node-serialized', key: 'k', value: 'text' }])
  assert.throws(() => producer.send({ topic: 'node-serialized', value: 1n }), TypeError) // BigInt is not JSON
  await producer.close()
  const custom = new Producer(config, { valueSerializer: (n) => Buffer.from([n >> 8, n & 255]) })
  await custom.send({ topic: 'node-serialized', value: 258 })
  await custom.close()
  assert.throws(() => new Producer(config, { valueSerializer: 'yaml' }), /valueSerializer must be/)

  const landed = cluster.readTopic('node-serialized').map((r) => [r.key?.toString() ?? null, r.value?.toString('hex') ?? null])
  const hex = (text) => Buffer.from(text).toString('hex')
  assert.deepEqual(landed, [
    ['42', hex('{"user":"ünï","n":[1,2.5,null]}')], ['7', null], ['1', hex('[true]')], ['k', hex('"text"')], [null, '0102'],
  ])
})
