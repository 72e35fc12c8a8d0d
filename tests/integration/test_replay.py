"""`replay` against the real broker and the stand-in: a rebuilt table, and a rewind to a time."""

from __future__ import annotations

from datetime import UTC, datetime

from stream.ops.replay import replay
from stream.runtime.replay_mark import current_mark
from stream.runtime.topology import ensure_topics
from tests.support.kafka import names_settings, read_topic
from tests.support.processes import metric, run_cli
from tests.support.scenarios import event, produce, story, without_counts
from tests.support.waiting import (
    all_delivered,
    events_counted,
    folded_to_the_end,
    outbox_delivered,
    poll,
    replay_when_stopped,
    sandbox_get,
)


async def latest_profiles(names, expected: int) -> dict[bytes, bytes]:
    """The table's changelog as a map: the latest stored profile per customer."""
    records = await read_topic(f"{names.app_id}-customer_to_profile-changelog", expected)
    return {record.key: record.value for record in records}


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


NOW = datetime.now(UTC)

# A mapping fix: the points balance under a new property name, and the tier no longer sent.
FIXED_MAPPING = """
[[field]]
target = "firstname"
source = "first_name"

[[field]]
target = "loyaltyPoints"
source = "points.balance"
"""


async def test_replay_with_reset_after_a_mapping_fix_sends_the_fixed_contact(
    names, sandbox, worker, producer, tmp_path
):
    # The customer's content last changes at offset 1 under the fixed mapping, but at the
    # tier change, 20,001 records later, under the old one. A fold batch holds at most 20,000
    # records (STREAM_FOLD__BATCH_SIZE), so the rebuild maps the fixed contact in an earlier batch
    # than the tier change, at an input offset below the version delivered before. The records
    # in between repeat offset 1's event: duplicates, which fold to nothing.
    cid = "fix1"
    enrol = event(cid, "customer.enrolled", 0, {"loyalty_status": "member"})
    earned = event(cid, "points.earned", 1, {"points": 10})
    tier = event(cid, "tier.changed", 2, {"previous_tier": "Bronze", "tier": "Silver"})
    worker.start()
    await worker.wait_ready()
    await produce(producer, names.events, [enrol, earned, *[earned] * 20_000, tier])
    contacts = await poll(
        lambda: sandbox_get(sandbox, "/_sandbox/contacts"),
        lambda got: any(
            c["id"] == cid and c["properties"].get("rivoVipTierName") == "Silver"
            for c in got["contacts"]
        ),
        timeout=180,
    )
    (before,) = [c for c in contacts["contacts"] if c["id"] == cid]
    assert before["properties"]["rivoPointsBalance"] == 10
    assert "loyaltyPoints" not in before["properties"]
    await folded_to_the_end(names)
    await outbox_delivered(names)
    await worker.stop_async()

    out = await replay_when_stopped(worker.env, "--from", "earliest", "--reset-state")
    assert "versioned in generation 1" in out
    mapping = tmp_path / "fixed-mapping.toml"
    mapping.write_text(FIXED_MAPPING, encoding="utf-8")
    worker.env["STREAM_MAPPING__FILE"] = str(mapping)
    worker.start()
    await worker.wait_ready()
    await folded_to_the_end(names)
    await outbox_delivered(names)
    stale = await metric(worker, "ometria_stale_contacts_total")
    contacts = await sandbox_get(sandbox, "/_sandbox/contacts")
    (after,) = [c for c in contacts["contacts"] if c["id"] == cid]
    assert stale == 0, "no rebuilt contact counts as older than the one delivered before"
    assert after["properties"].get("loyaltyPoints") == 10, "the fixed contact reached Ometria"
    assert after["received"] > before["received"]

    # A backfill now maps the rebuilt profiles: its contacts belong to the new generation too.
    code, out = await run_cli(worker.env, "backfill", "--customer", cid)
    assert code == 0, out
    body = await poll(
        lambda: sandbox_get(sandbox, "/_sandbox/contacts"),
        lambda got: any(
            c["id"] == cid and c["received"] > after["received"] for c in got["contacts"]
        ),
        timeout=30,
    )
    assert [c["received"] for c in body["contacts"] if c["id"] == cid] == [after["received"] + 1]
    assert await metric(worker, "ometria_stale_contacts_total") == 0


async def test_each_state_reset_starts_a_new_version_generation_and_a_rewind_keeps_it(names):
    settings = names_settings(names)
    await ensure_topics(settings)

    async def generation_after(reset_state: bool, since: datetime | None = None) -> int:
        await replay(settings, since, reset_state=reset_state, dry_run=False, now=NOW)
        mark = await current_mark(settings)
        assert mark is not None
        return mark.generation

    assert await generation_after(reset_state=False) == 0
    assert await generation_after(reset_state=True) == 1
    assert await generation_after(reset_state=False, since=NOW) == 1
    assert await generation_after(reset_state=True) == 2
