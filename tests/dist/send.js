// A program using the npm packages from dist/ alone (make test-dist-node): sends to an embedded
// mock cluster and reads back what landed. Exit status 0 when all 10 messages are there.
'use strict'

const { MockCluster, Producer } = require('kafkasender')

async function main() {
  const cluster = new MockCluster(1)
  cluster.createTopic('dist', 2)
  const producer = new Producer({ 'bootstrap.servers': cluster.bootstrapServers, 'log.level': 'off' })
  for (let i = 0; i < 10; i++) await producer.send({ topic: 'dist', value: 'from the npm packages' })
  await producer.close()
  const read = cluster.readTopic('dist').length
  if (read !== 10) throw new Error(`read back ${read} of 10`)
  console.log('10 of 10 read back')
}

main().catch((error) => {
  console.error(error)
  process.exit(1)
})
