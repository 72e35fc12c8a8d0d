"""Re-publish dead letters after a fix: `python -m stream redrive events|outbox [filters]`.

It reads the dead-letter topic from the start up to its end at the time of the call, picks the
letters that match every filter, and publishes their original key, value and headers to where
they came from (input letters to their source topic, Ometria records to the outbox). Running it
twice publishes twice; that is safe because events are applied once per `event_id` and Ometria
records are upserts by id.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from stream.dlq import HEADER_PREFIX, read_headers
from stream.kafka_auth import client_options
from stream.settings import Settings
from stream.topology import partition_ids

Which = Literal["events", "outbox"]
REDRIVEN_FROM_HEADER = "redriven_from"


@dataclass(frozen=True, slots=True)
class Filters:
    error_class: str | None = None
    reason_contains: str | None = None
    key: str | None = None
    since: datetime | None = None
    limit: int | None = None

    def match(self, key: bytes | None, letter: dict[str, str]) -> bool:
        if self.error_class and letter.get("error_class") != self.error_class:
            return False
        if self.reason_contains and self.reason_contains not in letter.get("reason", ""):
            return False
        if self.key is not None and (key or b"").decode("utf-8", "replace") != self.key:
            return False
        if self.since is not None:
            failed = letter.get("failed_at")
            if failed is None or datetime.fromisoformat(failed) < self.since:
                return False
        return True


@dataclass(frozen=True, slots=True)
class Report:
    dead_letter_topic: str
    scanned: int
    matched: int
    published: int


async def redrive(
    settings: Settings,
    which: Which,
    filters: Filters,
    *,
    dry_run: bool,
    show: Callable[[str], None] = print,
) -> Report:
    """Re-publish the matching dead letters of one dead-letter topic (see the module doc)."""
    topics = settings.topics
    source = topics.dead_letter if which == "events" else topics.outbox_dead_letter
    options = client_options(settings.kafka)
    consumer = AIOKafkaConsumer(**options, enable_auto_commit=False)
    # Created only to publish: an unstarted client would still warn when collected.
    producer = None if dry_run else AIOKafkaProducer(**options, acks="all")
    await consumer.start()
    scanned = matched = published = 0
    try:
        partitions = [TopicPartition(source, p) for p in await partition_ids(settings, source)]
        if not partitions:
            return Report(source, 0, 0, 0)
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        # Read up to the end as it is now: letters that arrive meanwhile wait for the next run.
        ends = await consumer.end_offsets(partitions)
        remaining = {tp for tp in partitions if ends[tp] > 0}
        if remaining and producer is not None:
            await producer.start()
        while remaining:
            batch = await consumer.getmany(*remaining, timeout_ms=1000)
            for tp, records in batch.items():
                for record in records:
                    if record.offset >= ends[tp]:
                        break
                    scanned += 1
                    headers = list(record.headers or ())
                    letter = read_headers(headers)
                    if filters.limit is not None and matched >= filters.limit:
                        continue
                    if not filters.match(record.key, letter):
                        continue
                    matched += 1
                    target = (
                        (letter.get("source.topic") or topics.events)
                        if which == "events"
                        else topics.outbox
                    )
                    where = f"{source}/{tp.partition}/{record.offset}"
                    show(
                        f"{'would publish' if dry_run else 'publish'} {where} → {target}: "
                        f"{letter.get('error_class', '?')}: {letter.get('reason', '')[:200]}"
                    )
                    if producer is None:
                        continue
                    kept = [
                        (k, v)
                        for k, v in headers
                        if not k.startswith(HEADER_PREFIX) and k != REDRIVEN_FROM_HEADER
                    ]
                    await producer.send_and_wait(
                        target,
                        key=record.key,
                        value=record.value,
                        headers=[*kept, (REDRIVEN_FROM_HEADER, where.encode())],
                    )
                    published += 1
                if records and records[-1].offset + 1 >= ends[tp]:
                    remaining.discard(tp)
    finally:
        await consumer.stop()
        if producer is not None:
            await producer.stop()
    return Report(source, scanned, matched, published)
