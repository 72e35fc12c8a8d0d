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

from collections import Counter
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


Kept = Literal["erased", "cut", "still_invalid"]


@dataclass(frozen=True, slots=True)
class _LetterChecks:
    """What a matching letter must pass to be published: its customer not erased since, its
    record whole, and (input letters) admitted as the workers admit input."""

    which: Which
    erasures: ErasureIndex
    events_partitions: list[int]
    window: EventWindow
    wire: WireFormat
    registry: SchemaRegistry | None
    now: datetime

    async def kept(
        self, record: Any, letter: dict[str, str], where: str
    ) -> tuple[Kept, str] | None:
        """Why the letter stays unpublished, and the line that says so (None: publish it)."""
        if self.which == "events":
            gone = _erased_since(self.erasures, self.events_partitions, record.key, letter)
        else:
            customers = _customers(record.key, record.value)
            gone = _any_erased(self.erasures, self.events_partitions, customers)
        if gone:
            return "erased", f"keep {where}: its customer was erased (never published again)"
        if letter.get("value_truncated") == "true":
            return "cut", (
                f"keep {where}: cut to fit the dead-letter topic "
                f"({letter.get('value_size', '?')} bytes); the whole record is at "
                f"{letter.get('source.topic')}/{letter.get('source.partition')}/"
                f"{letter.get('source.offset')}"
            )
        if self.which == "events":
            registry = self.registry
            ids = schema_ids([record.value]) if registry is not None else set()
            schemas = await registry.resolve(ids) if registry is not None and ids else {}
            wire = self.wire.with_schemas(schemas)
            try:
                admit(record.value, record.key, self.now, self.window, wire)
            except InvalidEvent as exc:
                why = f"keep {where}: still invalid: {exc.error_class}: {exc.reason[:200]}"
                return "still_invalid", why
        return None


class _Publisher:
    """Publishes letters back to their targets and records each in the redrive topic; its
    producer exists only for a real run and starts at the first letter."""

    def __init__(self, settings: Settings, which: Which, *, dry_run: bool, now: datetime) -> None:
        self._settings = settings
        self._which = which
        self._now = now
        self._started = False
        # Created only to publish: an unstarted client would still warn when collected.
        self._producer = (
            None
            if dry_run
            else AIOKafkaProducer(
                **client_options(settings.kafka),
                acks="all",
                # A letter may be as large as its source topic took.
                max_request_size=PRODUCER_MAX_REQUEST_BYTES,
            )
        )

    def target(self, letter: dict[str, str]) -> str:
        """Where the letter's record goes back to: its source topic, or the outbox."""
        topics = self._settings.topics
        if self._which == "events":
            return letter.get("source.topic") or topics.events
        return topics.outbox

    async def publish(self, record: Any, letter: dict[str, str], where: str, target: str) -> bool:
        """Publish the letter's record to `target`; False on a dry run."""
        producer = self._producer
        if producer is None:
            return False
        if not self._started:
            await producer.start()
            self._started = True
        kept = [
            (k, v)
            for k, v in record.headers or ()
            if not k.startswith(HEADER_PREFIX) and k != REDRIVEN_FROM_HEADER
        ]
        stored = await producer.send_and_wait(
            target,
            key=record.key,
            value=record.value,
            partition=await _source_partition(producer, target, letter)
            if self._which == "events"
            else None,
            headers=[*kept, (REDRIVEN_FROM_HEADER, where.encode())],
        )
        await producer.send_and_wait(
            self._settings.topics.redriven,
            key=where.encode(),
            value=encode(_marker(target, stored, self._now)),
        )
        return True

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()


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
    now = datetime.now(UTC)
    publisher = _Publisher(settings, which, dry_run=dry_run, now=now)
    scanned = matched = published = already = 0
    kept: Counter[Kept] = Counter()
    checks = _LetterChecks(
        which,
        erasures,
        events_partitions,
        EventWindow.from_settings(settings),
        WireFormat.from_settings(settings),
        SchemaRegistry(settings.registry) if settings.registry.url is not None else None,
        now,
    )
    try:
        async for record in read_to_end(settings, source):
            scanned += 1
            letter = read_headers(list(record.headers or ()))
            full = filters.limit is not None and matched >= filters.limit
            if full or not filters.match(record.key, letter):
                continue
            where = letter_id(source, record.partition, record.offset)
            if where in done:
                already += 1
                continue
            matched += 1
            why = await checks.kept(record, letter, where)
            if why is not None:
                kept[why[0]] += 1
                show(why[1])
                continue
            target = publisher.target(letter)
            show(
                f"{'would publish' if dry_run else 'publish'} {where} → {target}: "
                f"{letter.get('error_class', '?')}: {letter.get('reason', '')[:200]}"
            )
            if await publisher.publish(record, letter, where, target):
                published += 1
    finally:
        await publisher.stop()
        if checks.registry is not None:
            await checks.registry.aclose()
    counts = (kept["still_invalid"], already, kept["cut"], kept["erased"])
    return Report(source, scanned, matched, published, *counts)


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
