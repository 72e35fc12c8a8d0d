"""Delivery under Ometria's failures, against the real broker and the stand-in over HTTP."""

from __future__ import annotations

import signal
from datetime import datetime, timedelta

import orjson
from aiokafka.admin import AIOKafkaAdminClient

from stream.domain.dlq import read_headers
from stream.ops.redrive import Filters, redrive
from tests.support.kafka import BOOTSTRAP, names_settings, read_topic
from tests.support.scenarios import API_KEY, clear_faults, produce, set_faults, story
from tests.support.waiting import all_delivered, poll, sandbox_get


async def outbox_committed(names) -> int:
    """The sum of the pusher group's committed outbox offsets."""
    admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(names.pusher_group)
    finally:
        await admin.close()
    return sum(at.offset for tp, at in offsets.items() if tp.topic == names.outbox)


async def assert_everything_delivered_once_per_id(sandbox, balances, custom_ids):
    contacts = await poll(
        lambda: sandbox_get(sandbox, "/_sandbox/contacts"), all_delivered(balances)
    )
    got = {c["id"]: c["properties"].get("rivoPointsBalance") for c in contacts["contacts"]}
    assert got == balances
    events = await poll(
        lambda: sandbox_get(sandbox, "/_sandbox/events"),
        lambda body: {e["id"] for e in body["events"]} >= custom_ids,
    )
    # At least once, under a stable id: a retry re-sends the same id, never a new one.
    assert {e["id"] for e in events["events"]} == custom_ids


async def test_thirty_second_outage_delays_but_loses_nothing(names, sandbox, worker, producer):
    events, balances, custom_ids = story(60, "out")
    worker.start()
    await worker.wait_ready()
    await produce(producer, names.events, events[: len(events) // 2])
    await set_faults(sandbox, fail_for_seconds=30, fail_status=503)
    await produce(producer, names.events, events[len(events) // 2 :])

    await assert_everything_delivered_once_per_id(sandbox, balances, custom_ids)
    stats = await sandbox_get(sandbox, "/_sandbox/stats")
    assert stats["by_status"].get("503", 0) > 0, "the outage was real"
    assert stats["records_rejected"] == 0


def busiest_second(times: list[datetime]) -> int:
    return max(
        sum(1 for t in times if start <= t < start + timedelta(seconds=1)) for start in times
    )


async def test_429_storm_backs_off_to_the_allowed_rate_and_loses_nothing(
    names, sandbox, worker_env, worker, producer
):
    worker.env["STREAM_OMETRIA__MAX_REQUESTS_PER_SECOND"] = "8"
    await set_faults(sandbox, rate_limit=2)
    events, balances, custom_ids = story(300, "storm")
    worker.start()
    await worker.wait_ready()
    for start in range(0, len(events), 45):  # a steady stream, many small batches
        await produce(producer, names.events, events[start : start + 45])

    await assert_everything_delivered_once_per_id(sandbox, balances, custom_ids)
    # Then a trickle, one small wave at a time: requests to judge the backed-off rate by, however
    # late in the storm the last 429 fell (the storm's own traffic may end with it).
    for wave in range(6):
        calm, calm_balances, calm_ids = story(3, f"calm{wave}-")
        await produce(producer, names.events, calm)
        await assert_everything_delivered_once_per_id(
            sandbox, {**balances, **calm_balances}, custom_ids | calm_ids
        )
        balances, custom_ids = {**balances, **calm_balances}, custom_ids | calm_ids
    log = (await sandbox_get(sandbox, "/_sandbox/requests"))["requests"]
    throttled = [r for r in log if r["status"] == 429]
    assert throttled, "the worker met the storm"
    last_429 = max(datetime.fromisoformat(r["received_at"]) for r in throttled)
    after = [datetime.fromisoformat(r["received_at"]) for r in log]
    after = [t for t in after if t > last_429]
    assert len(after) >= 5, "enough traffic after backing off to judge the rate"
    assert busiest_second(after) <= 2
    assert len(throttled) <= 6, f"backed off rather than hammering: {len(throttled)} times 429"


async def test_refused_record_is_dead_lettered_and_the_rest_of_its_batch_goes_on(
    names, sandbox, worker, producer
):
    events, balances, custom_ids = story(30, "perm")
    bad = "perm7"
    await set_faults(sandbox, refuse_ids=[bad])
    worker.start()
    await worker.wait_ready()
    await produce(producer, names.events, events)

    good = {cid: b for cid, b in balances.items() if cid != bad}
    await poll(lambda: sandbox_get(sandbox, "/_sandbox/contacts"), all_delivered(good))
    letters = await read_topic(names.outbox_dead_letter, expected=1)
    assert letters
    for letter in letters:
        record = orjson.loads(letter.value)
        headers = read_headers(letter.headers)
        assert (record["@type"], record["id"]) == ("contact", bad)
        assert headers["error_class"] == "Permanent"
        assert headers["status"] == "400"
        assert "refused" in headers["body"]
        assert API_KEY.encode() not in letter.value + b"".join(v for _, v in letter.headers)
    contacts = (await sandbox_get(sandbox, "/_sandbox/contacts"))["contacts"]
    assert bad not in {c["id"] for c in contacts}
    assert {
        e["id"] for e in (await sandbox_get(sandbox, "/_sandbox/events"))["events"]
    } >= custom_ids

    # The fix: Ometria takes the record again; a redrive delivers what was dead-lettered.
    await clear_faults(sandbox)
    settings = names_settings(names)
    dry = await redrive(
        settings, "outbox", Filters(error_class="Permanent"), dry_run=True, show=str
    )
    assert (dry.scanned, dry.matched, dry.published) == (len(letters), len(letters), 0)
    report = await redrive(
        settings, "outbox", Filters(error_class="Permanent"), dry_run=False, show=str
    )
    assert report.published == len(letters)
    await poll(lambda: sandbox_get(sandbox, "/_sandbox/contacts"), all_delivered(balances))


async def test_sigkill_mid_delivery_then_restart_delivers_every_record_with_stable_ids(
    names, sandbox, worker, producer
):
    events, balances, custom_ids = story(40, "kill")
    await set_faults(sandbox, latency_ms=1500)  # every push is still in flight for a while
    worker.start()
    await worker.wait_ready()
    await produce(producer, names.events, events)
    await poll(lambda: sandbox_get(sandbox, "/_sandbox/stats"), lambda s: s["requests"] >= 1)
    # Kill it once it has committed some outbox progress, while later pushes are in flight.
    await poll(lambda: outbox_committed(names), lambda total: total > 0, timeout=30)
    worker.stop(signal.SIGKILL)
    await clear_faults(sandbox)
    # The killed member stays in the group until its session times out; the new worker waits.
    worker.start()
    await worker.wait_ready(timeout=120)

    await assert_everything_delivered_once_per_id(sandbox, balances, custom_ids)


async def test_sigterm_during_load_stops_cleanly_and_loses_nothing(
    names, sandbox, worker, producer
):
    events, balances, custom_ids = story(80, "term")
    await set_faults(sandbox, latency_ms=300)
    worker.start()
    await worker.wait_ready()
    await produce(producer, names.events, events)
    await poll(lambda: sandbox_get(sandbox, "/_sandbox/stats"), lambda s: s["requests"] >= 2)
    # Faust finishes the batch in flight (the stand-in still answers), commits, leaves the group.
    assert await worker.stop_async(signal.SIGTERM) == 0, "a graceful stop exits 0"
    assert "Traceback" not in worker.text()
    await clear_faults(sandbox)
    worker.start()
    await worker.wait_ready(timeout=120)

    await assert_everything_delivered_once_per_id(sandbox, balances, custom_ids)
