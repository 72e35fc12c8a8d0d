"""No record stops the stream: a record at the broker's size limit and one customer's burst.

Both used to stop the worker before it committed, and the restarted worker read the same
records again, for ever: a dead letter over the dead-letter topic's limit, and one outbox
message holding a whole burst of one customer's records.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.record.default_records import DefaultRecordBatchBuilder

from stream.domain.dlq import read_headers
from stream.runtime.topology import ensure_topics
from tests.support.kafka import BOOTSTRAP, envelope, names_settings, read_topic
from tests.support.waiting import poll, sandbox_get


async def _max_message_bytes(topic: str) -> int:
    admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    await admin.start()
    try:
        (response,) = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, topic)]
        )
        entries = response.resources[0][4]
        return int(next(entry[1] for entry in entries if entry[0] == "max.message.bytes"))
    finally:
        await admin.close()


async def test_an_invalid_record_at_the_brokers_limit_is_dead_lettered_cut_and_the_stream_goes_on(
    names, sandbox, worker
):
    await ensure_topics(names_settings(names, partitions=3))
    limit = await _max_message_bytes(names.events)
    key = b"big-1"
    # Just under the limit as the broker counts it (the record alone in its batch).
    room = limit - DefaultRecordBatchBuilder.estimate_size_in_bytes(key, b"", []) - 16
    value = b'{"event_id": "' + b"x" * (room - 14)
    assert len(value) == room
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, acks="all", max_request_size=2 * limit)
    await producer.start()
    try:
        big = await producer.send_and_wait(names.events, key=key, value=value, partition=0)
        after = envelope(
            "after-big",
            "customer.enrolled",
            {"id": "after-big", "email": "after-big@example.com"},
            {"loyalty_status": "member"},
            datetime.now(UTC) - timedelta(minutes=1),
        )
        await producer.send_and_wait(
            names.events, key=b"after-big", value=orjson.dumps(after), partition=0
        )
    finally:
        await producer.stop()
    worker.start()
    await worker.wait_ready()

    contacts = await poll(
        lambda: sandbox_get(sandbox, "/_sandbox/contacts"),
        lambda body: any(c["id"] == "after-big" for c in body["contacts"]),
    )
    assert any(c["id"] == "after-big" for c in contacts["contacts"]), "the stream went on"
    (letter,) = await read_topic(names.dead_letter, expected=1)
    headers = read_headers(letter.headers)
    assert headers["value_truncated"] == "true"
    assert headers["value_size"] == str(len(value))
    assert (headers["source.topic"], headers["source.partition"], headers["source.offset"]) == (
        names.events,
        "0",
        str(big.offset),
    )
    assert value.startswith(letter.value)
    assert len(letter.value) > limit - 4_000, "as much of the record as fits"
    assert worker.process is not None
    assert worker.process.poll() is None
    assert "cut to fit its topic" in worker.text()


async def test_five_thousand_events_of_one_customer_in_one_burst_reach_ometria(
    names, sandbox, worker, producer
):
    await ensure_topics(names_settings(names, partitions=3))
    customer = {"id": "burst-1", "email": "burst@example.com"}
    at = datetime.now(UTC) - timedelta(hours=2)
    burst = [envelope("burst-enrol", "customer.enrolled", customer, {}, at)]
    burst += [
        envelope(f"burst-{n}", "points.earned", {"id": "burst-1"}, {"points": 2}, at)
        for n in range(5_000)
    ]
    # Sent before the worker starts, so it reads them as one backlog: one fold batch.
    for event in burst:
        await producer.send(names.events, key=b"burst-1", value=orjson.dumps(event))
    await producer.flush()
    worker.start()
    await worker.wait_ready()

    def all_earned(body) -> bool:
        return sum(e["event_type"] == "loyalty_points_earned" for e in body["events"]) >= 5_000

    events = await poll(lambda: sandbox_get(sandbox, "/_sandbox/events"), all_earned, timeout=120)
    earned = {e["id"] for e in events["events"] if e["event_type"] == "loyalty_points_earned"}
    assert len(earned) == 5_000
    contacts = await sandbox_get(sandbox, "/_sandbox/contacts")
    (contact,) = [c for c in contacts["contacts"] if c["id"] == "burst-1"]
    assert contact["properties"]["rivoPointsBalance"] == 10_000
    outbox = await read_topic(names.outbox, expected=2)
    assert len(outbox) >= 2, "the burst went in several outbox messages"
    assert worker.process is not None
    assert worker.process.poll() is None
