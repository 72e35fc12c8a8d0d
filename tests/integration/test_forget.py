"""`forget` publishes a customer's erasure to every events partition; `--confirm-ometria` ends
the erasure's listing in `status`."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
from aiokafka import AIOKafkaConsumer

from stream.domain.erasure import erased_id
from stream.runtime.erasures import ometria_key, pending_in_ometria, pending_value
from stream.runtime.kafka_admin import partition_ids
from stream.runtime.topology import ensure_topics
from tests.support.kafka import BOOTSTRAP, known_partitions, names_settings, read_topic
from tests.support.processes import command_env, run_cli


async def _end_offsets(topic: str) -> dict[int, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=BOOTSTRAP)
    await consumer.start()
    try:
        partitions = await known_partitions(consumer, topic)
        return {tp.partition: end for tp, end in (await consumer.end_offsets(partitions)).items()}
    finally:
        await consumer.stop()


async def test_forget_publishes_each_customers_erasure_to_every_events_partition(names, tmp_path):
    await ensure_topics(names_settings(names, partitions=3))
    ids = tmp_path / "ids.txt"
    ids.write_text("# erasure requests of the week\nfg-2\n\n  fg-3  \n#fg-4\n")

    code, out = await run_cli(
        command_env(names), "forget", "--customer", "fg-1", "--file", str(ids)
    )

    assert code == 0, out
    assert "published 9 customer.erased records (3 customers x 3 partitions)" in out
    assert "fg-" not in out, "customer ids are personal data: counts only"
    records = await read_topic(names.events, expected=9)
    assert len(records) == 9
    placed = {(r.partition, r.key) for r in records}
    assert placed == {(p, k) for p in range(3) for k in (b"fg-1", b"fg-2", b"fg-3")}
    for record in records:
        event = orjson.loads(record.value)
        assert event["type"] == "customer.erased"
        assert event["customer"] == {"id": record.key.decode()}
        assert event["source"] == "loyalty-stream forget"
        assert event["data"] == {}
        assert event["event_id"].startswith("erase-")


async def test_forget_dry_run_counts_and_publishes_nothing(names):
    await ensure_topics(names_settings(names, partitions=3))

    code, out = await run_cli(
        command_env(names), "forget", "--dry-run", "--customer", "fg-1", "--customer", "fg-2"
    )

    assert code == 0, out
    assert "would publish 6 customer.erased records (2 customers x 3 partitions) to " in out
    assert f"{names.events} partitions 0, 1, 2" in out
    assert await _end_offsets(names.events) == {0: 0, 1: 0, 2: 0}


async def test_forget_without_an_events_topic_refuses_and_creates_nothing(names):
    code, out = await run_cli(command_env(names), "forget", "--customer", "fg-1")

    assert code == 1, out
    assert f"the events topic {names.events} does not exist" in out
    assert await partition_ids(names_settings(names), names.events) == []


async def test_confirm_ometria_ends_the_pending_listing_in_status(names, producer):
    settings = names_settings(names, partitions=3)
    await ensure_topics(settings)
    erased = erased_id(settings.erasure_hash_key, "fg-pending-1")
    for customer_id in ("fg-pending-1", "fg-pending-2"):
        await producer.send_and_wait(
            settings.topics.erasures,
            key=ometria_key(names.app_id, erased_id(settings.erasure_hash_key, customer_id)),
            value=pending_value(customer_id, datetime.now(UTC)),
            partition=0,
        )
    code, out = await run_cli(command_env(names), "status")
    assert code == 0, out
    assert "status: 2 erasures not yet confirmed in Ometria" in out
    assert f"status:   {erased[:12]}  erased " in out
    assert "customer fg-pending-1" in out

    code, out = await run_cli(
        command_env(names), "forget", "--confirm-ometria", "--customer", "fg-pending-1"
    )

    assert code == 0, out
    assert "confirmed 1 erasures done in Ometria; 0 given ids had none pending" in out
    assert [p.customer_id for p in await pending_in_ometria(settings)] == ["fg-pending-2"]
    code, out = await run_cli(command_env(names), "status")
    assert "status: 1 erasures not yet confirmed in Ometria" in out
    assert "fg-pending-1" not in out
    assert "customer fg-pending-2" in out
