"""The prometheus_client collector: two producers in one registry, exposed and parsed back."""

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from kafkasender import Producer
from kafkasender.prometheus import KafkaSenderCollector


def test_two_producers_share_one_registry_with_histograms_and_breaker_states(cluster, topic):
    config = {"bootstrap.servers": cluster.bootstrap_servers}
    with Producer(config, client_id="orders") as orders, Producer(config, client_id="clicks") as clicks:
        for _ in range(3):
            orders.send(topic, b"o")
        clicks.send(topic, b"c")
        orders.flush(30)
        clicks.flush(30)
        registry = CollectorRegistry()
        registry.register(KafkaSenderCollector(orders, clicks))
        families = {f.name: f for f in text_string_to_metric_families(generate_latest(registry).decode())}
    delivered = {s.labels["client_id"]: s.value for s in families["kafkasender_messages_delivered"].samples
                 if s.name.endswith("_total")}
    assert delivered == {"orders": 3.0, "clicks": 1.0}
    latency = families["kafkasender_delivery_latency_seconds"]
    assert latency.type == "histogram"
    inf = {s.labels["client_id"]: s.value for s in latency.samples
           if s.name.endswith("_bucket") and s.labels["le"] == "+Inf"}
    assert inf == {"orders": 3.0, "clicks": 1.0}
    states = [(s.labels["client_id"], s.labels["state"], s.value) for s in families["kafkasender_breaker_state"].samples]
    assert ("orders", "closed", 1.0) in states and ("clicks", "open", 0.0) in states
