'use strict'
// The Node face's runner of tests/parity scenarios: steps on stdin, one outcome line per send on
// stdout (the protocol is described in tests/parity/run.py).

const fs = require('node:fs')
const path = require('node:path')
const { MockCluster, Producer } = require(path.join(__dirname, '..', '..', '..', 'bindings', 'node'))

async function main() {
  let cluster = null
  let producer = null
  const config = {}
  const outcomes = []
  for (const line of fs.readFileSync(0, 'utf8').split('\n').filter(Boolean)) {
    const [step, ...field] = line.split('\t')
    const none = (s) => (s === '-' ? null : s)
    switch (step) {
      case 'brokers': cluster = Number(field[0]) > 0 ? new MockCluster(Number(field[0])) : null; break
      case 'topic': cluster.createTopic(field[0], Number(field[1])); break
      case 'config': config[field[0]] = field[1]; break
      case 'start': producer = new Producer({ ...(cluster ? { 'bootstrap.servers': cluster.bootstrapServers } : {}), ...config }); break
      case 'send': {
        const [topic, key, value, size, partition, headers] = field
        const index = outcomes.push('unreported\t-\t-1') - 1
        try {
          producer.send({
            topic,
            key: none(key),
            value: Number(size) > 0 ? 'x'.repeat(Number(size)) : none(value),
            headers: headers === '-' ? undefined : Object.fromEntries(headers.split(',').map((h) => h.split('='))),
            partition: partition === '-' ? undefined : Number(partition),
          }, (error, report) => {
            outcomes[index] = report
              ? `${report.outcome}\t${report.error ? report.error.code : '-'}\t${report.partition}`
              : `refused\t${error.code}\t-1` // not accepted: no report
          })
        } catch (error) {
          outcomes[index] = `refused\t${error.code}\t-1`
        }
        break
      }
      case 'flush': await producer.flush(Number(field[0])).catch(() => {}); break
      case 'close': await producer.close(Number(field[0])); break
      case 'down': cluster.brokerDown(Number(field[0])); break
      case 'up': cluster.brokerUp(Number(field[0])); break
      case 'errors': cluster.pushRequestErrors(field[0], field[1].split(',').map(Number)); break
      case 'sleep': await new Promise((resolve) => setTimeout(resolve, Number(field[0]))); break
      default: throw new Error(`unknown step ${step}`)
    }
  }
  if (producer !== null) await producer.close(10000) // every report is in once close resolves
  process.stdout.write(outcomes.map((outcome, index) => `${index}\t${outcome}\n`).join(''))
}

main().catch((error) => {
  console.error(error)
  process.exit(1)
})
