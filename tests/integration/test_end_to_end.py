"""End to end: events on the real broker → the worker process → the Ometria stand-in over HTTP."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import httpx
import orjson

from stream.domain.dlq import read_headers
from stream.domain.mapping import load_preset
from stream.domain.records import decode
from stream.ops.backfill import backfill
from stream.runtime.topology import default_partition
from stream.settings import load_settings
from tests.support.kafka import BOOTSTRAP, envelope, read_topic
from tests.support.waiting import outbox_delivered, poll, sandbox_get

CUSTOMERS_WITH_EMAIL = 24
CUSTOMERS_WITHOUT_EMAIL = 4


_event = envelope


def build_story(seed: int):
    """Events for many customers, and what Ometria should end up with, computed independently."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    events, expected, earned_events = [], {}, 0
    for n in range(CUSTOMERS_WITH_EMAIL + CUSTOMERS_WITHOUT_EMAIL):
        cid = f"{900000 + n}"
        has_email = n < CUSTOMERS_WITH_EMAIL
        customer = {"id": cid, "first_name": f"Name{n}"}
        if has_email:
            customer["email"] = f"customer{n}@example.com"
        at = now - timedelta(minutes=30)
        mine = [
            _event(f"{cid}-enrol", "customer.enrolled", customer, {"loyalty_status": "member"}, at)
        ]
        balance = 0
        for k in range(rng.randint(1, 4)):
            points = rng.randint(1, 200)
            balance += points
            at += timedelta(seconds=1)
            mine.append(
                _event(f"{cid}-earn-{k}", "points.earned", {"id": cid}, {"points": points}, at)
            )
            earned_events += has_email
        if n % 3 == 0:
            at += timedelta(seconds=1)
            data = {"previous_tier": "Bronze", "tier": "Silver"}
            mine.append(_event(f"{cid}-tier", "tier.changed", {"id": cid}, data, at))
        if n % 4 == 0 and balance >= 10:
            at += timedelta(seconds=1)
            balance -= 10
            data = {
                "redemption_id": f"r{n}",
                "code": f"CODE{n}",
                "points": 10,
                "reward": {"name": "£5 off"},
            }
            mine.append(_event(f"{cid}-redeem", "points.redeemed", {"id": cid}, data, at))
        # The producer retries one event: the same event_id arrives twice.
        mine.append(mine[1])
        events.extend(mine)
        if has_email:
            expected[cid] = {
                "email": customer["email"],
                "rivoPointsBalance": balance,
                "rivoVipTierName": "Silver" if n % 3 == 0 else None,
            }
    return events, expected, earned_events


async def test_events_flow_through_kafka_to_ometria_as_contacts_and_custom_events(
    names, sandbox, worker, producer
):
    events, expected, earned_events = build_story(seed=7)
    worker.env["STREAM_PROFILE_API_TOKEN"] = "it-profile-token"
    worker.start()
    await worker.wait_ready()
    for event in events:
        await producer.send(
            names.events, key=event["customer"]["id"].encode(), value=orjson.dumps(event)
        )
    # Bad input must not stop the stream: unparsable bytes and an event keyed by someone else.
    await producer.send(names.events, key=b"900000", value=b"{not json")
    stray = _event(
        "stray",
        "reward.used",
        {"id": "900001"},
        {"redemption_id": "r", "code": "C"},
        datetime.now(UTC),
    )
    await producer.send(names.events, key=b"900002", value=orjson.dumps(stray))
    await producer.flush()

    def complete(contacts):
        got = {c["id"]: c for c in contacts["contacts"]}
        return all(
            cid in got
            and got[cid]["properties"].get("rivoPointsBalance") == want["rivoPointsBalance"]
            for cid, want in expected.items()
        )

    contacts = await poll(lambda: sandbox_get(sandbox, "/_sandbox/contacts"), complete)
    got = {c["id"]: c for c in contacts["contacts"]}
    assert set(got) == set(expected), "exactly the customers with an email become contacts"
    for cid, want in expected.items():
        contact = got[cid]
        assert contact["email"] == want["email"]
        assert contact["customer_id"] == cid
        assert contact["@collection"] == "loyalty"
        assert contact["properties"]["rivoPointsBalance"] == want["rivoPointsBalance"]
        assert contact["properties"]["rivoLoyaltyStatus"] == "member"
        assert contact["properties"].get("rivoVipTierName") == want["rivoVipTierName"]
        assert "marketing_optin" not in contact

    custom = await poll(
        lambda: sandbox_get(sandbox, "/_sandbox/events"),
        lambda body: (
            sum(e["event_type"] == "loyalty_points_earned" for e in body["events"]) >= earned_events
        ),
    )
    by_type: dict[str, int] = {}
    for event in custom["events"]:
        by_type[event["event_type"]] = by_type.get(event["event_type"], 0) + 1
    assert by_type["loyalty_points_earned"] == earned_events, "a duplicated event fires once"
    assert by_type["loyalty_tier_upgraded"] == sum(
        1 for n in range(CUSTOMERS_WITH_EMAIL) if n % 3 == 0
    )
    assert by_type["loyalty_reward_claimed"] == sum(
        1 for n in range(CUSTOMERS_WITH_EMAIL) if n % 4 == 0
    )

    stats = await sandbox_get(sandbox, "/_sandbox/stats")
    assert stats["max_records_in_a_request"] <= 100
    assert stats["mixed_type_requests"] == 0
    assert stats["records_rejected"] == 0
    assert set(stats["by_status"]) == {"202"}

    dead = await read_topic(names.dead_letter, expected=2)
    assert len(dead) == 2
    by_value = {record.value: read_headers(record.headers) for record in dead}
    assert by_value[b"{not json"]["error_class"] == "UnparsableJSON"
    assert by_value[b"{not json"]["source.topic"] == names.events
    mismatch = by_value[orjson.dumps(stray)]
    assert mismatch["error_class"] == "KeyMismatch"
    assert "key events by customer id" in mismatch["reason"]

    web = f"http://127.0.0.1:{worker.env['STREAM_WEB_PORT']}"
    async with httpx.AsyncClient(base_url=web, timeout=10) as http:
        assert (await http.get("/healthz")).json() == {"status": "ok"}
        assert (await http.get("/readyz")).json()["ready"] is True
        exposition = (await http.get("/metrics")).text
        denied = await http.get("/profiles/900000")
        assert denied.status_code == 401
        answer = await http.get(
            "/profiles/900000", headers={"Authorization": "Bearer it-profile-token"}
        )
        assert answer.status_code == 200
        profile = answer.json()
        assert profile["profile"]["points"]["balance"] == expected["900000"]["rivoPointsBalance"]
        assert (
            profile["last_contact"]["properties"]["rivoPointsBalance"]
            == (expected["900000"]["rivoPointsBalance"])
        )
    metrics = {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in exposition.splitlines()
        if line and not line.startswith("#")
    }
    applied = sum(
        v
        for k, v in metrics.items()
        if k.startswith("loyalty_events_total{") and 'outcome="applied"' in k
    )
    assert applied == len({e["event_id"] for e in events})
    assert metrics['loyalty_events_total{outcome="duplicate",type="points.earned"}'] == (
        CUSTOMERS_WITH_EMAIL + CUSTOMERS_WITHOUT_EMAIL
    )
    assert metrics['loyalty_dead_letters_total{error_class="UnparsableJSON",stage="parse"}'] == 1
    assert metrics['ometria_records_pushed_total{type="contact"}'] >= len(expected)
    assert metrics["ometria_push_latency_seconds_count"] > 0
    assert metrics["ometria_outbox_backlog"] >= 0
    assert any(k.startswith("loyalty_consumer_lag{") for k in metrics)

    assert await worker.stop_async() == 0
    log = worker.text()
    assert "it-secret-key-7f3a" not in log
    assert "customer0@example.com" not in log
    assert "it-profile-token" not in log
    # Structured logs: every line our loggers write is a JSON object.
    ours = [
        orjson.loads(line)
        for line in log.splitlines()
        if line.startswith("{") and '"logger": "stream' in line
    ]
    assert ours, "the worker logs its dead letters as JSON lines"
    assert all({"time", "level", "logger", "message"} <= set(line) for line in ours)


async def test_worker_restart_recovers_profiles_and_counts_points_once(
    names, sandbox, worker, producer
):
    now = datetime.now(UTC)
    customer = {"id": "777", "email": "restart@example.com"}
    first = [
        _event("r-enrol", "customer.enrolled", customer, {}, now),
        _event(
            "r-earn-1", "points.earned", {"id": "777"}, {"points": 100}, now + timedelta(seconds=1)
        ),
    ]
    worker.start()
    await worker.wait_ready()
    for event in first:
        await producer.send_and_wait(names.events, key=b"777", value=orjson.dumps(event))

    def balance_is(value):
        def check(body):
            return any(c["properties"].get("rivoPointsBalance") == value for c in body["contacts"])

        return check

    await poll(lambda: sandbox_get(sandbox, "/_sandbox/contacts"), balance_is(100))
    assert await worker.stop_async() == 0

    # After a restart the table comes back from its changelog: a redelivered event is still
    # recognised, and a new one adds to the recovered balance.
    worker.start()
    await worker.wait_ready()
    again = [
        first[1],
        _event(
            "r-earn-2", "points.earned", {"id": "777"}, {"points": 5}, now + timedelta(seconds=2)
        ),
    ]
    for event in again:
        await producer.send_and_wait(names.events, key=b"777", value=orjson.dumps(event))
    contacts = await poll(lambda: sandbox_get(sandbox, "/_sandbox/contacts"), balance_is(105))
    assert contacts["contacts"][0]["properties"]["rivoPointsBalance"] == 105


async def test_backfill_resends_every_contact_after_ometria_lost_them(
    names, sandbox, worker, producer
):
    now = datetime.now(UTC)
    customers = {f"bf{n}": 10 * (n + 1) for n in range(12)}
    worker.start()
    await worker.wait_ready()
    for cid, points in customers.items():
        enrol = _event(
            f"{cid}-e", "customer.enrolled", {"id": cid, "email": f"{cid}@example.com"}, {}, now
        )
        earn = _event(f"{cid}-p", "points.earned", {"id": cid}, {"points": points}, now)
        for event in (enrol, earn):
            await producer.send_and_wait(names.events, key=cid.encode(), value=orjson.dumps(event))
    guest = _event("bfg-e", "customer.enrolled", {"id": "bfg"}, {}, now)
    await producer.send_and_wait(names.events, key=b"bfg", value=orjson.dumps(guest))

    def all_there(body):
        got = {c["id"]: c["properties"].get("rivoPointsBalance") for c in body["contacts"]}
        return got == customers

    await poll(lambda: sandbox_get(sandbox, "/_sandbox/contacts"), all_there)
    # The campaign events of the same round follow the contacts: all of it, then a clean slate.
    await outbox_delivered(names)
    async with httpx.AsyncClient(base_url=sandbox) as http:
        (await http.post("/_sandbox/reset")).raise_for_status()
    settings = load_settings(
        kafka={"bootstrap_servers": BOOTSTRAP},
        app_id=names.app_id,
        topics={"events": names.events, "outbox": names.outbox},
    )
    # The contacts reach Ometria before the worker's buffered changelog writes are flushed.
    dry = await poll(
        lambda: backfill(settings, load_preset("rivo").contact, dry_run=True),
        lambda report: report.profiles == 13,
        timeout=30,
    )
    assert (dry.profiles, dry.contacts, dry.without_email) == (13, 12, 1)
    assert (await sandbox_get(sandbox, "/_sandbox/stats"))["contacts"] == 0, (
        "a dry run queues nothing"
    )

    report = await backfill(settings, load_preset("rivo").contact, dry_run=False)
    assert report.contacts == 12
    body = await poll(lambda: sandbox_get(sandbox, "/_sandbox/contacts"), all_there)
    assert all_there(body)
    events = (await sandbox_get(sandbox, "/_sandbox/events"))["events"]
    assert events == [], "a backfill sends contacts only, never campaign events"
    # Backfilled contacts are keyed like the customer's live records (the id's own bytes), and
    # the fold's messages (several customers each, no key) go to the partition that key
    # reaches (of the 3 the tests' topics have): every record of a customer shares one outbox
    # partition. Everything there by now: read for 5 s.
    outbox = await read_topic(names.outbox, expected=10**6, timeout=5)
    assert {record.key for record in outbox} - {None} <= {cid.encode() for cid in customers}
    owners = set()
    for record in outbox:
        for item in decode(record.value):
            owner = item["id"] if item["@type"] == "contact" else item["identity_account_id"]
            owners.add(owner)
            assert record.partition == default_partition(owner.encode(), 3), owner
    assert owners == set(customers), "every customer's records were read"
