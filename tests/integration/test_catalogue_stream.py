"""Thousands of customers, every event type, shuffled, duplicated and redelivered after a SIGKILL:
the contacts Ometria ends up with are exactly those of the reference model."""

from __future__ import annotations

import signal

import orjson

from tests.support.catalogue import differing_contacts, generate
from tests.support.waiting import poll, sandbox_get


async def test_shuffled_duplicated_stream_with_a_crash_ends_in_the_reference_contacts(
    names, sandbox, worker, producer
):
    events, expected = generate(seed=2026)
    worker.start()
    await worker.wait_ready()
    half = len(events) // 2
    for event in events[:half]:
        await producer.send(
            names.events, key=event["customer"]["id"].encode(), value=orjson.dumps(event)
        )
    await producer.flush()
    # Kill the worker without warning while it works through the first half; its uncommitted
    # events are redelivered to the restarted worker.
    await poll(lambda: sandbox_get(sandbox, "/_sandbox/stats"), lambda s: s["contacts"] > 50)
    worker.stop(signal.SIGKILL)
    worker.start()
    await worker.wait_ready(timeout=120)
    for event in events[half:]:
        await producer.send(
            names.events, key=event["customer"]["id"].encode(), value=orjson.dumps(event)
        )
    await producer.flush()

    body = await poll(
        lambda: sandbox_get(sandbox, "/_sandbox/contacts"),
        lambda body: not differing_contacts(body, expected),
        timeout=240,
    )
    got = {c["id"]: c for c in body["contacts"]}
    wrong = differing_contacts(body, expected)
    assert wrong == [], f"{len(wrong)} contacts differ from the reference, e.g. {wrong[:3]}"
    assert set(got) == set(expected)

    stats = await sandbox_get(sandbox, "/_sandbox/stats")
    assert stats["max_records_in_a_request"] <= 100
    assert stats["mixed_type_requests"] == 0
    assert stats["records_rejected"] == 0
