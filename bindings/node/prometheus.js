'use strict'
// A prom-client collector of kafkasender producers (prom-client is an optional peer dependency;
// kafkasender itself does not need it):
//
//   const { register } = require('prom-client')
//   const { KafkaSenderCollector } = require('kafkasender/prometheus')
//   new KafkaSenderCollector(register, ordersProducer, clicksProducer)
//
// Each scrape takes every open producer's metricsPrometheus() (counters, gauges, the
// delivery-latency histogram, the breaker's state set), each labelled with its client_id, and
// merges families of the same name, so many producers share one registry. The families are
// registered as prom-client metrics of their own name, type and help.

class KafkaSenderCollector {
  #registry
  #producers = []
  /** Family names registered so far. */
  #registered = new Set()
  /** One scrape's families, shared by every family's get() of the same registry.metrics() call. */
  #scrape = null

  constructor(registry, ...producers) {
    this.#registry = registry
    for (const producer of producers) this.add(producer)
  }

  /** Collects `producer`'s metrics too. */
  add(producer) {
    this.#producers.push(producer)
    for (const family of parse(producer.metricsPrometheus()).values()) {
      if (this.#registered.has(family.name)) continue
      this.#registered.add(family.name)
      const { name, help, type } = family
      const get = async () => ({ name, help, type, aggregator: 'sum', values: this.#families().get(name)?.values ?? [] })
      this.#registry.registerMetric({ name, help, type, aggregator: 'sum', get, reset() {} })
    }
  }

  /** Every open producer's families, merged; kept until the scrape that asked is over. */
  #families() {
    if (this.#scrape === null) {
      const merged = new Map()
      for (const producer of this.#producers) {
        if (producer.closed) continue
        for (const family of parse(producer.metricsPrometheus()).values()) {
          const seen = merged.get(family.name)
          if (seen) seen.values.push(...family.values)
          else merged.set(family.name, family)
        }
      }
      this.#scrape = merged
      setImmediate(() => {
        this.#scrape = null
      })
    }
    return this.#scrape
  }
}

const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)",?/g

/** Prometheus text format (as the core writes it) → families by name: { name, help, type, values }. */
function parse(text) {
  const families = new Map()
  let current = null
  for (const line of text.split('\n')) {
    const comment = line.match(/^# (HELP|TYPE) (\S+) (.*)$/)
    if (comment) {
      const [, what, name, rest] = comment
      current = families.get(name) ?? { name, help: '', type: 'untyped', values: [] }
      families.set(name, current)
      if (what === 'HELP') current.help = rest.replace(/\\(n|\\)/g, (_, c) => (c === 'n' ? '\n' : '\\'))
      else current.type = rest
      continue
    }
    const sample = line.match(SAMPLE)
    if (!sample || current === null) continue
    const labels = {}
    for (const [, label, value] of (sample[2] ?? '').matchAll(LABEL)) {
      labels[label] = value.replace(/\\(n|\\|")/g, (_, c) => (c === 'n' ? '\n' : c))
    }
    current.values.push({ metricName: sample[1], labels, value: Number(sample[3]) })
  }
  return families
}

module.exports = { KafkaSenderCollector }
