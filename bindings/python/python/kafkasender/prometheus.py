"""A ``prometheus_client`` collector of kafkasender producers (``pip install prometheus_client``;
kafkasender itself does not need it)::

    from prometheus_client import REGISTRY
    from kafkasender.prometheus import KafkaSenderCollector

    REGISTRY.register(KafkaSenderCollector(orders_producer, clicks_producer))

Each scrape takes every open producer's metrics (``metrics_prometheus()``: counters, gauges, the
delivery-latency histogram, the breaker's state set), each labelled with its ``client_id``, and
merges families of the same name, so many producers share one registry.
"""

from typing import Any, Iterator, List

from prometheus_client.parser import text_string_to_metric_families


class KafkaSenderCollector:
    """Collects the metrics of the producers given (more with ``add``)."""

    def __init__(self, *producers: Any) -> None:
        self._producers: List[Any] = list(producers)

    def add(self, producer: Any) -> None:
        self._producers.append(producer)

    def collect(self) -> Iterator[Any]:
        families: dict = {}
        for producer in self._producers:
            if producer.closed:
                continue
            for family in text_string_to_metric_families(producer.metrics_prometheus()):
                if family.name in families:
                    families[family.name].samples.extend(family.samples)
                else:
                    families[family.name] = family
        yield from families.values()
