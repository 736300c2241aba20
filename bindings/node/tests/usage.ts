// Compiled with `tsc --noEmit` against index.d.ts: the documented usage type-checks.
import { DeliveryReport, Event, EventBuilder, KafkaSenderError, MockCluster, Producer, withCorrelationId } from '..'
import { Registry } from 'prom-client'
import { KafkaSenderCollector } from '../prometheus'

async function main(): Promise<void> {
  const cluster = new MockCluster(1)
  cluster.createTopic('orders', 2)
  const producer = new Producer({ 'bootstrap.servers': cluster.bootstrapServers, 'linger.ms': 5, 'enable.idempotence': true })
  const report: DeliveryReport = await producer.send({ topic: 'orders', value: 'v', key: Buffer.from('k'), headers: { h: 'x' } })
  const offset: bigint = report.offset
  new KafkaSenderCollector(new Registry(), producer).add(producer)
  producer.send({ topic: 'orders', value: new Uint8Array([1]), headers: [['h', null]] }, (err, r) => {
    if (err instanceof KafkaSenderError) console.log(err.code, err.retriable, err.rdkafkaCode)
    else console.log(r?.outcome)
  })
  const reports: DeliveryReport[] = await producer.sendBatch([{ topic: 'orders', value: null }])
  await producer.flush(1000)
  const sent: number = await producer.transaction(async (tx) => {
    void tx.send({ topic: 'orders', value: 'in a transaction' }) // settles when the transaction ends
    return 1
  }, 10_000)
  console.log(offset, sent, reports.length, producer.metrics().delivered, producer.health().status, producer.inFlight)
  const orders = new EventBuilder('checkout', { version: '2' })
  const event: Event = withCorrelationId('req-1', () => orders.event('order.placed', { order: 7, lines: [1, 2] }))
  producer.mapEventTopic('order.*', 'orders')
  const published: DeliveryReport = await producer.publishEvent(event)
  const all: DeliveryReport[] = await producer.publishEvents([orders.causedBy(event, 'order.paid', null)])
  console.log(published.offset, all.length, event.correlationId, Event.fromJSON(event.toJSON()).type)
  await producer.close()
  console.log(cluster.readTopic('orders').map((r) => r.value?.toString()))
  Producer.fromEnv
}

void main()
