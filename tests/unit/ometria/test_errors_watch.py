"""Ometria's errors list is polled again and again: each entry is reported once."""

from __future__ import annotations

import logging

from stream import metrics
from stream.ometria.errors import Retryable
from stream.ometria.errors_watch import ErrorsWatch


def entry(n: int) -> dict:
    return {"error_message": f"bad field {n}", "error_path": f"/contacts/{n}", "id": n}


def reported() -> float:
    return metrics.REGISTRY.get_sample_value("ometria_errors_reported_total") or 0.0


def test_only_entries_not_seen_before_are_new_whatever_their_key_order():
    watch = ErrorsWatch()
    assert watch.new([entry(1), entry(2)]) == [entry(1), entry(2)]
    reordered = dict(reversed(list(entry(2).items())))
    assert watch.new([reordered, entry(3)]) == [entry(3)]


def test_the_memory_is_bounded_and_forgets_the_oldest_entries():
    watch = ErrorsWatch(remember=2)
    watch.new([entry(1), entry(2), entry(3)])
    assert watch.new([entry(1), entry(3)]) == [entry(1)]


async def test_poll_reports_each_new_entry_once_with_log_and_metric(caplog):
    answers = [[entry(1)], [entry(2), entry(1)]]

    async def read() -> list[dict]:
        return answers.pop(0)

    watch = ErrorsWatch()
    before = reported()
    with caplog.at_level(logging.WARNING, logger="stream.ometria.errors_watch"):
        await watch.poll(read)
        await watch.poll(read)

    assert reported() - before == 2
    assert [r.getMessage() for r in caplog.records] == [
        "Ometria reports a record error: bad field 1 at /contacts/1",
        "Ometria reports a record error: bad field 2 at /contacts/2",
    ]


async def test_poll_failed_read_is_logged_and_reports_nothing(caplog):
    async def unavailable() -> list[dict]:
        raise Retryable("Ometria answered 503 to the errors list", status_code=503)

    before = reported()
    with caplog.at_level(logging.WARNING, logger="stream.ometria.errors_watch"):
        await ErrorsWatch().poll(unavailable)

    assert reported() == before
    assert "could not read Ometria's errors list: Ometria answered 503" in caplog.text
