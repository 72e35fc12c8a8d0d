"""The pusher as its own consumer group: versions, the shared rate, rebalances, running alone."""

from __future__ import annotations

import logging
import re
import signal
from collections import Counter
from datetime import UTC, datetime, timedelta

import httpx
import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from stream.domain.mapping import load_preset
from stream.ops.backfill import backfill
from stream.ops.redrive import Filters, redrive
from stream.runtime.pusher_versions import PusherStopped
from stream.runtime.topology import ensure_topics
from tests.support.kafka import BOOTSTRAP, names_settings, read_topic
from tests.support.processes import (
    keep_running,
    metric,
    pusher_outcome,
    running_pusher,
    second_worker,
    start_ready,
    web_get,
)
from tests.support.records import contact
from tests.support.scenarios import API_KEY, clear_faults, produce, set_faults, story
from tests.support.waiting import all_delivered, outbox_delivered, poll, sandbox_get


def earn(cid: str, points: int, n: int, email: str | None = None) -> dict[str, object]:
    customer: dict[str, object] = {"id": cid}
    if email:
        customer["email"] = email
    return {
        "event_id": f"{cid}-more-{n}",
        "type": "points.earned",
        "occurred_at": (datetime.now(UTC) + timedelta(seconds=10 + n)).isoformat(),
        "customer": customer,
        "data": {"points": points},
    }


async def test_a_redriven_old_contact_never_replaces_the_newer_one_delivered(
    names, sandbox, worker, producer
):
    cid = "ver-1"
    await set_faults(sandbox, refuse_ids=[cid])  # v1 of the contact is dead-lettered
    worker.start()
    await worker.wait_ready()
    await produce(producer, names.events, [earn(cid, 10, 0, email=f"{cid}@example.com")])
    assert len(await read_topic(names.outbox_dead_letter, expected=1)) == 1
    await clear_faults(sandbox)
    await produce(producer, names.events, [earn(cid, 5, 1)])  # v2
    await poll(lambda: sandbox_get(sandbox, "/_sandbox/contacts"), all_delivered({cid: 15}))

    report = await redrive(names_settings(names), "outbox", Filters(), dry_run=False, show=str)
    assert report.published == 1
    await outbox_delivered(names)

    contacts = (await sandbox_get(sandbox, "/_sandbox/contacts"))["contacts"]
    assert [c["properties"]["rivoPointsBalance"] for c in contacts] == [15]
    assert await metric(worker, "ometria_stale_contacts_total") == 1


async def test_a_backfill_read_before_newer_traffic_never_puts_the_old_contacts_back(
    names, sandbox, worker, producer
):
    """Backfill reads every profile first and publishes afterwards: live traffic can deliver
    newer contacts in between. The publishing half is held back here until it has."""
    events, balances, _ = story(20, "bf")
    worker.start()
    await worker.wait_ready()
    await produce(producer, names.events, events)
    await poll(lambda: sandbox_get(sandbox, "/_sandbox/contacts"), all_delivered(balances))

    held = f"{names.outbox}.held"
    admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(held, 3, 1)])
    finally:
        await admin.close()
    report = await backfill(
        names_settings(names, outbox=held), load_preset("rivo").contact, dry_run=False
    )
    assert report.contacts == len(balances)

    await produce(producer, names.events, [earn(cid, 7, 0) for cid in balances])
    newer = {cid: balance + 7 for cid, balance in balances.items()}
    await poll(lambda: sandbox_get(sandbox, "/_sandbox/contacts"), all_delivered(newer))

    outbox = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, acks="all")
    await outbox.start()
    try:
        for record in await read_topic(held, expected=len(balances)):
            await outbox.send(names.outbox, key=record.key, value=record.value)
        await outbox.flush()
    finally:
        await outbox.stop()
    await outbox_delivered(names)

    contacts = (await sandbox_get(sandbox, "/_sandbox/contacts"))["contacts"]
    assert {c["id"]: c["properties"]["rivoPointsBalance"] for c in contacts} == newer
    assert await metric(worker, "ometria_stale_contacts_total") == len(balances)


async def test_two_workers_together_keep_to_the_accounts_rate(
    names, sandbox_process, worker, producer, tmp_path
):
    sandbox = sandbox_process
    worker.env["STREAM_OMETRIA__BASE_URL"] = sandbox
    worker.env["STREAM_OMETRIA__MAX_REQUESTS_PER_SECOND"] = "4"
    await set_faults(sandbox, rate_limit=4)
    other = second_worker(worker.env, tmp_path)
    await start_ready(worker, other)
    events, balances, custom_ids = story(1200, "rate")
    try:
        await produce(producer, names.events, events)
        # Only the cheap counters while it runs: the stand-in stamps arrivals on one event
        # loop, and listing 1,200 contacts would delay the stamps it is judged by.
        await poll(
            lambda: sandbox_get(sandbox, "/_sandbox/stats"),
            lambda s: (s["contacts"], s["events"]) == (len(balances), len(custom_ids)),
            timeout=180,
            interval=1,
        )
    finally:
        await other.stop_async()
    contacts = await sandbox_get(sandbox, "/_sandbox/contacts")
    assert all_delivered(balances)(contacts)
    log = (await sandbox_get(sandbox, "/_sandbox/requests"))["requests"]
    times = [datetime.fromisoformat(r["received_at"]) for r in log]
    assert len(times) >= 30, "enough requests to judge the rate"
    # Each second of the clock, as the issue asks: the pushers aim at slots 0.275 s apart, but on
    # a loaded 2-core machine a request can arrive over 100 ms after its slot, so a sliding
    # window (the stand-in's limiter) may now and then count five and answer one 429.
    per_second = Counter(t.replace(microsecond=0) for t in times)
    busiest, count = per_second.most_common(1)[0]
    assert count <= 4, f"{count} requests in the second from {busiest.time()}"
    assert len([r for r in log if r["status"] == 429]) <= 1
    for process in (worker, other):
        shares = re.findall(r"pushing outbox .* \((\d) of 3 partitions\)", process.text())
        assert {"1", "2"} & set(shares), f"each pusher sent for part of the outbox: {shares}"


async def test_sigkill_during_an_outage_and_the_rebalance_after_it_lose_nothing(
    names, sandbox, worker, producer, tmp_path
):
    other = second_worker(worker.env, tmp_path)
    await start_ready(worker, other)
    events, balances, _ = story(60, "down")
    await set_faults(sandbox, fail_status=503, fail_for_seconds=40)
    try:
        await produce(producer, names.events, events)
        await poll(
            lambda: sandbox_get(sandbox, "/_sandbox/stats"),
            lambda s: s["by_status"].get("503", 0) >= 4,
        )
        other.stop(signal.SIGKILL)  # mid-push: its rounds are retrying against the outage

        async def contacts():
            # A worker that stops itself (exit 70, fail closed) is restarted, as Kubernetes does.
            keep_running(worker)
            return await sandbox_get(sandbox, "/_sandbox/contacts")

        await poll(contacts, all_delivered(balances), timeout=180)
    finally:
        other.stop()
    contacts = (await sandbox_get(sandbox, "/_sandbox/contacts"))["contacts"]
    assert {c["id"]: c["properties"]["rivoPointsBalance"] for c in contacts} == balances
    await outbox_delivered(names)
    assert (await sandbox_get(sandbox, "/_sandbox/stats"))["records_rejected"] == 0


async def test_pusher_runs_alone_beside_workers_that_only_fold(
    names, sandbox, worker, producer, tmp_path
):
    worker.env["STREAM_OMETRIA__PUSH_IN_WORKER"] = "false"
    pusher = second_worker(worker.env, tmp_path, name="p", command="push")
    worker.start()
    await worker.wait_ready()
    events, balances, _ = story(30, "alone")
    await produce(producer, names.events, events)
    try:
        pusher.start()
        await pusher.wait_ready()
        await poll(lambda: sandbox_get(sandbox, "/_sandbox/contacts"), all_delivered(balances))
        ready = await web_get(pusher, "/readyz")
        assert ready.status_code == 200, ready.text
        assert orjson.loads(ready.content)["ready"] is True
        # What the probe sees, Prometheus sees too (the LoyaltyNotReady alert reads it).
        assert await metric(pusher, "loyalty_ready") == 1
    finally:
        code = await pusher.stop_async(signal.SIGTERM)
    assert code == 0, pusher.text()[-2000:]
    assert "PusherService" not in worker.text(), "the worker only folds"
    await outbox_delivered(names)


async def test_a_refused_key_pauses_delivery_and_dead_letters_nothing(
    names, sandbox, worker, producer
):
    worker.env["STREAM_OMETRIA__AUTH_RETRY_INTERVAL"] = "2s"
    events, balances, custom_ids = story(60, "key")
    worker.start()
    await worker.wait_ready()
    half = len(events) // 2
    await produce(producer, names.events, events[:half])
    await set_faults(sandbox, fail_status=401, fail_for_seconds=30)
    for start in range(half, len(events), 30):  # the stream goes on during the window
        await produce(producer, names.events, events[start : start + 30])

    paused = await poll(lambda: web_get(worker, "/readyz"), _paused_for("401"), timeout=25)
    assert paused.status_code == 503, "not ready while Ometria refuses the key"
    assert "401" in orjson.loads(paused.content)["delivery"]
    assert await metric(worker, "ometria_unauthorized") == 1
    assert await metric(worker, "loyalty_ready") == 0

    await _all_arrive_once_the_window_ends(
        names, sandbox, worker, balances, custom_ids, status="401", gauge="ometria_unauthorized"
    )
    assert await metric(worker, "loyalty_ready") == 1


async def test_a_wrong_endpoint_pauses_delivery_naming_the_setting_and_dead_letters_nothing(
    names, sandbox, worker, producer
):
    worker.env["STREAM_OMETRIA__AUTH_RETRY_INTERVAL"] = "2s"
    events, balances, custom_ids = story(30, "url")
    worker.start()
    await worker.wait_ready()
    # What a mistyped base URL or a proxy's error page answers to every request, for a while.
    await set_faults(sandbox, fail_status=404, fail_for_seconds=20)
    await produce(producer, names.events, events)

    paused = await poll(lambda: web_get(worker, "/readyz"), _paused_for("404"), timeout=25)
    assert paused.status_code == 503, "not ready while the endpoint answers 404"
    reason = orjson.loads(paused.content)["delivery"]
    assert "404" in reason
    assert "STREAM_OMETRIA__BASE_URL" in reason
    assert await metric(worker, "ometria_misdirected") == 1
    assert await metric(worker, "ometria_unauthorized") == 0

    await _all_arrive_once_the_window_ends(
        names, sandbox, worker, balances, custom_ids, status="404", gauge="ometria_misdirected"
    )


def _paused_for(status: str):
    """Whether /readyz answers not ready because of `status` answers (before the pusher
    joins, it is not ready for want of partitions)."""

    def check(answer) -> bool:
        return answer.status_code == 503 and status in orjson.loads(answer.content)["delivery"]

    return check


async def _all_arrive_once_the_window_ends(
    names, sandbox, worker, balances, custom_ids, *, status: str, gauge: str
) -> None:
    """Every contact and custom event is delivered after a window of `status` answers, the
    worker is ready again with `gauge` back at 0, and nothing was dead-lettered."""
    contacts = await poll(
        lambda: sandbox_get(sandbox, "/_sandbox/contacts"), all_delivered(balances), timeout=120
    )
    assert all_delivered(balances)(contacts)
    delivered = await poll(
        lambda: sandbox_get(sandbox, "/_sandbox/events"),
        lambda body: {e["id"] for e in body["events"]} >= custom_ids,
    )
    assert {e["id"] for e in delivered["events"]} == custom_ids
    assert (await web_get(worker, "/readyz")).status_code == 200
    assert await metric(worker, gauge) == 0
    stats = await sandbox_get(sandbox, "/_sandbox/stats")
    assert stats["by_status"].get(status, 0) > 0, "the window was real"
    assert await read_topic(names.outbox_dead_letter, expected=1, timeout=3) == []


async def test_a_version_that_is_not_a_number_stops_the_pusher_saying_where_it_is(
    names, sandbox, producer
):
    await ensure_topics(names_settings(names, partitions=3))
    for key, value in ((b"v-1", b"12"), (b"v-2", b"twelve")):
        await producer.send_and_wait(names.outbox_versions, key=key, value=value, partition=1)

    raised, why = await pusher_outcome(names, sandbox)

    assert isinstance(raised, PusherStopped), f"still running, not ready because: {why}"
    message = str(raised)
    assert f"{names.outbox_versions} partition 1 offset 1" in message
    assert "tombstone" in message, "says how to fix it"
    assert why is not None
    assert why.startswith("stopped")


async def test_a_tombstone_in_the_versions_topic_forgets_the_unreadable_version(
    names, sandbox, producer
):
    await ensure_topics(names_settings(names, partitions=3))
    for value in (b"12", b"twelve", None):
        await producer.send_and_wait(names.outbox_versions, key=b"v-2", value=value, partition=1)

    raised, why = await pusher_outcome(names, sandbox)

    assert raised is None
    assert why is None, "joined and ready"


async def test_the_pusher_owning_outbox_partition_0_reports_ometrias_errors_list(
    names, sandbox, caplog
):
    settings = names_settings(names, partitions=3)
    settings = settings.model_copy(
        update={
            "ometria": settings.ometria.model_copy(
                update={"errors_poll_interval": timedelta(seconds=0.2)}
            )
        }
    )
    await ensure_topics(settings)
    # A record Ometria takes but rejects after validation: an entry on its errors list.
    await set_faults(sandbox, reject_ids=["e-1"])
    async with httpx.AsyncClient(base_url=sandbox) as http:
        answer = await http.post(
            "/v2/push", json=[contact("e-1")], headers={"X-Ometria-Auth": API_KEY}
        )
    assert answer.json()["rejected"] == 1

    async def reports() -> list[str]:
        return [r.getMessage() for r in caplog.records if "record error" in r.getMessage()]

    with caplog.at_level(logging.WARNING, logger="stream.ometria.errors_watch"):
        async with running_pusher(settings, sandbox) as (pusher, _):
            assert await poll(reports, bool, timeout=30), "the errors list was reported"
            reads = 0
            read_errors = pusher.delivery.errors

            async def counted_read() -> list[dict]:
                nonlocal reads
                reads += 1
                return await read_errors()

            pusher.delivery.errors = counted_read  # type: ignore[method-assign]

            async def reads_so_far() -> int:
                return reads

            assert await poll(reads_so_far, lambda n: n >= 3, timeout=30) >= 3

    assert len(await reports()) == 1, "reported once however often the list is read"
