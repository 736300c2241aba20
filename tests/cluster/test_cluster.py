"""Reliability on a real 3-node Apache Kafka cluster: broken on purpose, read back independently.

`make test-cluster` starts the cluster (scripts/kafka/cluster.sh), runs these and stops it.
"""

import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

import scenarios
from scenarios import SCENARIOS, cluster, cluster_env, kafkasender_bin, read_back

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "parity"))
import run as parity  # noqa: E402 - tests/parity/run.py: every face's scenario runner


@pytest.fixture(scope="session", autouse=True)
def three_nodes():
    cluster("up")
    yield
    if not os.environ.get("KS_KEEP_CLUSTER"):
        cluster("down")


@pytest.fixture(autouse=True)
def every_node_up_again():
    yield
    scenarios.all_nodes_up()


def check(result):
    print(scenarios.markdown([result]))
    print(result.summary)
    assert result.lost == 0, f"{result.lost} lines lost"
    assert result.duplicated == 0, f"{result.duplicated} duplicates"
    assert result.distinct_ids == result.read_back, "one x-ks-id per message"
    assert result.order_kept, "per-key order"
    assert result.exit_code == 0, result.summary


def test_a_leader_killed_mid_stream_loses_and_doubles_nothing():
    check(SCENARIOS["leader_killed"]())


def test_two_of_three_brokers_down_for_twenty_seconds_with_defaults_loses_and_doubles_nothing():
    check(SCENARIOS["two_down_defaults"]())


def test_two_of_three_brokers_down_with_breaker_and_spool_loses_and_doubles_nothing():
    # Lines spooled while the breaker is open are replayed in order when it closes, in the same run.
    check(SCENARIOS["two_down_breaker_spool"]())


def test_a_producer_killed_in_journal_mode_loses_nothing_it_accepted_and_its_replay_doubles_nothing():
    # What the killed producer had in flight, or had reported without listing it yet, is in the
    # journal: the replay finds those in the topic by their x-ks-id and does not send them again.
    result = SCENARIOS["producer_killed_journal"]()
    print(scenarios.markdown([result]))
    print(result.summary)
    assert result.fed > 0, "the killed producer had accepted something"
    assert result.lost == 0, f"{result.lost} accepted lines lost"
    assert result.duplicated == 0, f"{result.duplicated} copies\n{result.summary}"
    assert result.order_kept, "per-key order of first copies"


def test_with_a_short_message_timeout_nothing_is_lost_and_every_copy_carries_the_id_of_its_original():
    # Messages that time out may have been written: they are spooled, and the replay sends only
    # those it does not find in the topic (after later messages of their key). Copies still land:
    # librdkafka's own, after the new producer epoch a timeout starts (docs/reliability.md).
    # The producer may end with messages still spooled (its breaker open again at exit): then it
    # exits 1, "not all delivered", and the replay after it sends them. Nothing may fail or be
    # refused, by the producer or by the replay.
    result = SCENARIOS["two_down_short_timeout"]()
    print(scenarios.markdown([result]))
    assert result.lost == 0, f"{result.lost} lines lost"
    assert result.duplicated_after_id_dedup == 0, "every copy is removable by its x-ks-id"
    assert result.exit_code in (0, 1), result.summary
    for row in ("refused at once", "failed after acceptance"):
        counts = re.findall(rf"{row}\s*│\s*([\d,]+)", result.summary)
        assert counts and set(counts) == {"0"}, f"{row}: {counts}\n{result.summary}"


def produce_lines(bootstrap, settings, lines, topic, log_level="warn"):
    args = [kafkasender_bin()]
    for setting in settings:
        args += ["-X", setting]
    env = {**os.environ, "KAFKA_BROKERS": bootstrap, "KAFKA_LOG_LEVEL": log_level}
    started = time.monotonic()
    result = subprocess.run([*args, "produce", "--topic", topic], input="".join(f"{l}\n" for l in lines),
                            capture_output=True, text=True, env=env, timeout=120)
    return result, time.monotonic() - started


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_scram_produces_and_reads_back(mechanism):
    env = cluster_env()
    topic = scenarios.topic_name(mechanism.lower())
    result, _ = produce_lines(env["KS_CLUSTER_SASL"], [
        "security.protocol=sasl_plaintext", f"sasl.mechanism={mechanism}",
        f"sasl.username={env['KS_CLUSTER_USER']}", f"sasl.password={env['KS_CLUSTER_PASSWORD']}",
    ], [f"m{i}" for i in range(100)], topic)
    assert result.returncode == 0, result.stderr
    assert sorted(value for *_, value in read_back(topic, 100)) == sorted(f"m{i}" for i in range(100))


def test_tls_with_the_cluster_ca_produces_and_reads_back():
    env = cluster_env()
    topic = scenarios.topic_name("tls")
    result, _ = produce_lines(env["KS_CLUSTER_TLS"], ["security.protocol=ssl", f"ssl.ca.location={env['KS_CLUSTER_CA']}"],
                              [f"t{i}" for i in range(100)], topic)
    assert result.returncode == 0, result.stderr
    assert len(read_back(topic, 100)) == 100


def wrong_password(env):
    """Settings of a SCRAM-SHA-512 client of the cluster's SASL listener, its user's password reversed."""
    return {
        "bootstrap.servers": env["KS_CLUSTER_SASL"], "security.protocol": "sasl_plaintext",
        "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": env["KS_CLUSTER_USER"],
        "sasl.password": "wrong-" + env["KS_CLUSTER_PASSWORD"][::-1],
    }


def test_a_wrong_password_fails_every_message_with_authentication_within_ten_seconds_and_never_shows_it():
    client = wrong_password(cluster_env())
    password = client["sasl.password"]
    bootstrap = client.pop("bootstrap.servers")
    result, elapsed = produce_lines(bootstrap, [f"{k}={v}" for k, v in client.items()] + ["debug=all"],
                                    [f"m{i}" for i in range(20)], scenarios.topic_name("wrong-password"),
                                    log_level="trace")
    assert result.returncode == 3, result.stderr[-3000:]
    assert elapsed < 10
    assert "20 × authentication" in result.stderr
    assert "SASL authentication failed" in result.stderr
    assert password not in result.stderr + result.stdout


def test_an_untrusted_certificate_fails_every_message_with_authentication_within_ten_seconds():
    env = cluster_env()
    result, elapsed = produce_lines(env["KS_CLUSTER_TLS"], ["security.protocol=ssl"],
                                    [f"m{i}" for i in range(20)], scenarios.topic_name("untrusted"))
    assert result.returncode == 3, result.stderr[-3000:]
    assert elapsed < 10
    assert "20 × authentication" in result.stderr
    assert "certificate verify failed" in result.stderr


def test_a_producer_with_a_wrong_password_keeps_refusing_sends_while_librdkafka_stops_repeating_the_failure():
    """librdkafka reports an unchanged failure once per 30 s: a send 25 s after the first failures,
    in that silence, is refused at once rather than accepted and failed at the next report."""
    env = cluster_env()
    topic = scenarios.topic_name("auth-later")
    scenario = {
        "brokers": 0,
        "config": wrong_password(env),
        "actions": [{"send": {"topic": topic, "value": "v"}}, {"flush": 30000}, {"sleep": 20000},
                    {"send": {"topic": topic, "value": "v"}}, {"flush": 30000}],
    }
    rust = dict(face_runners())["rust"]
    outcomes = parity.play(shlex.split(rust), scenario)
    print(outcomes)
    assert outcomes[0] == {"outcome": "failed", "error": "authentication", "partition": -1}
    assert outcomes[1] == {"outcome": "refused", "error": "authentication", "partition": -1}


def face_runners():
    """(name, command) of every face's scenario runner, as `make test-cluster` passes them."""
    tokens = shlex.split(os.environ.get("KS_PARITY_RUNNERS", ""))
    return [tuple(token.split("=", 1)) for token in tokens[1::2]]


@pytest.mark.parametrize("failure", ["wrong password", "untrusted certificate"])
def test_every_face_fails_authentication_within_ten_seconds(failure):
    runners = face_runners()
    assert {name for name, _ in runners} == {"rust", "c", "go", "python", "node"}, "KS_PARITY_RUNNERS"
    env = cluster_env()
    config = {
        "wrong password": wrong_password(env),
        "untrusted certificate": {"bootstrap.servers": env["KS_CLUSTER_TLS"], "security.protocol": "ssl"},
    }[failure]
    scenario = {
        "brokers": 0, "config": config,
        "actions": [{"send": {"topic": scenarios.topic_name("auth"), "value": "v"}, "times": 5}, {"flush": 30000}],
    }
    for name, command in runners:
        # A face slower than 10 s gets one more try: in one CI run a face took 26 s while the others
        # took 5 s, and none did again in 65 runs here (most likely the brokers or the machine
        # stalling, which no producer can see past). A face slow twice fails. Its log (librdkafka's
        # lines at info) is printed for a slow try, to tell which of the two it was.
        for attempt in (1, 2):
            started = time.monotonic()
            outcomes, log = parity.play_logged(shlex.split(command), scenario, "info")
            elapsed = time.monotonic() - started
            print(f"{failure} [{name}] try {attempt}: {elapsed:.1f}s, {outcomes[0]}")
            if elapsed >= 10:
                print(f"{failure} [{name}] try {attempt}'s log:\n{log[-6000:]}")
            assert len(outcomes) == 5, name
            for outcome in outcomes:
                # Accepted and then failed, or refused at once once the failure is known: never delivered.
                assert outcome["outcome"] in ("failed", "refused") and outcome["error"] == "authentication", (name, outcome)
            if elapsed < 10:
                break
        assert elapsed < 10, f"{name}: {elapsed:.1f}s, twice"
