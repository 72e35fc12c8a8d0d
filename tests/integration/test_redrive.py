"""Redrive publishes each dead letter once, back to the partition it came from."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import orjson

from stream.domain.dlq import DeadLetter
from stream.ops.redrive import REDRIVEN_FROM_HEADER, Filters, redrive
from stream.runtime.topology import default_partition, ensure_topics
from tests.integration.conftest import BOOTSTRAP, REPO, envelope, names_settings, read_topic


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
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAM_")}
    env.update(
        {
            "STREAM_KAFKA__BOOTSTRAP_SERVERS": BOOTSTRAP,
            "STREAM_APP_ID": names.app_id,
            "STREAM_TOPICS__EVENTS": names.events,
            "STREAM_TOPICS__DEAD_LETTER": names.dead_letter,
            "STREAM_TOPICS__OUTBOX": names.outbox,
            "STREAM_TOPICS__OUTBOX_DEAD_LETTER": names.outbox_dead_letter,
            "STREAM_TOPICS__OUTBOX_VERSIONS": names.outbox_versions,
            "STREAM_TOPICS__OUTBOX_PROGRESS": names.outbox_progress,
            "STREAM_TOPICS__CONTROL": names.control,
            "STREAM_TOPICS__REDRIVEN": names.redriven,
            "PYTHONPATH": str(REPO),
        }
    )
    done = subprocess.run(
        [sys.executable, "-m", "stream", "redrive", "events", *args],
        env=env,
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
