"""Re-publish dead letters after a fix: `python -m stream redrive events|outbox [filters]`.

It reads the dead-letter topic from the start up to its end at the time of the call, picks the
letters that match every filter, and publishes their original key, value and headers to where
they came from (input letters to their source topic, Ometria records to the outbox). Running it
twice publishes twice; that is safe because events are applied once per `event_id` and Ometria
records are upserts by id. An input letter is first checked exactly as the workers check input
(`stream.domain.intake.admit`): one that would be dead-lettered again is shown with its reason and
kept, not published.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from aiokafka import AIOKafkaProducer

from stream.domain.dlq import HEADER_PREFIX, read_headers
from stream.domain.events import InvalidEvent
from stream.domain.intake import EventWindow, admit
from stream.runtime.kafka_auth import client_options
from stream.runtime.reading import read_to_end
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
    # Created only to publish: an unstarted client would still warn when collected.
    producer = None if dry_run else AIOKafkaProducer(**client_options(settings.kafka), acks="all")
    started = False
    scanned = matched = published = still_invalid = 0
    window = EventWindow.from_settings(settings)
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
            matched += 1
            target = (
                (letter.get("source.topic") or topics.events)
                if which == "events"
                else topics.outbox
            )
            where = f"{source}/{record.partition}/{record.offset}"
            if which == "events":
                try:
                    admit(record.value, record.key, now, window)
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
            await producer.send_and_wait(
                target,
                key=record.key,
                value=record.value,
                headers=[*kept, (REDRIVEN_FROM_HEADER, where.encode())],
            )
            published += 1
    finally:
        if producer is not None:
            await producer.stop()
    return Report(source, scanned, matched, published, still_invalid)
