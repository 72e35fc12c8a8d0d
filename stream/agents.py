"""The two agents: fold events into profiles (per event) and push the outbox (per batch).

Nothing escapes either loop: Faust acks a message whose processing raised, so every failure
is caught per event or per batch and dead-lettered with the original bytes.
"""

from __future__ import annotations

import logging
from collections import deque
from datetime import UTC, datetime
from typing import Any

import faust
import orjson
from aiokafka.errors import KafkaError

from stream import metrics
from stream.app import app
from stream.delivery import Delivery
from stream.dlq import DeadLetter
from stream.events import InvalidEvent, check_key, parse_event
from stream.ometria.client import OmetriaClient
from stream.ometria.errors import OmetriaError
from stream.ometria.mapping import load_mapping
from stream.ometria.records import MAX_RECORDS_PER_REQUEST, encode
from stream.profile import Profile
from stream.settings import get_settings
from stream.skips import SkipWatch, read_range
from stream.sync import SyncRules, sync_event
from stream.tables import customer_to_profile
from stream.topics import (
    events_dead_letter_topic,
    loyalty_events_topic,
    ometria_outbox_topic,
    outbox_dead_letter_topic,
)
from stream.topology import committed_offsets
from stream.triggers import RewardCost, TriggerConfig

logger = logging.getLogger(__name__)
OCCURRED_AT_HEADER = "loyalty.occurred_at"

settings = get_settings()
mapping = load_mapping(settings.mapping.preset, settings.mapping.file)
rules = SyncRules(
    mapping=mapping,
    collection=settings.ometria.collection,
    triggers=TriggerConfig(
        tier_order=tuple(settings.triggers.tier_order),
        horizon=settings.triggers.horizon,
        disabled=frozenset(settings.triggers.disabled),
        rewards=tuple(RewardCost(n, p) for n, p in settings.triggers.rewards.items()),
        options=mapping.triggers,
    ),
)


def _headers(message: Any) -> list[tuple[str, bytes]]:
    headers = message.headers or []
    items = headers.items() if isinstance(headers, dict) else headers
    return [(str(k), bytes(v or b"")) for k, v in items]


async def _dead_letter_input(message: Any, error_class: str, reason: str) -> None:
    letter = DeadLetter(
        stage="parse",
        error_class=error_class,
        reason=reason,
        key=message.key,
        value=message.value,
        failed_at=datetime.now(UTC),
        source_topic=message.topic,
        source_partition=message.partition,
        source_offset=message.offset,
        original_headers=_headers(message),
    )
    await events_dead_letter_topic.send(
        key=letter.key, value=letter.value, headers=letter.headers()
    )
    metrics.DEAD_LETTERS.labels("parse", error_class).inc()
    logger.warning(
        "dead-lettered %s[%s] offset %s: %s",
        message.topic,
        message.partition,
        message.offset,
        reason,
    )


skip_watch = SkipWatch()


@app.on_partitions_assigned.connect
async def _forget_positions(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
    try:
        committed = await committed_offsets(settings)
    except KafkaError as exc:
        logger.warning("cannot read the committed offsets (%r); first records go unchecked", exc)
        committed = {}
    skip_watch.reset(committed)


async def _skipped_before(message: Any) -> list[Any]:
    """The records the consumer skipped just before this one (see stream.skips), read again.

    They are read with a separate, group-less consumer: seeking Faust's own consumer back does
    not help, as records it fetched before the seek move its read position past them again.
    """
    first_missing = skip_watch.check((message.topic, message.partition), message.offset)
    if first_missing is None:
        return []
    missing = await read_range(
        settings, message.topic, message.partition, first_missing, message.offset
    )
    logger.warning(
        "%s[%s] jumped from offset %s to %s; read %d skipped records again",
        message.topic,
        message.partition,
        first_missing - 1,
        message.offset,
        len(missing),
    )
    return missing


async def _sync_one(message: Any) -> None:
    try:
        event = parse_event(message.value)
        check_key(event, message.key)
    except InvalidEvent as exc:
        metrics.EVENTS.labels("unknown", "invalid").inc()
        await _dead_letter_input(message, exc.error_class, exc.reason)
        return
    customer_id = event.customer.id
    stored = customer_to_profile.get(customer_id)
    before = Profile.from_json(stored) if stored is not None else None
    outcome = sync_event(before, event, rules, now=datetime.now(UTC))
    if not outcome.applied:
        metrics.EVENTS.labels(event.type, "duplicate").inc()
        logger.debug("event %s already applied; skipped", event.event_id)
        return
    metrics.EVENTS.labels(event.type, "applied").inc()
    key = customer_id.encode()
    # The event time travels with the records so that push latency can be measured.
    headers = [(OCCURRED_AT_HEADER, event.occurred_at.isoformat().encode())]
    pending = [
        await ometria_outbox_topic.send(key=key, value=encode(record), headers=headers)
        for record in outcome.records
    ]
    # The outbox must hold the records before the table says the event was applied: after a
    # crash in between, the redelivered event is folded again and its records re-sent.
    for delivered in pending:
        await delivered
    customer_to_profile[customer_id] = outcome.profile.to_json()


@app.agent(loyalty_events_topic, concurrency=1)
async def sync_loyalty_profiles(stream: faust.StreamT[bytes]) -> None:
    """Fold each loyalty event into its customer's profile and queue the Ometria records."""
    async for event in stream.events():
        for message in [*await _skipped_before(event.message), event.message]:
            try:
                await _sync_one(message)
            except Exception as exc:
                # A bug must not lose the event: keep its bytes with the error for a redrive.
                metrics.EVENTS.labels("unknown", "failed").inc()
                logger.exception("failed to process %s offset %s", message.topic, message.offset)
                await _dead_letter_input(message, type(exc).__name__, f"internal error: {exc}")


async def _dead_letter_push(letter: DeadLetter) -> None:
    await outbox_dead_letter_topic.send(
        key=letter.key, value=letter.value, headers=letter.headers()
    )
    logger.error("dead-lettered an Ometria record: %s", letter.reason)


async def push_to_ometria(stream: faust.StreamT[bytes]) -> None:
    """Push the outbox to Ometria in coalesced, rate-limited batches."""
    conf = settings.ometria
    client = OmetriaClient(
        str(conf.base_url), conf.require_api_key(), timeout=conf.timeout.total_seconds()
    )
    async with client:
        delivery = Delivery(
            client,
            max_requests_per_second=conf.max_requests_per_second,
            dead_letter=_dead_letter_push,
        )
        metrics.PUSH_RATE.set(delivery.pacer.rate)
        within = conf.flush_interval.total_seconds()
        # StreamT's declared interface lacks take_events, which faust.Stream implements.
        batches = stream.take_events(MAX_RECORDS_PER_REQUEST, within=within)  # type: ignore[attr-defined]
        async for events in batches:
            records: list[dict[str, Any]] = []
            for event in events:
                for message in [*await _skipped_before(event.message), event.message]:
                    try:
                        records.append(orjson.loads(message.value))
                    except orjson.JSONDecodeError as exc:
                        await _dead_letter_push(_unreadable(message.value, exc))
            try:
                await delivery.deliver(records)
            except Exception as exc:
                logger.exception("delivery failed; dead-lettering the batch")
                for record in records:
                    await _dead_letter_push(_unreadable(encode(record), exc))
            _observe_latency(events, datetime.now(UTC))


def _observe_latency(events: Any, now: datetime) -> None:
    for event in events:
        raw = dict(_headers(event.message)).get(OCCURRED_AT_HEADER)
        if raw:
            occurred = datetime.fromisoformat(raw.decode())
            metrics.PUSH_LATENCY.observe(max(0.0, (now - occurred).total_seconds()))


def _unreadable(value: bytes, exc: Exception) -> DeadLetter:
    return DeadLetter(
        stage="push",
        error_class=type(exc).__name__,
        reason=f"internal error: {exc}",
        key=None,
        value=value,
        failed_at=datetime.now(UTC),
    )


class ErrorsWatch:
    """Remembers which entries of Ometria's errors list were already reported."""

    def __init__(self, remember: int = 1000) -> None:
        self._seen: deque[bytes] = deque(maxlen=remember)

    def new(self, entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
        fresh = []
        for entry in entries:
            fingerprint = orjson.dumps(entry, option=orjson.OPT_SORT_KEYS)
            if fingerprint not in self._seen:
                self._seen.append(fingerprint)
                fresh.append(entry)
        return fresh


errors_watch = ErrorsWatch()


async def report_ometria_errors() -> None:
    """Poll Ometria's account-wide record errors and report the new ones (log + metric)."""
    conf = settings.ometria
    try:
        async with OmetriaClient(
            str(conf.base_url), conf.require_api_key(), timeout=conf.timeout.total_seconds()
        ) as client:
            entries = await client.errors()
    except OmetriaError as exc:
        logger.warning("could not read Ometria's errors list: %s", exc)
        return
    for entry in errors_watch.new(entries):
        metrics.ERRORS_REPORTED.inc()
        logger.warning(
            "Ometria reports a record error: %s at %s",
            str(entry.get("error_message"))[:200],
            str(entry.get("error_path"))[:200],
        )


# Paused (STREAM_OMETRIA__ENABLED=false): nothing consumes the outbox, so it holds the backlog
# and re-enabling drains it from the committed offset.
if settings.ometria.enabled:
    app.agent(ometria_outbox_topic, concurrency=1)(push_to_ometria)
    poll_every = settings.ometria.errors_poll_interval.total_seconds()
    if poll_every > 0:
        # One worker is enough: the list is account-wide.
        app.timer(poll_every, on_leader=True)(report_ometria_errors)
