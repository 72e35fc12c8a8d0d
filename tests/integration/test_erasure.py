"""A right-to-erasure request through the real broker and the stand-in (issue 26).

A customer with a profile, a contact at Ometria, a time-based trigger still to come and a dead
letter is erased; then the whole history is folded again (`replay --from earliest
--reset-state`) with the scan's clock past the trigger's due date, and a backfill follows.
Nothing of the erased customer comes back; every other customer is restored.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import orjson

from stream.domain.erasure import ERASURE_RECORD, erased_id
from stream.domain.records import decode
from tests.support.kafka import committed_to_the_end, names_settings, read_topic
from tests.support.processes import run_cli
from tests.support.scenarios import event, produce
from tests.support.waiting import (
    events_counted,
    folded_to_the_end,
    outbox_delivered,
    poll,
    replay_when_stopped,
    sandbox_get,
)

TOKEN = "it-profile-token"
KEPT = ["er1", "er2", "er3", "er4"]
ERASED = "er0"
DAY_10 = 10 * 86400 + 3600  # past the 30-day warning of points expiring in 40 days


async def profile_status(worker, customer_id: str) -> int:
    port = worker.env["STREAM_WEB_PORT"]
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.get(
            f"http://127.0.0.1:{port}/profiles/{customer_id}",
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
    return response.status_code


async def whole_topic(topic: str) -> list:
    """Every record of a topic as of now."""
    positions = await committed_to_the_end("nobody-" + topic, topic)
    total = sum(end for _, end in positions.values())
    return await read_topic(topic, total) if total else []


def received(body: dict) -> dict[str, int]:
    return {c["id"]: c["received"] for c in body["contacts"]}


async def test_an_erased_customer_is_gone_everywhere_and_a_rebuild_from_earliest_never_brings_them_back(  # noqa: E501
    names, sandbox, worker, producer
):
    worker.env.update(
        {
            "STREAM_PROFILE_API_TOKEN": TOKEN,
            "STREAM_SCHEDULE__INTERVAL": "1s",
            "STREAM_SCHEDULE__CLOCK_OFFSET": "0s",
        }
    )
    expires = (datetime.now(UTC) + timedelta(days=40)).isoformat()
    history = []
    for cid in [ERASED, *KEPT]:
        history += [
            event(cid, "customer.enrolled", 0, {}),
            event(cid, "points.earned", 1, {"points": 100}),
            event(cid, "points.expiring", 2, {"points": 50, "expires_at": expires}),
        ]
    worker.start()
    await worker.wait_ready()
    await produce(producer, names.events, history)
    await producer.send(names.events, key=ERASED.encode(), value=b"{not json")  # a dead letter
    await producer.flush()
    body = await poll(
        lambda: sandbox_get(sandbox, "/_sandbox/contacts"),
        lambda got: set(received(got)) >= {ERASED, *KEPT},
    )
    assert received(body)[ERASED] == 1
    assert len(await read_topic(names.dead_letter, 1)) == 1
    assert await profile_status(worker, ERASED) == 200

    # The erasure, then an event of theirs that is not an enrolment: it starts nothing.
    await produce(
        producer,
        names.events,
        [
            event(ERASED, "customer.erased", 3, {}),
            event(ERASED, "points.earned", 4, {"points": 5}),
        ],
    )
    await folded_to_the_end(names)
    assert await profile_status(worker, ERASED) == 404
    changelog = f"{names.app_id}-customer_to_profile-changelog"
    key = orjson.dumps(ERASED)  # the changelog's keys are JSON strings
    stored = [r for r in await whole_topic(changelog) if r.key == key]
    assert stored[0].value is not None, "the profile was stored first"
    assert stored[-1].value is None, "the changelog's latest value is a tombstone"
    assert await events_counted(worker, "erased") == 1  # the points after the erasure

    # The outbox holds nothing of theirs after the erasure record, and the pusher sent nothing.
    await outbox_delivered(names)
    records = [r for m in await whole_topic(names.outbox) for r in decode(m.value)]
    theirs = [
        r
        for r in records
        if ERASED in (r.get("customer_id"), r.get("id"), r.get("identity_account_id"))
    ]
    assert theirs[-1]["@type"] == ERASURE_RECORD, theirs[-1]
    assert theirs[-1]["customer_id"] == ERASED

    # The erasure is kept under the keyed hash of the id, never the id itself.
    settings = names_settings(names)
    erased = erased_id(settings.erasure_hash_key, ERASED)
    kept = {r.key: r.value for r in await whole_topic(names.erasures)}
    marks = [k for k in kept if k.startswith(f"{names.app_id}/erased/{erased}/".encode())]
    assert len(marks) == 1
    assert not any(ERASED.encode() in key for key in kept)
    assert orjson.loads(kept[marks[0]])["offset"] >= 0
    # The operator is told to erase the contact in Ometria too; their dead letter stays put.
    code, out = await run_cli(worker.env, "status")
    assert "status: 1 erasures not yet confirmed in Ometria" in out, out
    code, out = await run_cli(worker.env, "redrive", "events", "--again")
    assert code == 0, out
    assert "and 1 of erased customers (never published)" in out, out

    # The whole history again, the table rebuilt, the trigger's due date passed; a backfill.
    await worker.stop_async()
    out = await replay_when_stopped(worker.env, "--from", "earliest", "--reset-state")
    assert "table state discarded" in out
    worker.env["STREAM_SCHEDULE__CLOCK_OFFSET"] = f"{DAY_10}s"
    worker.start()
    await worker.wait_ready()
    await folded_to_the_end(names)
    # Their three events and the dead letter before the erasure, the erasure itself and the
    # points after it: none folded, nor dead-lettered again.
    assert await events_counted(worker, "erased") == 6
    assert await events_counted(worker, "invalid") == 0
    code, out = await run_cli(worker.env, "backfill", "--force")
    assert code == 0, out
    due = {f"{cid}:loyalty_points_expiring:30d:" for cid in KEPT}

    async def scheduled() -> set[str]:
        body = await sandbox_get(sandbox, "/_sandbox/events?event_type=loyalty_points_expiring")
        return {e["id"] for e in body["events"] if ":30d:" in e["id"]}

    def rules(ids: set[str]) -> set[str]:
        return {i[: i.index(":30d:") + 5] for i in ids}

    fired = await poll(scheduled, lambda got: rules(got) >= due)
    assert rules(fired) == due, "the kept customers' warnings, theirs not"
    body = await poll(
        lambda: sandbox_get(sandbox, "/_sandbox/contacts"),
        lambda got: all(received(got).get(cid, 0) >= 2 for cid in KEPT),
    )
    await outbox_delivered(names)
    body = await sandbox_get(sandbox, "/_sandbox/contacts")
    assert all(received(body)[cid] >= 2 for cid in KEPT), "every other contact restored"
    assert received(body)[ERASED] == 1, "nothing sent for the erased customer"
    assert await profile_status(worker, ERASED) == 404
    assert len(await whole_topic(names.dead_letter)) == 1, "their dead letter not written again"
    rebuilt = [r for r in await whole_topic(changelog) if r.key == key]
    assert all(r.value is None for r in rebuilt), "no profile of theirs in the rebuilt table"
