"""Redrive publishes each dead letter once, back to the partition it came from."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import orjson

from stream.domain.dlq import DeadLetter
from stream.domain.erasure import erased_id
from stream.ops.redrive import REDRIVEN_FROM_HEADER, Filters, redrive
from stream.runtime.erasures import erased_key, erased_value
from stream.runtime.topology import default_partition, ensure_topics
from tests.support.kafka import envelope, names_settings, read_topic
from tests.support.processes import command_env


def _letter(names, key: str, value: bytes, source_partition: int, offset: int) -> DeadLetter:
    """A dead letter as the worker writes it, of an event a fixed worker now accepts."""
    return DeadLetter(
        stage="parse",
        error_class="InternalError",
        reason="internal error: fixed since",
        key=key.encode(),
        value=value,
        failed_at=datetime.now(UTC),
        source_topic=names.events,
        source_partition=source_partition,
        source_offset=offset,
    )


def _earned(key: str, event_id: str) -> bytes:
    at = datetime.now(UTC) - timedelta(minutes=5)
    return orjson.dumps(envelope(event_id, "points.earned", {"id": key}, {"points": 250}, at))


async def _dead_letter(producer, names, letter: DeadLetter) -> None:
    await producer.send_and_wait(
        names.dead_letter, key=letter.key, value=letter.value, headers=letter.headers()
    )


def _cli_redrive(names, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "stream", "redrive", "events", *args],
        env=command_env(names),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


async def _redriven_events(names) -> list:
    records = await read_topic(names.events, expected=1, timeout=10)
    return [r for r in records if REDRIVEN_FROM_HEADER in dict(r.headers or ())]


async def test_a_second_redrive_publishes_nothing_the_first_one_published(names, producer):
    await ensure_topics(names_settings(names, partitions=3))
    await _dead_letter(producer, names, _letter(names, "rd-1", _earned("rd-1", "rd-e1"), 0, 0))

    first = await asyncio.to_thread(_cli_redrive, names)
    second = await asyncio.to_thread(_cli_redrive, names)

    assert "published 1," in first
    assert "published 0," in second
    assert "skipped 1 published by an earlier run" in second
    assert len(await _redriven_events(names)) == 1


async def test_redrive_again_publishes_a_letter_once_more_when_asked(names, producer):
    settings = names_settings(names, partitions=3)
    await ensure_topics(settings)
    await _dead_letter(producer, names, _letter(names, "rd-2", _earned("rd-2", "rd-e2"), 0, 0))
    assert (await redrive(settings, "events", Filters(), dry_run=False, show=str)).published == 1
    again = await redrive(settings, "events", Filters(), dry_run=False, again=True, show=str)
    assert again.published == 1
    assert len(await _redriven_events(names)) == 2


async def test_a_letter_goes_back_to_the_partition_it_came_from_whatever_its_key_hashes_to(
    names, producer
):
    settings = names_settings(names, partitions=3)
    await ensure_topics(settings)
    key = "rd-3"
    # Another producer's partitioner put the customer elsewhere than murmur2 does.
    elsewhere = (default_partition(key.encode(), 3) + 1) % 3
    await _dead_letter(producer, names, _letter(names, key, _earned(key, "rd-e3"), elsewhere, 7))
    assert (await redrive(settings, "events", Filters(), dry_run=False, show=str)).published == 1
    (record,) = await _redriven_events(names)
    assert record.partition == elsewhere


async def test_a_letter_cut_to_fit_is_kept_and_points_to_its_whole_record(names, producer):
    settings = names_settings(names, partitions=3)
    await ensure_topics(settings)
    whole = _letter(names, "rd-4", _earned("rd-4", "rd-e4") + b" " * 5_000, 1, 42)
    await _dead_letter(producer, names, whole.fitted(3_000))
    shown: list[str] = []
    report = await redrive(settings, "events", Filters(), dry_run=False, show=shown.append)
    assert (report.published, report.cut) == (0, 1)
    assert f"{names.events}/1/42" in shown[0]


async def _erase(producer, settings, customer_id: str, partition: int, offset: int) -> None:
    """The erasures-topic record a worker writes when it folds the customer's erasure."""
    erased = erased_id(settings.erasure_hash_key, customer_id)
    await producer.send_and_wait(
        settings.topics.erasures,
        key=erased_key(settings.app_id, erased, partition),
        value=erased_value(offset, datetime.now(UTC)),
        partition=0,
    )


async def test_redrive_never_republishes_an_input_letter_older_than_its_customers_erasure(
    names, producer
):
    settings = names_settings(names, partitions=3)
    await ensure_topics(settings)
    await _erase(producer, settings, "rd-5", partition=1, offset=10)
    await _dead_letter(producer, names, _letter(names, "rd-5", _earned("rd-5", "rd-e5"), 1, 3))
    await _dead_letter(producer, names, _letter(names, "rd-6", _earned("rd-6", "rd-e6"), 1, 4))

    out = await asyncio.to_thread(_cli_redrive, names, "--again")

    assert "published 1," in out
    assert "and 1 of erased customers (never published)" in out
    assert "rd-5" not in out, "customer ids are personal data"
    assert [r.key for r in await _redriven_events(names)] == [b"rd-6"]


async def test_redrive_publishes_an_input_letter_newer_than_its_customers_erasure(names, producer):
    settings = names_settings(names, partitions=3)
    await ensure_topics(settings)
    await _erase(producer, settings, "rd-8", partition=1, offset=10)
    await _dead_letter(producer, names, _letter(names, "rd-8", _earned("rd-8", "rd-e8"), 1, 11))

    report = await redrive(settings, "events", Filters(), dry_run=False, show=str)

    assert (report.published, report.erased) == (1, 0)


async def test_redrive_never_republishes_an_ometria_record_of_an_erased_customer(names, producer):
    settings = names_settings(names, partitions=3)
    await ensure_topics(settings)
    await _erase(producer, settings, "rd-7", partition=2, offset=0)
    contact = {
        "@type": "contact",
        "@collection": "loyalty",
        "id": "contact-rd-7",
        "customer_id": "rd-7",
        "email": "rd-7@example.com",
    }
    letter = DeadLetter.of_ometria_record(
        contact, error_class="OmetriaRejected", reason="refused", failed_at=datetime.now(UTC)
    )
    await producer.send_and_wait(
        names.outbox_dead_letter, key=letter.key, value=letter.value, headers=letter.headers()
    )

    shown: list[str] = []
    report = await redrive(
        settings, "outbox", Filters(), dry_run=False, again=True, show=shown.append
    )

    assert (report.published, report.erased) == (0, 1)
    assert "erased" in shown[0]
    assert await read_topic(names.outbox, expected=1, timeout=3) == []
