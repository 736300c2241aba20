import type { Producer } from './index'

/** The part of a prom-client `Registry` the collector uses. */
export interface MetricRegistry {
  registerMetric(metric: any): void
}

/**
 * A prom-client collector of kafkasender producers: `new KafkaSenderCollector(register, ...producers)`
 * registers their metric families (counters, gauges, the delivery-latency histogram, the breaker's
 * state set, each labelled with `client_id`), merged across producers at every scrape.
 */
export declare class KafkaSenderCollector {
  constructor(registry: MetricRegistry, ...producers: Producer[])
  /** Collects `producer`'s metrics too. */
  add(producer: Producer): void
}
