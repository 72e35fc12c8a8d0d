"""Operator commands against the real broker and the stand-in: pause, resume, status."""

from __future__ import annotations

import re

import httpx
import pytest

from stream.runtime import control
from stream.runtime.outbox import OCCURRED_AT_HEADER
from stream.runtime.replay_mark import REPLAY
from stream.runtime.topology import ensure_topics
from tests.support.kafka import names_settings, read_topic
from tests.support.processes import metric, run_cli, second_worker, start_ready, web_get
from tests.support.scenarios import event, produce, story, without_counts
from tests.support.waiting import all_delivered, outbox_delivered, poll, sandbox_get

# How long nothing may reach the stand-in while paused, once the held records are folded.
QUIET_FOR = 6.0


async def outbox_contents(topic: str, at_least: int) -> tuple[int, int]:
    """(customer groups, messages) on the outbox once it holds at least `at_least` groups.

    A fold batch queues one group of records per customer it changed, several customers to a
    message (stream.runtime.outbox), each with its own occurred-at header.
    """

    async def read() -> tuple[int, int]:
        records = await read_topic(topic, expected=10**9, timeout=1)
        groups = sum(
            1 for r in records for name, _ in r.headers or () if name == OCCURRED_AT_HEADER
        )
        return groups, len(records)

    return await poll(read, lambda got: got[0] >= at_least, timeout=60)


@pytest.mark.parametrize("pusher_runs", ["in the worker", "apart"])
async def test_pause_holds_every_record_until_resume_then_delivers_them_coalesced(
    names, sandbox, worker, producer, tmp_path, pusher_runs
):
    processes = [worker]
    if pusher_runs == "apart":
        worker.env["STREAM_OMETRIA__PUSH_IN_WORKER"] = "false"
        processes.append(second_worker(worker.env, tmp_path, name="p", command="push"))
    try:
        await pause_scenario(names, sandbox, producer, *processes)
    finally:
        for process in processes[1:]:
            await process.stop_async()


async def pause_scenario(names, sandbox, producer, worker, *others) -> None:
    await start_ready(worker, *others)
    pusher = others[0] if others else worker
    pids = [process.process.pid for process in (worker, *others)]
    live = [f"live{n}" for n in range(5)]
    await produce(producer, names.events, [event(c, "customer.enrolled", 0, {}) for c in live])
    await poll(
        lambda: sandbox_get(sandbox, "/_sandbox/contacts"), all_delivered({c: 0 for c in live})
    )
    before = await sandbox_get(sandbox, "/_sandbox/stats")

    code, out = await run_cli(worker.env, "pause")
    assert code == 0, out
    assert "paused at" in out
    paused = await poll(lambda: metric(pusher, "ometria_paused"), lambda v: v == 1, timeout=15)
    assert paused == 1
    _, delivered_messages = await outbox_contents(names.outbox, len(live))

    # Three fold batches per customer, each waiting until the previous one reached the outbox:
    # three outbox records per customer, to be sent as one contact.
    held = [f"held{n}" for n in range(10)]
    steps = [("customer.enrolled", {}), ("points.earned", {"points": 10})]
    steps.append(("points.earned", {"points": 5}))
    outbox_records = 0
    for n, (kind, data) in enumerate(steps, 1):
        await produce(producer, names.events, [event(c, kind, n, data) for c in held])
        outbox_records += len(held)
        groups, _ = await outbox_contents(names.outbox, len(live) + outbox_records)
        assert groups == len(live) + outbox_records
    await produce(
        producer, names.events, [event(c, "points.earned", 9, {"points": 1}) for c in live]
    )
    _, messages = await outbox_contents(names.outbox, len(live) * 2 + outbox_records)

    # Every held record is on the outbox (folded): nothing may arrive while paused.
    stats = await poll(
        lambda: sandbox_get(sandbox, "/_sandbox/stats"),
        lambda s: s["records_accepted"] != before["records_accepted"],
        timeout=QUIET_FOR,
    )
    assert stats["records_accepted"] == before["records_accepted"]
    assert (await web_get(pusher, "/readyz")).status_code == 200

    code, out = await run_cli(worker.env, "status")
    assert code == 0, out
    assert "status: paused since" in out
    # The backlog counts outbox messages: every one written since the pause.
    backlog = int(out.split("outbox backlog ")[1].split()[0])
    assert backlog == messages - delivered_messages
    assert backlog > 0

    code, out = await run_cli(worker.env, "resume")
    assert code == 0, out
    assert "resumed" in out
    expected = {c: 15 for c in held} | {c: 1 for c in live}
    body = await poll(lambda: sandbox_get(sandbox, "/_sandbox/contacts"), all_delivered(expected))
    received = {c["id"]: c["received"] for c in body["contacts"]}
    # Coalesced: each held customer's three records arrive as one contact.
    assert {c: received[c] for c in held} == {c: 1 for c in held}
    assert {c: received[c] for c in live} == {c: 2 for c in live}
    assert await metric(pusher, "ometria_paused") == 0
    processes = (worker, *others)
    assert [process.process.pid for process in processes] == pids, "no restart"
    assert all(process.process.poll() is None for process in processes)


async def test_backfill_restores_every_contact_exactly_after_a_wipe_once_per_cooldown(
    names, sandbox, worker, producer
):
    events, balances, _ = story(30, "bf")
    worker.start()
    await worker.wait_ready()
    # Enrolments first, folded and stored, then the points: every customer has an older profile
    # in the changelog before the latest, and the backfill must send the latest.
    enrolments = [e for e in events if e["type"] == "customer.enrolled"]
    await produce(producer, names.events, enrolments)
    changelog = f"{names.app_id}-customer_to_profile-changelog"
    await read_topic(changelog, expected=len(enrolments))
    await produce(producer, names.events, [e for e in events if e not in enrolments])
    await poll(lambda: sandbox_get(sandbox, "/_sandbox/contacts"), all_delivered(balances))
    await outbox_delivered(names)
    # Every profile is in the changelog (written right after its outbox records).
    await read_topic(changelog, expected=2 * len(balances))
    before = without_counts((await sandbox_get(sandbox, "/_sandbox/contacts"))["contacts"])
    async with httpx.AsyncClient(base_url=sandbox, timeout=10) as http:
        (await http.post("/_sandbox/reset")).raise_for_status()
    assert (await sandbox_get(sandbox, "/_sandbox/stats"))["contacts"] == 0

    code, out = await run_cli(worker.env, "backfill")
    assert code == 0, out
    # Progress (one plain line at the end: the output is not a terminal), then the summary.
    assert re.search(r"backfill \S+-changelog: \d+/\d+ records \(100%\)", out), out
    assert f"{len(balances)} profiles, queued on {names.outbox} {len(balances)} contacts" in out
    body = await poll(
        lambda: sandbox_get(sandbox, "/_sandbox/contacts"),
        lambda got: len(got["contacts"]) == len(before),
    )
    assert without_counts(body["contacts"]) == before
    await outbox_delivered(names)
    assert (await sandbox_get(sandbox, "/_sandbox/stats"))["events"] == 0, "no campaign re-fired"

    code, out = await run_cli(worker.env, "backfill")
    assert code == 1, out
    assert "refused" in out
    assert "--force" in out
    code, out = await run_cli(worker.env, "backfill", "--force", "--dry-run")
    assert code == 0, out
    assert f"would queue {len(balances)} contacts" in out
    code, out = await run_cli(worker.env, "backfill", "--customer", "bf3", "--customer", "nobody")
    assert code == 1, out
    assert "1 profiles, queued" in out
    assert "no stored profile for nobody" in out


# Each one malformed the way a hand-written or half-migrated record would be.
NAIVE_SINCE = b'{"paused": false, "since": "2026-11-30T15:00:00"}'
NAIVE_BACKFILL = b'{"at": "2026-11-30T15:00:00", "contacts": 3}'
TRUNCATED_REPLAY = b'{"at": "2026-11-30T15:00:00+00:00", "start": {"0": 0}}'


async def write_malformed_control_records(names) -> None:
    settings = names_settings(names, partitions=3)  # as worker_env has it
    await ensure_topics(settings)
    await control.write(settings, control.PAUSE, NAIVE_SINCE)
    await control.write(settings, control.BACKFILL, NAIVE_BACKFILL)
    await control.write(settings, REPLAY, TRUNCATED_REPLAY)


async def test_malformed_control_records_leave_status_and_pause_working_and_hold_the_cooldown(
    names, worker_env
):
    await write_malformed_control_records(names)

    code, out = await run_cli(worker_env, "status")
    assert code == 0, out
    assert "status: pushing (not paused)" in out, "the switch itself was readable"
    assert re.search(r"status: last backfill unknown: .*backfill record .*unreadable", out), out
    assert re.search(r"status: last replay unknown: .*replay record .*unreadable", out), out

    code, out = await run_cli(worker_env, "backfill")
    assert code == 1, out
    assert "backfill: refused" in out
    assert "unreadable" in out
    assert "--force" in out
    code, out = await run_cli(worker_env, "backfill", "--force")
    assert code == 0, out
    code, out = await run_cli(worker_env, "status")
    assert "status: last backfill 20" in out, "--force wrote a readable record"

    code, out = await run_cli(worker_env, "pause")
    assert code == 0, out
    assert "paused at" in out
    code, out = await run_cli(worker_env, "resume")
    assert code == 0, out
    assert "resumed (paused since 20" in out


async def test_a_worker_starts_and_delivers_despite_an_unreadable_replay_record(
    names, sandbox, worker, producer
):
    await write_malformed_control_records(names)
    worker.start()
    await worker.wait_ready()
    assert re.search(r"worker: the replay record .*unreadable .*starting without it", worker.text())
    await produce(producer, names.events, [event("rr1", "customer.enrolled", 0, {})])
    body = await poll(lambda: sandbox_get(sandbox, "/_sandbox/contacts"), all_delivered({"rr1": 0}))
    assert all_delivered({"rr1": 0})(body)
