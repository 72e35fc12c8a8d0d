"""Re-publish dead letters after a fix: `python -m stream redrive events|outbox [filters]`.

It reads the dead-letter topic from the start up to its end at the time of the call, picks the
letters that match every filter, and publishes their original key, value and headers to where
they came from: input letters to their source topic and partition (`dlq.source.partition`,
where their customer's profile is, whatever partitioner their producer used), Ometria records
to the outbox. An input letter is first checked exactly as the workers check input
(`stream.domain.intake.admit`, with the writer schemas of framed records fetched from the
Schema Registry, waiting while it does not answer): one that would be dead-lettered again is
shown with its reason and kept, not published; so is a letter cut to fit the dead-letter topic
(its whole record is at its source offset).

Each letter is published once. A redriven letter is recorded in the redrive topic
(`STREAM_TOPICS__REDRIVEN`, keyed by the letter's topic, partition and offset) once its record
is stored, and a later run skips it unless asked again (`--again`): a redriven event sits at a
new offset of the events topic, and only its `event_id` (among a customer's last 32) would
keep its points from counting twice. A crash between the publish and its record can publish
that one letter again on the next run; its `event_id` then catches it.

No letter brings an erased customer back, even with `--again` (stream.runtime.erasures): an
input letter whose customer was erased in its source partition after its source offset is
kept, and so is an Ometria record of a customer with any erasure on record.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import orjson
from aiokafka import AIOKafkaProducer

from stream.domain.dlq import HEADER_PREFIX, read_headers
from stream.domain.events import InvalidEvent
from stream.domain.intake import EventWindow, admit
from stream.domain.records import encode
from stream.domain.wire import WireFormat, schema_ids
from stream.runtime.erasures import ErasureIndex
from stream.runtime.kafka_admin import partition_ids
from stream.runtime.kafka_auth import client_options
from stream.runtime.reading import read_to_end
from stream.runtime.schema_registry import SchemaRegistry
from stream.runtime.topic_configs import PRODUCER_MAX_REQUEST_BYTES
from stream.settings import Settings

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
    still_invalid: int = 0  # input letters that fail the workers' checks again: not published
    already: int = 0  # matching letters an earlier run published: skipped (see --again)
    cut: int = 0  # letters cut to fit the dead-letter topic: their record is at its source
    erased: int = 0  # letters of customers erased since: never published (even with --again)


def letter_id(topic: str, partition: int, offset: int) -> str:
    """A dead letter's key in the redrive topic: where it is."""
    return f"{topic}/{partition}/{offset}"


async def redriven(settings: Settings) -> set[str]:
    """The letters earlier runs published (their `letter_id`s)."""
    return {
        record.key.decode()
        async for record in read_to_end(settings, settings.topics.redriven)
        if record.key is not None and record.value is not None
    }


async def redrive(
    settings: Settings,
    which: Which,
    filters: Filters,
    *,
    dry_run: bool,
    again: bool = False,
    show: Callable[[str], None] = print,
) -> Report:
    """Re-publish the matching dead letters of one dead-letter topic (see the module doc);
    `again`: letters published by an earlier run too."""
    topics = settings.topics
    source = topics.dead_letter if which == "events" else topics.outbox_dead_letter
    done = set() if again else await redriven(settings)
    erasures = ErasureIndex(settings)
    await erasures.catch_up()
    events_partitions = await partition_ids(settings, topics.events)
    # Created only to publish: an unstarted client would still warn when collected.
    producer = (
        None
        if dry_run
        else AIOKafkaProducer(
            **client_options(settings.kafka),
            acks="all",
            # A letter may be as large as its source topic took.
            max_request_size=PRODUCER_MAX_REQUEST_BYTES,
        )
    )
    started = False
    scanned = matched = published = still_invalid = already = cut = erased = 0
    window = EventWindow.from_settings(settings)
    wire = WireFormat.from_settings(settings)
    registry = SchemaRegistry(settings.registry) if settings.registry.url is not None else None
    now = datetime.now(UTC)
    try:
        async for record in read_to_end(settings, source):
            scanned += 1
            headers = list(record.headers or ())
            letter = read_headers(headers)
            if filters.limit is not None and matched >= filters.limit:
                continue
            if not filters.match(record.key, letter):
                continue
            where = letter_id(source, record.partition, record.offset)
            if where in done:
                already += 1
                continue
            matched += 1
            if which == "events":
                gone = _erased_since(erasures, events_partitions, record.key, letter)
            else:
                customers = _customers(record.key, record.value)
                gone = _any_erased(erasures, events_partitions, customers)
            if gone:
                erased += 1
                show(f"keep {where}: its customer was erased (never published again)")
                continue
            target = (
                (letter.get("source.topic") or topics.events)
                if which == "events"
                else topics.outbox
            )
            if letter.get("value_truncated") == "true":
                cut += 1
                show(
                    f"keep {where}: cut to fit the dead-letter topic "
                    f"({letter.get('value_size', '?')} bytes); the whole record is at "
                    f"{letter.get('source.topic')}/{letter.get('source.partition')}/"
                    f"{letter.get('source.offset')}"
                )
                continue
            if which == "events":
                ids = schema_ids([record.value]) if registry is not None else set()
                schemas = await registry.resolve(ids) if registry is not None and ids else {}
                try:
                    admit(record.value, record.key, now, window, wire.with_schemas(schemas))
                except InvalidEvent as exc:
                    still_invalid += 1
                    show(f"keep {where}: still invalid: {exc.error_class}: {exc.reason[:200]}")
                    continue
            show(
                f"{'would publish' if dry_run else 'publish'} {where} → {target}: "
                f"{letter.get('error_class', '?')}: {letter.get('reason', '')[:200]}"
            )
            if producer is None:
                continue
            if not started:
                await producer.start()
                started = True
            kept = [
                (k, v)
                for k, v in headers
                if not k.startswith(HEADER_PREFIX) and k != REDRIVEN_FROM_HEADER
            ]
            stored = await producer.send_and_wait(
                target,
                key=record.key,
                value=record.value,
                partition=await _source_partition(producer, target, letter)
                if which == "events"
                else None,
                headers=[*kept, (REDRIVEN_FROM_HEADER, where.encode())],
            )
            published += 1
            await producer.send_and_wait(
                topics.redriven,
                key=where.encode(),
                value=encode(_marker(target, stored, now)),
            )
    finally:
        if producer is not None:
            await producer.stop()
        if registry is not None:
            await registry.aclose()
    return Report(source, scanned, matched, published, still_invalid, already, cut, erased)


def _erased_since(
    erasures: ErasureIndex, partitions: list[int], key: bytes | None, letter: dict[str, str]
) -> bool:
    """Whether the input letter's customer was erased in its source partition after it.

    A letter that does not say where it came from is judged against every partition.
    """
    if not key:
        return False
    customer_id = key.decode("utf-8", "replace")
    where, offset = letter.get("source.partition", ""), letter.get("source.offset", "")
    if not (where.isdigit() and offset.isdigit()):
        return _any_erased(erasures, partitions, [customer_id])
    erased_at = erasures.erased_at(customer_id, int(where))
    return erased_at is not None and erased_at > int(offset)


def _any_erased(erasures: ErasureIndex, partitions: list[int], customers: Iterable[str]) -> bool:
    return any(
        erasures.erased_at(customer_id, partition) is not None
        for customer_id in customers
        for partition in partitions
    )


def _customers(key: bytes | None, value: bytes | None) -> set[str]:
    """The customers an Ometria record's letter may be of: its contact's `customer_id` or its
    custom event's account id, and the letter's key (all of them, when unsure)."""
    customers = {key.decode("utf-8", "replace")} if key else set()
    try:
        parsed = orjson.loads(value or b"null")
    except orjson.JSONDecodeError:
        return customers
    for record in parsed if isinstance(parsed, list) else [parsed]:
        if isinstance(record, dict):
            for field in ("customer_id", "identity_account_id"):
                if isinstance(record.get(field), str):
                    customers.add(record[field])
    return customers


async def _source_partition(
    producer: AIOKafkaProducer, topic: str, letter: dict[str, str]
) -> int | None:
    """The partition the letter's record came from, where its customer's profile is (any
    producer's partitioner); None (the key decides) when unknown or no longer there."""
    raw = letter.get("source.partition", "")
    if not raw.isdigit():
        return None
    partitions = await producer.partitions_for(topic)
    return int(raw) if int(raw) in partitions else None


def _marker(target: str, stored: Any, now: datetime) -> dict[str, Any]:
    return {
        "redriven_at": now.isoformat(),
        "to": letter_id(target, stored.partition, stored.offset),
    }
