'use strict'
// A partitioner function of the user's: called on the event loop (also for sends made off it),
// its mistakes typed errors, and where it put each record read back.

const assert = require('node:assert/strict')
const { test } = require('node:test')

const { MockCluster, Producer } = require('..')

test('a partitioner function places records and its mistakes are typed errors', async () => {
  const cluster = new MockCluster(1)
  cluster.createTopic('node-custom', 4, 1)
  const producer = new Producer({ 'bootstrap.servers': cluster.bootstrapServers })
  producer.setPartitioner((topic, key, partitionCount) => {
    assert.equal(topic, 'node-custom')
    assert.equal(partitionCount, 4)
    const text = key === null ? '' : key.toString()
    if (text === 'boom') throw new Error('no rule for boom')
    if (text === 'words') return 'two'
    return text === 'nowhere' ? 9 : text.length % partitionCount
  })
  const sent = await Promise.all(['a', 'bb', 'ccc', 'dddd'].map((key) => producer.send({ topic: 'node-custom', key, value: key })))
  assert.deepEqual(sent.map((r) => r.partition), [1, 2, 3, 0])
  // sendBatch crosses off the event loop: the loop still runs the function.
  const batch = await producer.sendBatch(['a', 'bb'].map((key) => ({ topic: 'node-custom', key, value: key })))
  assert.deepEqual(batch.map((r) => r.partition), [1, 2])
  assert.equal((await producer.send({ topic: 'node-custom', key: 'bb', value: 'x', partition: 0 })).partition, 0)
  for (const [key, message] of [['nowhere', /returned 9/], ['boom', /no rule for boom/], ['words', /partitioner failed/]]) {
    await assert.rejects(producer.send({ topic: 'node-custom', key, value: 'x' }), (error) => {
      assert.equal(error.code, 'invalid_record')
      assert.match(error.message, message)
      return true
    })
  }
  assert.throws(() => producer.setPartitioner('not a function'), TypeError)
  assert.throws(() => producer.setPartitioner(() => 0), { code: 'config' })
  await producer.close()

  const landed = cluster.readTopic('node-custom').map((r) => `${r.key}:${r.partition}`).sort()
  assert.deepEqual(landed, ['a:1', 'a:1', 'bb:0', 'bb:2', 'bb:2', 'ccc:3', 'dddd:0'])
})
