"""`replay` against the real broker and the stand-in: a rebuilt table, and a rewind to a time."""

from __future__ import annotations

from datetime import UTC, datetime

from tests.integration.conftest import (
    committed_to_the_end,
    outbox_delivered,
    poll,
    read_topic,
    sandbox_get,
    web_get,
)
from tests.integration.test_control import run_cli, without_counts
from tests.integration.test_delivery_faults import all_delivered, produce, story


async def events_counted(worker, outcome: str) -> float:
    """loyalty_events_total of one outcome, all event types together."""
    text = (await web_get(worker, "/metrics")).text
    return sum(
        float(line.split()[-1])
        for line in text.splitlines()
        if line.startswith("loyalty_events_total{") and f'outcome="{outcome}"' in line
    )


async def latest_profiles(names, expected: int) -> dict[bytes, bytes]:
    """The table's changelog as a map: the latest stored profile per customer."""
    records = await read_topic(f"{names.app_id}-customer_to_profile-changelog", expected)
    return {record.key: record.value for record in records}


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


async def test_replay_from_earliest_with_reset_rebuilds_state_and_contacts_without_refiring(
    names, sandbox, worker, producer
):
    events, balances, custom_ids = story(20, "rp")
    worker.start()
    await worker.wait_ready()
    await produce(producer, names.events, events)
    await poll(lambda: sandbox_get(sandbox, "/_sandbox/contacts"), all_delivered(balances))
    await folded_to_the_end(names)
    await outbox_delivered(names)
    profiles = await latest_profiles(names, len(balances))
    assert len(profiles) == len(balances)
    contacts = without_counts((await sandbox_get(sandbox, "/_sandbox/contacts"))["contacts"])
    fired = {
        e["id"]: e["received"] for e in (await sandbox_get(sandbox, "/_sandbox/events"))["events"]
    }
    assert set(fired) == custom_ids, "the story fires campaigns: the test can see a re-fire"

    code, out = await run_cli(worker.env, "replay", "--from", "earliest", "--reset-state")
    assert code == 1, out
    assert "workers of group" in out
    assert "are running" in out

    await worker.stop_async()
    out = await replay_when_stopped(worker.env, "--from", "earliest", "--reset-state")
    assert f"{len(events)} records to fold again" in out
    assert "table state discarded" in out

    worker.start()
    await worker.wait_ready()
    await folded_to_the_end(names)
    rebuilt = await poll(
        lambda: latest_profiles(names, len(balances)), lambda got: got == profiles, timeout=60
    )
    assert rebuilt == profiles, "the rebuilt table equals the first run's"
    body = await poll(
        lambda: sandbox_get(sandbox, "/_sandbox/contacts"),
        lambda got: all(c["received"] >= 2 for c in got["contacts"]),
    )
    assert without_counts(body["contacts"]) == contacts
    assert {c["received"] for c in body["contacts"]} == {2}, "re-sent once, coalesced"
    await outbox_delivered(names)
    again = {
        e["id"]: e["received"] for e in (await sandbox_get(sandbox, "/_sandbox/events"))["events"]
    }
    assert again == fired, "no campaign event re-fired"


async def test_replay_from_a_time_folds_again_only_what_came_after_it(
    names, sandbox, worker, producer
):
    first, balances, _ = story(10, "early")
    worker.start()
    await worker.wait_ready()
    await produce(producer, names.events, first)
    await poll(lambda: sandbox_get(sandbox, "/_sandbox/contacts"), all_delivered(balances))
    await folded_to_the_end(names)
    since = datetime.now(UTC)
    later, more, _ = story(7, "late")
    await produce(producer, names.events, later)
    await poll(lambda: sandbox_get(sandbox, "/_sandbox/contacts"), all_delivered(more))
    await folded_to_the_end(names)
    await outbox_delivered(names)
    profiles = await latest_profiles(names, len(balances) + len(more))
    await worker.stop_async()

    out = await replay_when_stopped(worker.env, "--from", since.isoformat())
    assert f"{len(later)} records to fold again" in out

    worker.start()
    await worker.wait_ready()
    await folded_to_the_end(names)
    # A fresh process counts only what it read: the later events, already applied before.
    assert await events_counted(worker, "duplicate") == len(later)
    assert await events_counted(worker, "applied") == 0
    assert await latest_profiles(names, len(profiles)) == profiles
