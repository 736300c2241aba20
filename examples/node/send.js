// Sends with each delivery form (Promise, callback, batch), then reads the topic back.
// Runs against KAFKA_BROKERS when set, otherwise against an embedded mock cluster:
//   npm install ./bindings/node && node examples/node/send.js
'use strict'

const { KafkaSenderError, MockCluster, Producer } = require('kafkasender')

const TOPIC = 'kafkasender-example-node'

async function main() {
  const mock = process.env.KAFKA_BROKERS ? null : new MockCluster(1)
  const brokers = process.env.KAFKA_BROKERS || mock.bootstrapServers
  const producer = new Producer({ 'bootstrap.servers': brokers, 'linger.ms': 5 })

  // 1. A Promise of the report; it rejects only when the message is lost.
  const report = await producer.send({ topic: TOPIC, value: 'promise', key: 'example', headers: { form: 'promise' } })
  console.log(`promise: ${report.outcome} at ${report.partition}/${report.offset}`)

  // 2. Node style: callback(err, report), once.
  await new Promise((resolve) => producer.send({ topic: TOPIC, value: Buffer.from('callback') }, (err, r) => {
    console.log(`callback: ${err ? err.code : r.outcome}`)
    resolve()
  }))

  // 3. A batch: one report per message, in order.
  const reports = await producer.sendBatch([{ topic: TOPIC, value: 'batch 1' }, { topic: TOPIC, value: 'batch 2' }])
  console.log(`batch: ${reports.map((r) => r.outcome).join(', ')}`)

  // Bad input is a typed error, and nothing is sent.
  await producer.send({ topic: 'not a topic!', value: 'x' }).catch((error) => {
    if (!(error instanceof KafkaSenderError)) throw error
    console.log(`rejected: ${error.code}: ${error.message}`)
  })

  await producer.close() // settles everything; afterwards nothing keeps the process alive
  if (mock) console.log(`read back ${mock.readTopic(TOPIC).length} records`)
}

main().catch((error) => {
  console.error(error)
  process.exit(1)
})
