'use strict'
// Named producers from one TOML file: defaults, overrides, and an invalid file reported as one
// KafkaSenderError listing every problem.

const assert = require('node:assert/strict')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { test } = require('node:test')

const { KafkaSenderError, MockCluster, Producers } = require('..')

function write(text) {
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'ks-')), 'producers.toml')
  fs.writeFileSync(file, text)
  return file
}

test('each named producer overrides the defaults and sends', async () => {
  const cluster = new MockCluster(1)
  cluster.createTopic('named', 1)
  const producers = Producers.fromFile(write(`
    [defaults]
    bootstrap.servers = "${cluster.bootstrapServers}"
    log.level = "off"
    [producers.fast]
    acks = "1"
    enable.idempotence = false
    [producers.reliable]
    acks = "all"
  `))
  assert.deepEqual(producers.names, ['fast', 'reliable'])
  const fast = producers.get('fast')
  assert.equal(producers.get('fast'), fast)
  await fast.send({ topic: 'named', value: 'fast' })
  await producers.get('reliable').send({ topic: 'named', value: 'reliable' })
  assert.throws(() => producers.get('slow'), (e) => e instanceof KafkaSenderError && e.code === 'config')
  await producers.close()
  assert.equal(fast.closed, true)
  assert.deepEqual(cluster.readTopic('named').map((r) => r.value.toString()).sort(), ['fast', 'reliable'])
})

test('an invalid file is one error listing every problem', () => {
  const file = write('colour = "blue"\n[producers.a]\nacks = "sometimes"\n[producers.b]\nlinger.ms = "soon"\n')
  assert.throws(() => Producers.fromFile(file), (e) => e instanceof KafkaSenderError && e.code === 'config' &&
    ['colour', '[producers.a] acks', '[producers.b] linger.ms'].every((p) => e.message.includes(p)))
})
