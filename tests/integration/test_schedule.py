"""Time-based triggers, CEL conditions and declared rules through the real broker and stand-in.

The scan's clock is moved forward with STREAM_SCHEDULE__CLOCK_OFFSET (it moves nothing else):
the due dates of a points expiry 40 days away arrive without waiting for them.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from stream.domain.records import decode
from tests.support.kafka import Names, committed_to_the_end, envelope, read_topic
from tests.support.processes import Worker, second_worker, start_ready, web_get
from tests.support.waiting import outbox_delivered, poll, sandbox_get

MAPPING = """
extends = "rivo"

[triggers.loyalty_tier_upgraded]
condition = 'after.tier.name == "Gold" && before.tier.name != "Gold"'

[rules.loyalty_vip_welcome]
on = ["tier.changed"]
condition = 'after.tier.name == "Platinum" && before.tier.name != "Platinum"'

[rules.loyalty_vip_welcome.properties]
tier = "after.tier.name"
previous_tier = "before.tier.name"

[[list]]
id = "2001"
condition = 'after.tier.name == "Gold"'

[[list]]
id = "2002"
condition = 'after.tier.name == "Platinum"'
"""
CUSTOMERS = [f"sched-{n}" for n in range(6)]  # spread over the three partitions


def offset(days: int) -> str:
    return f"{days * 86400 + 3600}s"  # an hour past the due moment, well inside the window


def stamp(when: datetime) -> str:
    return f"{when.astimezone(UTC):%Y-%m-%dT%H:%M:%S}Z"


async def scans(worker: Worker) -> int:
    """How many trigger scans the worker has finished since it started."""
    body = (await web_get(worker, "/metrics")).text
    for line in body.splitlines():
        if line.startswith("loyalty_schedule_scan_seconds_count"):
            return int(float(line.split()[-1]))
    return 0


async def scanned_again(*workers: Worker, more: int = 3) -> None:
    """Wait until each worker has finished `more` scans after now."""
    for worker in workers:
        start = await scans(worker)
        done = await poll(lambda w=worker: scans(w), lambda n, s=start: n >= s + more, timeout=60)
        assert done >= start + more, f"{worker.log.name}: no trigger scans ({done})"


async def outbox_events(names: Names) -> list[dict]:
    """Every custom event queued on the outbox, however often."""
    await outbox_delivered(names)
    positions = await committed_to_the_end(names.pusher_group, names.outbox)
    total = sum(end for _, end in positions.values())
    messages = await read_topic(names.outbox, total)
    assert len(messages) == total
    return [r for m in messages for r in decode(m.value) if r["@type"] == "custom_event"]


@pytest.mark.parametrize("store", ["memory://", "rocksdb://"])
async def test_every_time_based_trigger_fires_once_per_due_date_across_restart_and_rebalance(
    worker_env, tmp_path: Path, names: Names, producer, sandbox, store: str
):
    mapping = tmp_path / "campaigns.toml"
    mapping.write_text(MAPPING)
    env = {
        **worker_env,
        # The scan reads and writes each store its own way (RocksDB keeps one DB per partition).
        "STREAM_STORE": store,
        "STREAM_MAPPING__FILE": str(mapping),
        "STREAM_SCHEDULE__INTERVAL": "1s",
        # Today first: the birthday and the approaching tier fall due now (the latter when
        # the tier event happened, which can only be now).
        "STREAM_SCHEDULE__CLOCK_OFFSET": "0s",
    }
    first = Worker(env, tmp_path / "worker-a.log")
    other = second_worker(env, tmp_path)
    now = datetime.now(UTC).replace(microsecond=0)
    expires = now + timedelta(days=40)  # points and tier: 30 days before is day 10, 7 is 33
    reward_expires = now + timedelta(days=17)  # 7 days before is day 10
    birthday = now.astimezone(UTC).replace(hour=0, minute=0, second=0)

    def due(rule: str, when: datetime, lead: str = "") -> set[str]:
        part = f"{lead}:" if lead else ""
        return {f"{cid}:{rule}:{part}{stamp(when)}" for cid in CUSTOMERS}

    today = due("loyalty_birthday", birthday) | due("loyalty_tier_approaching", now)
    day10 = (
        due("loyalty_points_expiring", expires - timedelta(days=30), "30d")
        | due("loyalty_reward_expiring", reward_expires - timedelta(days=7), "7d")
        | due("loyalty_tier_expiring", expires - timedelta(days=30), "30d")
    )
    day33 = due("loyalty_points_expiring", expires - timedelta(days=7), "7d") | due(
        "loyalty_tier_expiring", expires - timedelta(days=7), "7d"
    )
    rules = ("birthday", "tier_approaching", "points_expiring", "reward_expiring", "tier_expiring")

    async def delivered() -> dict[str, int]:
        """The scan's events, by id (event-driven ones carry the event id, not `:rule:`)."""
        found: dict[str, int] = {}
        for rule in rules:
            body = await sandbox_get(sandbox, f"/_sandbox/events?event_type=loyalty_{rule}")
            found.update(
                {e["id"]: e["received"] for e in body["events"] if f":loyalty_{rule}:" in e["id"]}
            )
        return found

    async def each_once(expected: set[str]) -> None:
        queued = [e["id"] for e in await outbox_events(names) if e["id"] in expected]
        assert sorted(queued) == sorted(expected)  # each once on the outbox
        assert await delivered() == dict.fromkeys(expected, 1)  # and once at Ometria

    try:
        await start_ready(first)
        for cid in CUSTOMERS:
            person = {"id": cid, "email": f"{cid}@example.com"}
            tier = {
                "tier": "Silver", "previous_tier": "Bronze", "direction": "up",
                "tier_expires_at": expires.isoformat(), "next_tier": "Gold",
                "progress_to_next": 50,
            }  # fmt: skip
            reward = {
                "redemption_id": f"{cid}-r", "code": f"CODE-{cid}", "points": 100,
                "reward": {"id": "1", "name": "$10 off", "reward_type": "fixed_amount",
                           "value": "10.00"},
                "expires_at": reward_expires.isoformat(),
            }  # fmt: skip
            for doc in (
                envelope(f"{cid}-1", "customer.enrolled", person, {}, now),
                envelope(f"{cid}-2", "points.earned", {"id": cid}, {"points": 300}, now),
                envelope(
                    f"{cid}-3", "points.expiring", {"id": cid},
                    {"points": 120, "expires_at": expires.isoformat()}, now,
                ),
                envelope(f"{cid}-4", "points.redeemed", {"id": cid}, reward, now),
                envelope(f"{cid}-5", "tier.changed", {"id": cid}, tier, now),
                envelope(
                    f"{cid}-6", "birthday.updated", {"id": cid},
                    {"date_of_birth": f"{birthday:%m-%d}"}, now,
                ),
            ):  # fmt: skip
                await producer.send(names.events, key=cid.encode(), value=orjson.dumps(doc))
        await producer.flush()

        got = await poll(delivered, lambda d: set(d) >= today)
        assert set(got) == today  # nothing of day 10 or 33 yet
        # A restart: the markers came back with the table, nothing fires again.
        await first.stop_async()
        await start_ready(first)
        await scanned_again(first)
        # A second worker takes half the partitions over, with their markers.
        await start_ready(other)
        await poll(lambda: scans(other), lambda n: n >= 1, timeout=60)
        await scanned_again(first, other)
        await each_once(today)

        # Day 10: three rules' first warnings, on both workers; then one leaves (a rebalance).
        await other.stop_async()
        await first.stop_async()
        for worker in (first, other):
            worker.env["STREAM_SCHEDULE__CLOCK_OFFSET"] = offset(10)
        await start_ready(first, other)
        await poll(delivered, lambda d: set(d) >= today | day10)
        await other.stop_async()
        await scanned_again(first)
        await each_once(today | day10)

        # Day 33: the last chances, once, on whichever worker holds them.
        await first.stop_async()
        for worker in (first, other):
            worker.env["STREAM_SCHEDULE__CLOCK_OFFSET"] = offset(33)
        await start_ready(first, other)
        await poll(delivered, lambda d: set(d) >= today | day10 | day33)
        await scanned_again(first, other)
        await each_once(today | day10 | day33)
    finally:
        for worker in (first, other):
            if worker.process is not None:
                await worker.stop_async()


async def test_condition_declared_rule_and_lists_work_end_to_end(
    worker_env, tmp_path: Path, names: Names, producer, sandbox
):
    mapping = tmp_path / "campaigns.toml"
    mapping.write_text(MAPPING)
    worker = Worker({**worker_env, "STREAM_MAPPING__FILE": str(mapping)}, tmp_path / "w.log")
    try:
        await start_ready(worker)
        now = datetime.now(UTC)
        person = {"id": "vip-1", "email": "vip-1@example.com"}
        steps = [("Silver", "Bronze"), ("Gold", None), ("Platinum", None)]
        for n, (tier, previous) in enumerate(steps):
            data = {"tier": tier} | ({"previous_tier": previous} if previous else {})
            doc = envelope(f"vip-{n}", "tier.changed", person, data, now + timedelta(seconds=n))
            await producer.send(names.events, key=b"vip-1", value=orjson.dumps(doc))
        await producer.flush()

        body = await poll(
            lambda: sandbox_get(sandbox, "/_sandbox/events"),
            lambda b: any(e["event_type"] == "loyalty_vip_welcome" for e in b["events"]),
        )
        fired = sorted((e["event_type"], e["properties"].get("tier")) for e in body["events"])
        assert fired == [("loyalty_tier_upgraded", "Gold"), ("loyalty_vip_welcome", "Platinum")]
        # The contact's last list change (the stand-in keeps the newest value of each field).
        body = await poll(
            lambda: sandbox_get(sandbox, "/_sandbox/contacts?id=vip-1"),
            lambda b: any(c.get("@add_to_lists") == ["2002"] for c in b["contacts"]),
        )
        (contact,) = body["contacts"]
        assert contact["@add_to_lists"] == ["2002"]
        assert contact.get("@remove_from_lists", ["2001"]) == ["2001"]
        stats = await sandbox_get(sandbox, "/_sandbox/stats")
        assert stats["records_rejected"] == 0
    finally:
        await worker.stop_async()


async def test_a_typo_in_a_condition_stops_start_up_naming_it(worker_env, tmp_path: Path):
    mapping = tmp_path / "campaigns.toml"
    mapping.write_text(MAPPING.replace('after.tier.name == "Gold"', 'after.tier.nmae == "Gold"'))
    worker = Worker({**worker_env, "STREAM_MAPPING__FILE": str(mapping)}, tmp_path / "w.log")
    worker.start()
    assert worker.process is not None
    assert worker.process.wait(60) == 2
    log = worker.text()
    assert "[triggers.loyalty_tier_upgraded]" in log
    assert "after.tier.nmae" in log
    assert "no field 'nmae'" in log


async def test_state_built_after_a_due_moment_passed_the_window_does_not_fire_it(
    worker_env, tmp_path: Path, names: Names, producer, sandbox
):
    """State that learns of a due moment only after it left the window (history replayed
    into a new deployment, as here where the scan's clock is ahead of the events) fires only
    what fell due within the window; older warnings stay unsent."""
    mapping = tmp_path / "campaigns.toml"
    mapping.write_text(MAPPING)
    env = {
        **worker_env,
        "STREAM_MAPPING__FILE": str(mapping),
        "STREAM_SCHEDULE__INTERVAL": "1s",
        "STREAM_SCHEDULE__CLOCK_OFFSET": offset(12),  # the window is the default day
    }
    worker = Worker(env, tmp_path / "w.log")
    try:
        await start_ready(worker)
        now = datetime.now(UTC).replace(microsecond=0)
        expiries = {"fresh": now + timedelta(days=42), "stale": now + timedelta(days=40)}
        for cid, expires in expiries.items():
            person = {"id": cid, "email": f"{cid}@example.com"}
            data = {"points": 50, "expires_at": expires.isoformat()}
            for doc in (
                envelope(f"{cid}-1", "customer.enrolled", person, {}, now),
                envelope(f"{cid}-2", "points.expiring", {"id": cid}, data, now),
            ):
                await producer.send(names.events, key=cid.encode(), value=orjson.dumps(doc))
        await producer.flush()
        ids = {
            cid: f"{cid}:loyalty_points_expiring:30d:{stamp(expires - timedelta(days=30))}"
            for cid, expires in expiries.items()
        }
        body = await poll(
            lambda: sandbox_get(sandbox, "/_sandbox/events?event_type=loyalty_points_expiring"),
            lambda b: any(e["id"] == ids["fresh"] for e in b["events"]),
        )
        assert ids["fresh"] in {e["id"] for e in body["events"]}  # due an hour ago: fires
        await scanned_again(worker)
        queued = {e["id"] for e in await outbox_events(names)}
        assert ids["fresh"] in queued
        assert ids["stale"] not in queued  # due two days ago, beyond the window
    finally:
        await worker.stop_async()
