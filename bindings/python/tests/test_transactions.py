"""Transactions on the mock cluster: reports wait for the transaction's end, aborts fail every
message retriably, calls out of turn raise TransactionError. What a read_committed consumer sees
is proved on a real broker (tests/e2e)."""

import asyncio
import uuid

import pytest

from kafkasender import Producer, TransactionError


@pytest.fixture
def transactional(cluster):
    with Producer({"bootstrap.servers": cluster.bootstrap_servers,
                   "transactional.id": f"py-{uuid.uuid4().hex[:8]}"}) as p:
        yield p


def test_calls_out_of_turn_raise_transaction_error(producer, transactional, topic):
    assert transactional.transactional and not producer.transactional
    with pytest.raises(TransactionError):
        producer.begin_transaction()
    with pytest.raises(TransactionError) as raised:
        transactional.send(topic, "outside")
    assert not raised.value.retriable and "begin_transaction" in str(raised.value)
    with pytest.raises(TransactionError):
        transactional.commit_transaction(10)
    with pytest.raises(TransactionError):
        transactional.abort_transaction(10)


def test_with_commits_on_success_and_aborts_on_an_exception(transactional, topic):
    with transactional.transaction(30) as p:
        committed = [p.send(topic, f"c{i}", key=f"k{i % 3}") for i in range(100)]
        p.flush(30)
        assert not any(f.done() for f in committed), "reported only when the transaction ends"
    assert all(f.result(timeout=0).delivered for f in committed)

    with pytest.raises(RuntimeError):
        with transactional.transaction(30) as p:
            aborted = [p.send(topic, f"a{i}") for i in range(50)]
            raise RuntimeError("the application failed half-way")
    for future in aborted:
        error = future.exception(timeout=0)
        assert isinstance(error, TransactionError) and error.retriable, error
    # The next transaction works after an abort.
    with transactional.transaction(30) as p:
        last = p.send(topic, "last")
    assert last.result(timeout=0).delivered


def test_async_with_commits_and_aborts(transactional, topic):
    async def main():
        async with transactional.transaction(30) as p:
            # Tasks, so that each send happens inside the block (a bare coroutine starts later).
            committed = [asyncio.ensure_future(p.send_async(topic, f"c{i}")) for i in range(20)]
            await asyncio.sleep(0)
        reports = await asyncio.gather(*committed)
        assert all(r.delivered for r in reports)
        with pytest.raises(ValueError):
            async with transactional.transaction(30) as p:
                aborted = [asyncio.ensure_future(p.send_async(topic, f"a{i}")) for i in range(10)]
                await asyncio.sleep(0)
                raise ValueError("stop")
        results = await asyncio.gather(*aborted, return_exceptions=True)
        assert all(isinstance(r, TransactionError) and r.retriable for r in results), results

    asyncio.run(main())


def test_a_fatal_error_is_recovered_from_and_shows_in_reports(cluster, producer, topic):
    from kafkasender.testing import inject_fatal_error
    futures = [producer.send(topic, str(i), key=f"k{i % 10}") for i in range(2_000)]
    inject_fatal_error(producer)  # UNKNOWN_PRODUCER_ID
    futures += [producer.send(topic, str(i), key=f"k{i % 10}") for i in range(2_000, 4_000)]
    producer.flush(60)
    reports = [f.result(0) for f in futures]
    assert all(r.delivered for r in reports)
    assert all(r.attempts == 2 for r in reports if r.recovered)
    assert producer.metrics()["recoveries"] == 1
    values = {r["value"] for r in cluster.read_topic(topic)}
    assert len(values) == 4_000
