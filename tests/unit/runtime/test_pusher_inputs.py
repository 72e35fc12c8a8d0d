"""The pusher's inputs that other writers share: a foreign outbox message's headers."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest
from aiokafka import TopicPartition
from aiokafka.errors import IllegalStateError
from aiokafka.structs import ConsumerRecord
from pydantic import SecretStr

from stream import metrics
from stream.ometria.client import OmetriaClient
from stream.runtime.outbox import OCCURRED_AT_HEADER
from stream.runtime.pusher import Pusher
from stream.settings import load_settings

EVENT = {
    "@type": "custom_event",
    "id": "c1:e1:loyalty_points_earned",
    "timestamp": "2026-11-21T10:00:00Z",
    "event_type": "loyalty_points_earned",
    "identity_email": "c1@example.com",
    "identity_account_id": "c1",
    "properties": {"points": 5},
}


@pytest.fixture
def received() -> list[list[dict[str, Any]]]:
    """The bodies of the push requests Ometria got."""
    return []


@pytest.fixture
async def pusher(received) -> AsyncIterator[Pusher]:
    def ometria(request: httpx.Request) -> httpx.Response:
        records = orjson.loads(request.content)
        received.append(records)
        return httpx.Response(
            202, json={"status": "OK", "request_id": "r", "accepted": len(records), "rejected": 0}
        )

    async with OmetriaClient(
        "https://ometria.test", SecretStr("k"), transport=httpx.MockTransport(ometria)
    ) as client:
        # Nothing here is started: the round's delivery needs no broker for custom events.
        pusher = Pusher(load_settings(), client)
        yield pusher
        await pusher.close()


def outbox_message(headers: list[tuple[str, bytes]]) -> ConsumerRecord[bytes, bytes]:
    value = orjson.dumps([EVENT])
    return ConsumerRecord("outbox", 0, 7, 0, 0, None, value, None, 0, len(value), headers)


def latency_count() -> float:
    samples = metrics.PUSH_LATENCY.collect()[0].samples
    return next(s.value for s in samples if s.name == "ometria_push_latency_seconds_count")


@pytest.mark.parametrize(
    "raw",
    [b"yesterday", b"\xff\xfe", b"2026-11-21T10:00:00", b"2026-13-45T99:00:00+00:00"],
    ids=["not-a-time", "not-utf8", "no-offset", "out-of-range"],
)
async def test_round_foreign_message_with_bad_occurred_at_header_is_delivered_without_failing(
    pusher, received, caplog, raw
):
    good = (datetime.now(UTC) - timedelta(seconds=5)).isoformat().encode()
    message = outbox_message([(OCCURRED_AT_HEADER, raw), (OCCURRED_AT_HEADER, good)])
    before = latency_count()

    with caplog.at_level(logging.WARNING, logger="stream.runtime.push_round"):
        await pusher.rounds.deliver({TopicPartition("outbox", 0): [message]})

    assert received == [[EVENT]]
    assert latency_count() - before == 1, "the readable header is still observed"
    (warning,) = caplog.records
    assert "1 of this round's occurred-at headers" in warning.getMessage()


async def test_round_erasure_record_naming_no_customer_is_dead_lettered_never_sent(
    pusher, received
):
    letters: list[Any] = []

    async def dead_letter(letter: Any) -> None:
        letters.append(letter)

    pusher.rounds.dead_letter = dead_letter  # no broker here: the dead-letter topic is its stand-in
    broken = {"@type": "@erasure", "customer_id": None, "contact_id": "c9"}
    value = orjson.dumps([broken, EVENT])
    message = ConsumerRecord("outbox", 0, 7, 0, 0, None, value, None, 0, len(value), [])

    await pusher.rounds.deliver({TopicPartition("outbox", 0): [message]})

    assert received == [[EVENT]]
    (letter,) = letters
    assert letter.error_class == "UnusableErasure"
    assert orjson.loads(letter.value) == broken
    assert "names no customer_id" in letter.reason


async def test_records_read_across_two_rebalances_are_left_to_their_new_owner(pusher, monkeypatch):
    """A partition taken away while the rewind reads its commit is not sought (and no error)."""
    tp = TopicPartition("outbox", 2)
    assigned = {tp}
    sought: list[tuple[TopicPartition, int]] = []

    class Consumer:
        def assignment(self):
            return set(assigned)

        async def committed(self, partition):
            assigned.clear()  # the next rebalance takes it meanwhile
            return 7

        def seek(self, partition, offset):
            if partition not in assigned:
                raise IllegalStateError(f"No current assignment for partition {partition}")
            sought.append((partition, offset))

    monkeypatch.setattr(pusher.offsets, "_consumer", Consumer())
    await pusher.offsets.rewind({tp: [outbox_message([])]})
    assert sought == []
