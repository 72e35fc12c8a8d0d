"""Operator commands against the real broker and the stand-in: pause, resume, status."""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime, timedelta

from tests.integration.conftest import (
    REPO,
    poll,
    read_topic,
    sandbox_get,
    web_get,
)
from tests.integration.test_delivery_faults import all_delivered, produce
from tests.integration.test_pusher import metric

# How long nothing may reach the stand-in while paused, once the held records are folded.
QUIET_FOR = 6.0


async def run_cli(env: dict[str, str], *args: str) -> tuple[int, str]:
    """`python -m stream <args>` as the operator runs it; (exit code, stdout + stderr)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "stream",
        *args,
        env=env,
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode()


def event(cid: str, kind: str, n: int, data: dict[str, object]) -> dict[str, object]:
    customer: dict[str, object] = {"id": cid}
    if kind == "customer.enrolled":
        customer["email"] = f"{cid}@example.com"
    return {
        "event_id": f"{cid}-{kind}-{n}",
        "type": kind,
        "occurred_at": (datetime.now(UTC) + timedelta(seconds=n)).isoformat(),
        "customer": customer,
        "data": data,
    }


async def outbox_keys(topic: str, at_least: int) -> list[bytes]:
    return [record.key for record in await read_topic(topic, expected=at_least, timeout=60)]


async def test_pause_holds_every_record_until_resume_then_delivers_them_coalesced(
    names, sandbox, worker, producer
):
    worker.start()
    await worker.wait_ready()
    pid = worker.process.pid
    live = [f"live{n}" for n in range(5)]
    await produce(producer, names.events, [event(c, "customer.enrolled", 0, {}) for c in live])
    await poll(
        lambda: sandbox_get(sandbox, "/_sandbox/contacts"), all_delivered({c: 0 for c in live})
    )
    before = await sandbox_get(sandbox, "/_sandbox/stats")

    code, out = await run_cli(worker.env, "pause")
    assert code == 0, out
    assert "paused at" in out
    paused = await poll(lambda: metric(worker, "ometria_paused"), lambda v: v == 1, timeout=15)
    assert paused == 1

    # Three fold batches per customer, each waiting until the previous one reached the outbox:
    # three outbox records per customer, to be sent as one contact.
    held = [f"held{n}" for n in range(10)]
    steps = [("customer.enrolled", {}), ("points.earned", {"points": 10})]
    steps.append(("points.earned", {"points": 5}))
    outbox_records = 0
    for n, (kind, data) in enumerate(steps, 1):
        await produce(producer, names.events, [event(c, kind, n, data) for c in held])
        outbox_records += len(held)
        keys = await outbox_keys(names.outbox, len(live) + outbox_records)
        assert len(keys) == len(live) + outbox_records
    await produce(
        producer, names.events, [event(c, "points.earned", 9, {"points": 1}) for c in live]
    )
    await outbox_keys(names.outbox, len(live) * 2 + outbox_records)

    # Every held record is on the outbox (folded): nothing may arrive while paused.
    stats = await poll(
        lambda: sandbox_get(sandbox, "/_sandbox/stats"),
        lambda s: s["records_accepted"] != before["records_accepted"],
        timeout=QUIET_FOR,
    )
    assert stats["records_accepted"] == before["records_accepted"]
    assert (await web_get(worker, "/readyz")).status_code == 200

    code, out = await run_cli(worker.env, "status")
    assert code == 0, out
    assert "status: paused since" in out
    backlog = int(out.split("outbox backlog ")[1].split()[0])
    assert backlog == len(held) * len(steps) + len(live)

    code, out = await run_cli(worker.env, "resume")
    assert code == 0, out
    assert "resumed" in out
    expected = {c: 15 for c in held} | {c: 1 for c in live}
    body = await poll(lambda: sandbox_get(sandbox, "/_sandbox/contacts"), all_delivered(expected))
    received = {c["id"]: c["received"] for c in body["contacts"]}
    # Coalesced: each held customer's three records arrive as one contact.
    assert {c: received[c] for c in held} == {c: 1 for c in held}
    assert {c: received[c] for c in live} == {c: 2 for c in live}
    assert await metric(worker, "ometria_paused") == 0
    assert worker.process.pid == pid, "no restart"
    assert worker.process.poll() is None
