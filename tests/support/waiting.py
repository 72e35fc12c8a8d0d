"""Waiting until a condition holds: the stand-in has the contacts, the worker caught up."""

from __future__ import annotations

import asyncio
import time

import httpx

from tests.support.catalogue import differing_contacts
from tests.support.kafka import Names, committed_to_the_end
from tests.support.processes import Worker, keep_running, run_cli, web_get


async def poll(fetch, done, timeout: float = 90.0, interval: float = 0.25):
    """Call `fetch()` until `done(result)` or the deadline; return the last result."""
    deadline = time.monotonic() + timeout
    result = await fetch()
    while not done(result) and time.monotonic() < deadline:
        await asyncio.sleep(interval)
        result = await fetch()
    return result


async def sandbox_get(url: str, path: str):
    async with httpx.AsyncClient(base_url=url, timeout=10) as http:
        response = await http.get(path)
        response.raise_for_status()
        return response.json()


async def outbox_delivered(names: Names, timeout: float = 60) -> None:
    """Wait until the pusher group has committed every outbox partition to its end."""
    positions = await poll(
        lambda: committed_to_the_end(names.pusher_group, names.outbox),
        lambda got: all(c == end for c, end in got.values()),
        timeout=timeout,
    )
    assert all(c == end for c, end in positions.values()), positions


def all_delivered(balances):
    def check(body):
        got = {c["id"]: c["properties"].get("rivoPointsBalance") for c in body["contacts"]}
        return all(got.get(cid) == balance for cid, balance in balances.items())

    return check


async def events_counted(worker, outcome: str) -> float:
    """loyalty_events_total of one outcome, all event types together."""
    text = (await web_get(worker, "/metrics")).text
    return sum(
        float(line.split()[-1])
        for line in text.splitlines()
        if line.startswith("loyalty_events_total{") and f'outcome="{outcome}"' in line
    )


async def folded_to_the_end(names) -> None:
    positions = await poll(
        lambda: committed_to_the_end(names.app_id, names.events),
        lambda got: all(c == end for c, end in got.values()),
    )
    assert all(c == end for c, end in positions.values()), positions


async def replay_when_stopped(env, *args: str) -> str:
    """Run replay until the group has no members left (a stopped worker leaves it)."""
    result = await poll(
        lambda: run_cli(env, "replay", *args),
        lambda got: "running" not in got[1],
        timeout=60,
        interval=1,
    )
    code, out = result
    assert code == 0, out
    return out


async def settle(sandbox: str, names, expected, *workers: Worker, timeout: float = 240) -> None:
    """Wait (restarting stopped workers) for the reference contacts, and for the events and the
    outbox committed to their ends."""
    deadline = time.monotonic() + timeout
    body = await sandbox_get(sandbox, "/_sandbox/contacts")
    while differing_contacts(body, expected) and time.monotonic() < deadline:
        keep_running(*workers)
        await asyncio.sleep(0.5)  # polling the stand-in with a deadline
        body = await sandbox_get(sandbox, "/_sandbox/contacts")
    bad = differing_contacts(body, expected)
    assert bad == [], f"{len(bad)} contacts differ from the reference, e.g. {bad[:3]}"
    assert {c["id"] for c in body["contacts"]} == set(expected)

    async def offsets():
        keep_running(*workers)
        return {
            (topic, partition): positions
            for topic, group in ((names.events, names.app_id), (names.outbox, names.pusher_group))
            for partition, positions in (await committed_to_the_end(group, topic)).items()
        }

    positions = await poll(
        offsets, lambda got: all(c == end for c, end in got.values()), timeout=120
    )
    stalled = {p: ce for p, ce in positions.items() if ce[0] != ce[1]}
    assert stalled == {}, f"partitions not committed to their end: {stalled}"
