"""Kafka for integration tests: unique names per test, reading topics, committed offsets."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition

from stream.settings import Settings, load_settings

BOOTSTRAP = os.environ.get(
    "STREAM_KAFKA__BOOTSTRAP_SERVERS", os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
)


def envelope(event_id, event_type, customer, data, at) -> dict:
    """A loyalty event document as producers send it."""
    return {
        "event_id": event_id,
        "type": event_type,
        "occurred_at": at.isoformat(),
        "source": "rivo",
        "customer": customer,
        "data": data,
    }


@dataclass(frozen=True)
class Names:
    """Unique topic names and app id, so tests never share state on the one broker."""

    run: str

    @property
    def app_id(self) -> str:
        return f"it-{self.run}"

    @property
    def events(self) -> str:
        return f"it-{self.run}.events"

    @property
    def dead_letter(self) -> str:
        return f"it-{self.run}.events.dlq"

    @property
    def outbox(self) -> str:
        return f"it-{self.run}.outbox"

    @property
    def outbox_dead_letter(self) -> str:
        return f"it-{self.run}.outbox.dlq"

    @property
    def outbox_versions(self) -> str:
        return f"it-{self.run}.outbox.versions"

    @property
    def outbox_progress(self) -> str:
        return f"it-{self.run}.outbox.progress"

    @property
    def control(self) -> str:
        return f"it-{self.run}.control"

    @property
    def redriven(self) -> str:
        return f"it-{self.run}.redriven"

    @property
    def erasures(self) -> str:
        return f"it-{self.run}.erasures"

    @property
    def pusher_group(self) -> str:
        return f"{self.app_id}-pusher"


def names_settings(names: Names, **topics: object) -> Settings:
    """Settings for a test's own topics and group on the test broker."""
    return load_settings(
        kafka={"bootstrap_servers": BOOTSTRAP},
        app_id=names.app_id,
        topics={
            "events": names.events,
            "dead_letter": names.dead_letter,
            "outbox": names.outbox,
            "outbox_dead_letter": names.outbox_dead_letter,
            "outbox_versions": names.outbox_versions,
            "outbox_progress": names.outbox_progress,
            "control": names.control,
            "redriven": names.redriven,
            "erasures": names.erasures,
            **topics,
        },
    )


async def read_topic(topic: str, expected: int, timeout: float = 30.0):
    """Every record of a topic, from the start, once at least `expected` have arrived."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=BOOTSTRAP, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        deadline = time.monotonic() + timeout
        while not partitions and time.monotonic() < deadline:
            await consumer._client.force_metadata_update()
            partitions = consumer.partitions_for_topic(topic) or set()
        assignment = [TopicPartition(topic, p) for p in partitions]
        consumer.assign(assignment)
        await consumer.seek_to_beginning(*assignment)
        records = []
        while len(records) < expected and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for items in batch.values():
                records.extend(items)
        return records
    finally:
        await consumer.stop()


async def known_partitions(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    """The partitions of `topic`, asked of the broker (there must be some)."""
    # A consumer that subscribes to nothing knows no topic until it asks for one.
    await consumer._client.force_metadata_update()
    partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or []]
    assert partitions, f"no partitions known for {topic}"
    return partitions


async def committed_to_the_end(group: str, topic: str) -> dict[int, tuple[int, int]]:
    """Per partition of `topic`: (the group's committed offset, the end offset)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=BOOTSTRAP, group_id=group)
    await consumer.start()
    try:
        partitions = await known_partitions(consumer, topic)
        ends = await consumer.end_offsets(partitions)
        return {tp.partition: ((await consumer.committed(tp)) or 0, ends[tp]) for tp in partitions}
    finally:
        await consumer.stop()
