"""The control topic: operator switches every process obeys, kept in Kafka (compacted, 1 partition).

Records: `pause` (is pushing to Ometria paused, since when), `backfill` (when the last backfill
ran, for its cooldown) and `replay` (stream.runtime.replay_mark). Kept in Kafka so that they hold
across pods, restarts and Jobs; every pusher follows the topic and obeys a pause within seconds (see
ControlWatch). A malformed record never stops a process: what it guards reads as closed (paused,
backfill held back) and what it only tells is left out, with a warning.

Each deployment keys its records by its app id (`<STREAM_APP_ID>/pause`), so deployments that
share the topic never pause, hold back or replay one another. A record under the bare name
(`pause`) was written before keys named the deployment: a deployment without a record of its
own reads it instead, so that one paused before an upgrade stays paused after it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

import orjson
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError
from pydantic import AwareDatetime, BaseModel, ConfigDict, NonNegativeInt, ValidationError

from stream import metrics
from stream.errors import LoyaltyStreamError
from stream.runtime.kafka_admin import partition_ids
from stream.runtime.kafka_auth import client_options
from stream.runtime.reading import group_less_consumer, latest_values
from stream.settings import Settings

logger = logging.getLogger(__name__)

PAUSE = b"pause"
BACKFILL = b"backfill"


def scoped_key(app_id: str, name: bytes) -> bytes:
    """The key of one deployment's `name` record: `<app id>/<name>`."""
    return app_id.encode() + b"/" + name


@dataclass(frozen=True, slots=True)
class ControlRecords:
    """The control topic as one deployment sees it: the latest value of each of its records."""

    app_id: str
    latest: Mapping[bytes, bytes | None]

    def get(self, name: bytes) -> bytes | None:
        """The deployment's own `name` record, else the unscoped one (None: neither)."""
        own = self.latest.get(scoped_key(self.app_id, name))
        return own if own is not None else self.latest.get(name)

    def unscoped(self, name: bytes) -> bool:
        """Whether `get(name)` is the unscoped record, which every deployment without a record
        of its own obeys too."""
        own = self.latest.get(scoped_key(self.app_id, name))
        return own is None and self.latest.get(name) is not None


class UnreadableControlRecord(LoyaltyStreamError):
    """A control record that does not hold what its key promises; the message says what."""


class ControlBody(BaseModel):
    """The JSON of a control record. Strict: a record is written by this code, so anything
    else (a naive time, a string where a number goes) means it came from elsewhere."""

    model_config = ConfigDict(strict=True, frozen=True)


def unreadable(key: bytes, error: ValidationError) -> UnreadableControlRecord:
    """The error for the record at `key`, naming each field and what it must hold."""
    problems = "; ".join(
        f"{'.'.join(str(part) for part in item['loc']) or 'the record'}: {item['msg']}"
        for item in error.errors(include_url=False, include_input=False)
    )
    return UnreadableControlRecord(
        f"the {key.decode('utf-8', 'replace')} record of the control topic is unreadable "
        f"({problems})"
    )


class _PauseSwitch(ControlBody):
    paused: bool


class _PauseSince(ControlBody):
    since: AwareDatetime | None = None


class _Backfill(ControlBody):
    at: AwareDatetime
    contacts: NonNegativeInt | None = None


@dataclass(frozen=True, slots=True)
class PauseState:
    """Whether pushing to Ometria is paused; `since` is when it last changed (None: never)."""

    paused: bool = False
    since: datetime | None = None

    def to_bytes(self) -> bytes:
        return orjson.dumps(
            {"paused": self.paused, "since": self.since.isoformat() if self.since else None}
        )

    @classmethod
    def from_bytes(cls, raw: bytes | None) -> PauseState:
        """The state a control record holds. A deleted record means "not paused"; one without
        a true or false `paused` means paused, so that a bad write never lets a pusher send.
        An unreadable `since` only tells when, so it is dropped and the switch obeyed."""
        if raw is None:
            return cls()
        try:
            paused = _PauseSwitch.model_validate_json(raw).paused
        except ValidationError as exc:
            logger.error(
                "%s; staying paused until `python -m stream resume` writes a new one",
                unreadable(PAUSE, exc),
            )
            return cls(paused=True)
        try:
            since = _PauseSince.model_validate_json(raw).since
        except ValidationError as exc:
            logger.warning(
                "%s; the time it was switched is shown as unknown", unreadable(PAUSE, exc)
            )
            since = None
        return cls(paused=paused, since=since)


def backfill_time(raw: bytes | None) -> datetime | None:
    """When the last backfill ran, from its control record (None: none ran).

    Raises:
        UnreadableControlRecord: the record is malformed, so the cooldown cannot be judged.
    """
    if raw is None:
        return None
    try:
        return _Backfill.model_validate_json(raw).at
    except ValidationError as exc:
        raise unreadable(BACKFILL, exc) from None


def backfill_record(at: datetime, contacts: int | None) -> bytes:
    """`contacts` is None while the run is under way."""
    return orjson.dumps({"at": at.isoformat(), "contacts": contacts})


async def write(settings: Settings, name: bytes, value: bytes | None) -> None:
    """Store this deployment's `name` record (None deletes it), acknowledged by every in-sync
    replica. The unscoped record, if any, is left to the deployments that still read it."""
    key = scoped_key(settings.app_id, name)
    producer = AIOKafkaProducer(**client_options(settings.kafka), acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(settings.topics.control, key=key, value=value, partition=0)
    finally:
        await producer.stop()


async def read(settings: Settings) -> ControlRecords:
    """This deployment's control records (none if the topic does not exist yet)."""
    if not await partition_ids(settings, settings.topics.control):
        return ControlRecords(settings.app_id, {})
    consumer = group_less_consumer(settings)
    await consumer.start()
    try:
        latest = await latest_values(consumer, TopicPartition(settings.topics.control, 0))
    finally:
        await consumer.stop()
    return ControlRecords(settings.app_id, latest)


class ControlWatch:
    """Follows the control topic for one process: the pause state as it changes.

    `start` reads the topic to its end before it returns, so a process that starts while paused
    never sends a round first.
    """

    FOLLOW_EVERY_MS = 500

    def __init__(self, settings: Settings) -> None:
        self._tp = TopicPartition(settings.topics.control, 0)
        self._app_id = settings.app_id
        self._keys = {scoped_key(settings.app_id, PAUSE), PAUSE}
        self._records: dict[bytes, bytes | None] = {}
        self._consumer = group_less_consumer(settings)
        self.pause = PauseState()
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def paused(self) -> bool:
        return self.pause.paused

    async def start(self) -> None:
        await self._consumer.start()
        # Leaves the consumer assigned to the partition, at its end: _follow goes on from there.
        latest = await latest_values(self._consumer, self._tp)
        self._records = {key: value for key, value in latest.items() if key in self._keys}
        self._apply(PauseState.from_bytes(self._pause_record()))
        metrics.PAUSED.set(1 if self.paused else 0)
        self._task = asyncio.ensure_future(self._follow())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._consumer.stop()

    async def wait_for_change(self, at_most: float) -> None:
        """Return when the pause state changes, or after `at_most` seconds."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), at_most)

    async def _follow(self) -> None:
        while True:
            try:
                got = await self._consumer.getmany(self._tp, timeout_ms=self.FOLLOW_EVERY_MS)
            except KafkaError as exc:  # the consumer reconnects by itself; keep following
                logger.warning("cannot read the control topic: %r", exc)
                await self.wait_for_change(self.FOLLOW_EVERY_MS / 1000)
                continue
            for records in got.values():
                for record in records:
                    if record.key not in self._keys:
                        continue
                    before = self._pause_record()
                    self._records[record.key] = record.value
                    # The unscoped record changes nothing once the deployment has its own.
                    if record.key != PAUSE or self._pause_record() != before:
                        self._apply(PauseState.from_bytes(self._pause_record()))

    def _pause_record(self) -> bytes | None:
        return ControlRecords(self._app_id, self._records).get(PAUSE)

    def _apply(self, state: PauseState) -> None:
        if state.paused != self.paused:
            logger.warning(
                "pushing to Ometria %s (control topic, since %s)",
                "paused: the outbox holds the backlog" if state.paused else "resumed",
                state.since.isoformat() if state.since else "?",
            )
            self._changed.set()
            self._changed = asyncio.Event()
        self.pause = state
        metrics.PAUSED.set(1 if state.paused else 0)
