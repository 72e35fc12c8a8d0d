"""A fold batch's outbox messages: grouped by the customer's partition, order kept, bounded size."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from hypothesis import given
from hypothesis import strategies as st

from stream.runtime import outbox as outbox_module
from stream.runtime.outbox import OCCURRED_AT_HEADER, OutboxBatch
from stream.runtime.topology import default_partition

T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def _records(customer: str, n: int) -> list[dict]:
    return [{"@type": "custom_event", "id": f"{customer}-{i}", "n": i} for i in range(n)]


@given(st.text(min_size=1, max_size=30), st.integers(min_value=1, max_value=64))
def test_a_customer_lands_where_the_default_partitioner_puts_its_key(customer, partitions):
    # aiokafka's own partitioner is what backfill, redrive and producers of events use.
    every = list(range(partitions))
    expected = DefaultPartitioner()(customer.encode(), every, every)
    assert default_partition(customer.encode(), partitions) == expected


def test_records_are_grouped_per_partition_in_the_order_customers_were_added():
    batch = OutboxBatch(4)
    customers = [f"c-{n}" for n in range(40)]
    for n, customer in enumerate(customers):
        batch.add(customer, _records(customer, 1 + n % 3), T0 + timedelta(seconds=n))
    seen: dict[int, list[str]] = {}
    for partition, value, headers in batch.messages():
        records = orjson.loads(value)
        for record in records:
            owner = record["id"].rsplit("-", 1)[0]
            assert default_partition(owner.encode(), 4) == partition
            seen.setdefault(partition, []).append(record["id"])
        # One header per customer in the message: the time of that customer's latest event.
        owners = list(dict.fromkeys(r["id"].rsplit("-", 1)[0] for r in records))
        assert [name for name, _ in headers] == [OCCURRED_AT_HEADER] * len(owners)
        expected_times = [
            (T0 + timedelta(seconds=customers.index(owner))).isoformat().encode()
            for owner in owners
        ]
        assert [raw for _, raw in headers] == expected_times
    for partition, ids in seen.items():
        wanted = [
            record["id"]
            for n, customer in enumerate(customers)
            if default_partition(customer.encode(), 4) == partition
            for record in _records(customer, 1 + n % 3)
        ]
        assert ids == wanted


def test_a_customer_without_records_sends_nothing():
    batch = OutboxBatch(8)
    batch.add("c-1", [], T0)
    assert list(batch.messages()) == []


def test_a_large_partition_is_split_between_customers_below_the_size_bound(monkeypatch):
    monkeypatch.setattr(outbox_module, "MAX_MESSAGE_BYTES", 300)
    batch = OutboxBatch(1)
    for n in range(20):
        batch.add(f"c-{n}", _records(f"c-{n}", 2), T0)
    messages = list(batch.messages())
    assert len(messages) > 1
    ids = []
    for _, value, headers in messages:
        records = orjson.loads(value)
        assert len(value) <= 300
        assert len(records) == 2 * len(headers), "a customer's records stay in one message"
        ids += [record["id"] for record in records]
    assert ids == [record["id"] for n in range(20) for record in _records(f"c-{n}", 2)]


def test_one_customers_burst_larger_than_a_message_goes_in_consecutive_messages_in_order(
    monkeypatch,
):
    monkeypatch.setattr(outbox_module, "MAX_MESSAGE_BYTES", 400)
    batch = OutboxBatch(1)
    batch.add("c-0", _records("c-0", 1), T0)
    batch.add("c-1", _records("c-1", 40), T0 + timedelta(seconds=1))
    batch.add("c-2", _records("c-2", 1), T0 + timedelta(seconds=2))
    messages = list(batch.messages())
    assert len(messages) > 3
    ids = []
    for _, value, headers in messages:
        assert _kafka_size(value, headers) <= 400
        ids += [record["id"] for record in orjson.loads(value)]
    assert ids == [
        r["id"] for c, n in (("c-0", 1), ("c-1", 40), ("c-2", 1)) for r in _records(c, n)
    ]


def _kafka_size(value: bytes, headers) -> int:
    """What aiokafka computes for the message alone in its batch (what the broker compares)."""
    return DefaultRecordBatchBuilder.estimate_size_in_bytes(None, value, headers)


@given(
    sizes=st.lists(st.integers(min_value=1, max_value=300), min_size=1, max_size=30),
    limit=st.integers(min_value=3_000, max_value=20_000),
)
def test_every_message_fits_the_outbox_topics_max_message_bytes(sizes, limit):
    batch = OutboxBatch(2, max_message_bytes=limit)
    for n, count in enumerate(sizes):
        batch.add(f"c-{n}", _records(f"c-{n}", count), T0 + timedelta(seconds=n))
    sent = []
    for _, value, headers in batch.messages():
        assert _kafka_size(value, headers) <= limit
        sent += [record["id"] for record in orjson.loads(value)]
    assert sorted(sent) == sorted(
        record["id"] for n, count in enumerate(sizes) for record in _records(f"c-{n}", count)
    )


def test_the_pusher_observes_push_latency_once_per_customer_of_a_message():
    from aiokafka import TopicPartition
    from aiokafka.structs import ConsumerRecord

    from stream import metrics
    from stream.runtime.push_round import observe_latency

    batch = OutboxBatch(1)
    batch.add("c-1", _records("c-1", 1), T0)
    batch.add("c-2", _records("c-2", 1), T0 + timedelta(seconds=30))
    ((_, value, headers),) = batch.messages()
    record = ConsumerRecord("outbox", 0, 7, 0, 0, None, value, None, 0, len(value), headers)

    def observed() -> tuple[float, float]:
        samples = {s.name: s.value for s in metrics.PUSH_LATENCY.collect()[0].samples}
        return samples["ometria_push_latency_seconds_count"], samples[
            "ometria_push_latency_seconds_sum"
        ]

    count, total = observed()
    observe_latency({TopicPartition("outbox", 0): [record]}, T0 + timedelta(seconds=60))
    after_count, after_total = observed()
    assert after_count - count == 2
    assert after_total - total == 60 + 30


class _Backlog:
    """A consumer whose partition holds `messages` fold messages of `per_message` entries."""

    def __init__(self, messages: int, per_message: int) -> None:
        from aiokafka import TopicPartition
        from aiokafka.structs import ConsumerRecord

        self.tp = TopicPartition("outbox", 0)
        headers = [(OCCURRED_AT_HEADER, T0.isoformat().encode())] * per_message
        self._log = [
            ConsumerRecord("outbox", 0, n, 0, 0, None, b"[]", None, 0, 2, headers)
            for n in range(messages)
        ]
        self.position = 0

    async def getmany(self, timeout_ms: int, max_records: int):
        taken = self._log[self.position : self.position + max_records]
        self.position += len(taken)
        return {self.tp: taken} if taken else {}

    def seek(self, tp, offset: int) -> None:
        assert tp == self.tp
        self.position = offset


async def test_a_backlog_round_reads_about_coalesce_records_entries_however_they_are_packed():
    import types

    from stream.runtime.push_round import entries
    from stream.runtime.pusher import Pusher

    for per_message in (1, 7, 300):
        # The round's state only: a real Pusher opens Kafka clients.
        state = types.SimpleNamespace(
            _max_records=1000,
            _stopping=False,
            _assignment=types.SimpleNamespace(failure=None),
            _flush=0.01,
            _consumer=_Backlog(messages=10_000, per_message=per_message),
        )
        gathered = await Pusher._gather(state)  # type: ignore[arg-type]
        taken = [record for records in gathered.values() for record in records]
        read = sum(entries(record) for record in taken)
        # At least the bound, and over it by less than one message's entries.
        assert 1000 <= read < 1000 + per_message, (per_message, read)
        # The next round starts right after the last message taken, nothing skipped.
        assert [r.offset for r in taken] == list(range(len(taken)))
        assert state._consumer.position == len(taken)
