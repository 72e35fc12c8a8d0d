"""A hostile corpus through the real broker and a running worker (issue 11).

Malformed and tricky records are interleaved with valid ones: each invalid record is
dead-lettered exactly once with a readable reason and reaches nothing else, the stream goes on,
and the valid tricky records (unicode names, plus-addressed emails, re-sent event ids, events
just inside the time window, a clock-skewed snapshot, a late tier event) arrive as a person
would expect. `replay` then judges the same topic as the worker did.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

import orjson

from stream.domain.dlq import read_headers
from stream.ops.redrive import Filters, redrive
from tests.support.kafka import committed_to_the_end, envelope, names_settings, read_topic
from tests.support.processes import web_get
from tests.support.waiting import outbox_delivered, poll, sandbox_get


@dataclass(frozen=True)
class Bad:
    """An invalid record and what its dead letter must say."""

    key: bytes | None
    value: bytes | None
    error_class: str
    reason: str  # a part of the reason


def _doc(n: int, event_type: str, data: dict, at: datetime, **customer) -> dict:
    person = {"id": f"bad-{n}", "email": f"bad{n}@example.com", **customer}
    return envelope(f"bad-ev-{n}", event_type, person, data, at)


def personal_values(raw: bytes | None) -> list[str]:
    """The personal data a record holds as text: its email, names and birthday."""
    try:
        doc = orjson.loads(raw or b"")
    except orjson.JSONDecodeError:
        return []
    if not isinstance(doc, dict):
        return []
    customer = doc.get("customer") if isinstance(doc.get("customer"), dict) else {}
    data = doc.get("data") if isinstance(doc.get("data"), dict) else {}
    found = [customer.get(name) for name in ("email", "first_name", "last_name")]
    found.append(data.get("date_of_birth"))
    # Shorter texts ("x\u2066y") could appear in any sentence by chance.
    return [value for value in found if isinstance(value, str) and len(value) >= 5]


def hostile_records(now: datetime) -> list[Bad]:
    earn = {"points": 5}
    schema = "SchemaViolation"
    cases: list[tuple[str, dict, str, str]] = [
        # (what is wrong, the document's changes, error class, part of the reason)
        (
            "year 0999",
            {"occurred_at": "0999-01-01T00:00:00+00:00"},
            "EventTimeOutOfRange",
            "STREAM_EVENTS__MAX_AGE",
        ),
        (
            "year 1 +01:00",
            {"occurred_at": "0001-01-01T00:00:00+01:00"},
            schema,
            "occurred_at: lies outside",
        ),
        (
            "2099",
            {"occurred_at": "2099-01-01T00:00:00+00:00"},
            "EventTimeOutOfRange",
            "STREAM_EVENTS__FUTURE_SKEW",
        ),
        (
            "10 min ahead",
            {"occurred_at": (now + timedelta(minutes=10)).isoformat()},
            "EventTimeOutOfRange",
            "STREAM_EVENTS__FUTURE_SKEW",
        ),
        (
            "11 years old",
            {"occurred_at": (now - timedelta(days=4015)).isoformat()},
            "EventTimeOutOfRange",
            "STREAM_EVENTS__MAX_AGE",
        ),
        ("epoch int", {"occurred_at": 1763719200}, schema, "occurred_at: expected an ISO 8601"),
        (
            "epoch float",
            {"occurred_at": 1763719200.25},
            schema,
            "occurred_at: expected an ISO 8601",
        ),
        ("epoch text", {"occurred_at": "1763719200"}, schema, "occurred_at: expected an ISO 8601"),
        (
            "naive",
            {"occurred_at": "2026-11-21T10:00:00"},
            schema,
            "occurred_at: expected an ISO 8601",
        ),
        ("not a date", {"occurred_at": "yesterday"}, schema, "occurred_at: expected an ISO 8601"),
        ("no time", {"occurred_at": None}, schema, "occurred_at"),
        (
            "negative balance",
            {"data": {"points": 5, "balance": {"points": -999999}}},
            schema,
            "data.balance.points",
        ),
        (
            "huge balance",
            {"data": {"points": 5, "balance": {"points": 9300000000000000000}}},
            schema,
            "data.balance.points",
        ),
        (
            "fractional balance",
            {"data": {"points": 5, "balance": {"points": 1.5}}},
            schema,
            "data.balance.points",
        ),
        ("negative points", {"data": {"points": -5}}, schema, "data.points"),
        ("too many points", {"data": {"points": 10**13}}, schema, "data.points"),
        (
            "float credits",
            {"data": {"points": 5, "credits": 2.1}},
            schema,
            "data.credits: expected a decimal",
        ),
        (
            "exponent credits",
            {"data": {"points": 5, "credits": "1e5"}},
            schema,
            "data.credits: expected a decimal",
        ),
        (
            "script email",
            {"customer.email": "<script>@a.b"},
            schema,
            "customer.email: expected an email",
        ),
        (
            "null in email",
            {"customer.email": "a\u0000b@ex.com"},
            schema,
            "customer.email: expected an email",
        ),
        (
            "no @",
            {"customer.email": "sarah.example.com"},
            schema,
            "customer.email: expected an email",
        ),
        (
            "no domain dot",
            {"customer.email": "sarah@localhost"},
            schema,
            "customer.email: expected an email",
        ),
        (
            "two @",
            {"customer.email": "a@b@example.com"},
            schema,
            "customer.email: expected an email",
        ),
        (
            "null in name",
            {"customer.first_name": "An\u0000na"},
            schema,
            "customer.first_name: contains the control",
        ),
        (
            "RLO in name",
            {"customer.last_name": "evil\u202egnp.exe"},
            schema,
            "customer.last_name: contains the control",
        ),
        (
            "isolate in name",
            {"customer.first_name": "x\u2066y"},
            schema,
            "customer.first_name: contains the control",
        ),
        ("bell in event id", {"event_id": "ev\u0007"}, schema, "event_id: contains the control"),
        ("empty id", {"customer.id": ""}, schema, "customer.id"),
        ("long id", {"customer.id": "x" * 129}, schema, "customer.id"),
        ("unknown type", {"type": "points.stolen"}, schema, "type"),
        ("extra field", {"hack": True}, schema, "hack"),
        ("no customer", {"customer": None}, schema, "customer"),
        ("data not an object", {"data": "x"}, schema, "data"),
    ]
    records: list[Bad] = []
    for n, (_, changes, error_class, reason) in enumerate(cases):
        doc = _doc(n, "points.earned", dict(earn), now)
        for path, value in changes.items():
            if path.startswith("customer."):
                doc["customer"][path.split(".", 1)[1]] = value
            else:
                doc[path] = value
        key = doc["customer"]["id"].encode() if isinstance(doc.get("customer"), dict) else b"x"
        records.append(Bad(key, orjson.dumps(doc), error_class, reason))
    base = len(cases)
    others: list[tuple[str, dict, str, str]] = [
        (
            "customer.enrolled",
            {"referral_url": "https://ex.com/r?" + "x" * 2000},
            schema,
            "data.referral_url: String should have at most 512",
        ),
        (
            "customer.updated",
            {"tags": ["ok", "b\u202ead"]},
            schema,
            "data.tags.1: contains the control",
        ),
        ("customer.updated", {"insights_segment": "Bogus"}, schema, "data.insights_segment"),
        ("customer.enrolled", {"loyalty_status": "admin"}, schema, "data.loyalty_status"),
        ("birthday.updated", {"date_of_birth": "02-30"}, schema, "data.date_of_birth"),
        ("tier.changed", {"tier": ""}, schema, "data.tier"),
        ("tier.changed", {"tier": "Go\u0000ld"}, schema, "data.tier: contains the control"),
        ("tier.changed", {"tier": "Gold", "progress": 1e20}, schema, "data.progress"),
        ("points.adjusted", {"points": -(10**13)}, schema, "data.points"),
        (
            "points.expiring",
            {"points": 5, "expires_at": "0001-01-01T00:00:00Z"},
            schema,
            "data.expires_at: the year must lie",
        ),
        (
            "points.redeemed",
            {"redemption_id": "r", "code": "C", "reward": {"name": "x", "value": 1e300}},
            schema,
            "data.reward.value",
        ),
    ]
    for n, (event_type, data, error_class, reason) in enumerate(others, start=base):
        doc = _doc(n, event_type, data, now)
        records.append(Bad(doc["customer"]["id"].encode(), orjson.dumps(doc), error_class, reason))
    n = base + len(others)
    stolen = _doc(n, "points.earned", {"points": 1000}, now, id="ok-names")
    records += [
        Bad(b"bad-raw-1", b"{not json", "UnparsableJSON", "not UTF-8 JSON"),
        Bad(b"bad-raw-2", b"", "UnparsableJSON", "not UTF-8 JSON"),
        Bad(b"bad-raw-3", None, "EmptyRecord", "no value"),
        Bad(b"bad-raw-4", b"[1, 2]", "SchemaViolation", "expected a JSON object"),
        Bad(b"bad-raw-5", b"null", "SchemaViolation", "expected a JSON object"),
        Bad(b"bad-raw-6", b"\xff\xfe{}", "UnparsableJSON", "not UTF-8 JSON"),
        Bad(b"bad-raw-7", b'{"x": "' + b"a" * 70_000 + b'"}', "RecordTooLarge", "limited to 65536"),
        # Keyed by another customer (replay must skip it too), and keyed by nobody.
        Bad(b"ok-old", orjson.dumps(stolen), "KeyMismatch", "key events by customer id"),
        Bad(
            None,
            orjson.dumps(_doc(n + 1, "points.earned", {"points": 1}, now)),
            "KeyMismatch",
            "no key",
        ),
    ]
    return records


def valid_story(now: datetime) -> tuple[list[tuple[bytes, dict]], dict, dict]:
    """Tricky valid records per customer (in order), the contacts and custom events expected."""
    minute = timedelta(minutes=1)
    ago = now - 10 * minute
    story: dict[str, list[dict]] = {}

    def add(cid: str, event_id: str, event_type: str, data: dict, at: datetime, **customer):
        story.setdefault(cid, []).append(
            envelope(event_id, event_type, {"id": cid, **customer}, data, at)
        )

    # Unicode names and a plus-addressed email; one earn re-sent with the same event id.
    add(
        "ok-names",
        "n1",
        "customer.enrolled",
        {},
        ago,
        email="sarah+loyalty@example.com",
        first_name="Zoë",
        last_name="سارة",
    )
    add("ok-names", "n2", "points.earned", {"points": 10}, ago + minute)
    add("ok-names", "n3", "points.earned", {"points": 20}, ago + 2 * minute)
    add("ok-names", "n3", "points.earned", {"points": 20}, ago + 2 * minute)
    # An emoji with a zero-width joiner is a name, not a control character.
    add(
        "ok-emoji",
        "m1",
        "customer.enrolled",
        {},
        ago,
        email="dev@example.com",
        first_name="👩\u200d💻",
    )
    # Just inside the max age: the contact updates, the old earn fires no campaign.
    old = now - timedelta(days=3650) + timedelta(hours=1)
    add("ok-old", "o1", "customer.enrolled", {}, old, email="old@example.com")
    add("ok-old", "o2", "points.earned", {"points": 5}, old + minute)
    # Just inside the future skew, at an unusual offset: it fires.
    ahead = (now + 4 * minute).astimezone(timezone(timedelta(hours=14)))
    add("ok-ahead", "a1", "customer.enrolled", {}, ago, email="ahead@example.com")
    add("ok-ahead", "a2", "points.earned", {"points": 7}, ahead)
    # A late tier event without previous_tier keeps Gold and fires no downgrade.
    add("ok-tier", "t1", "customer.enrolled", {}, ago, email="tier@example.com")
    add(
        "ok-tier",
        "t2",
        "tier.changed",
        {"tier": "Gold", "previous_tier": "Silver"},
        ago + 5 * minute,
    )
    add("ok-tier", "t3", "tier.changed", {"tier": "Silver"}, ago + minute)
    # An email change: the envelope still carries the old address.
    add("ok-email", "e1", "customer.enrolled", {}, ago, email="before@example.com")
    add(
        "ok-email",
        "e2",
        "customer.updated",
        {"email": "after@example.com"},
        ago + minute,
        email="before@example.com",
    )
    # A snapshot from a clock two minutes ahead, then changes stamped before it.
    add("ok-skew", "s1", "customer.enrolled", {}, ago, email="skew@example.com")
    add(
        "ok-skew",
        "s2",
        "points.adjusted",
        {"points": 0, "balance": {"points": 100}},
        now + 2 * minute,
    )
    for k in range(5):
        add(
            "ok-skew",
            f"s3-{k}",
            "points.earned",
            {"points": 50},
            ago + minute + k * timedelta(seconds=1),
        )
    add("ok-skew", "s4", "points.adjusted", {"points": -30}, ago + 2 * minute)
    # The longest referral URL Ometria takes.
    url = "https://ex.com/r?" + "y" * (512 - 17)
    add("ok-url", "u1", "customer.enrolled", {"referral_url": url}, ago, email="url@example.com")
    # No email: folded, no contact, its campaign held back.
    add("ok-noemail", "x1", "points.earned", {"points": 3}, ago)

    contacts = {
        "ok-names": {
            "email": "sarah+loyalty@example.com",
            "firstname": "Zoë",
            "lastname": "سارة",
            "balance": 30,
        },
        "ok-emoji": {"email": "dev@example.com", "firstname": "👩\u200d💻"},
        "ok-old": {"email": "old@example.com", "balance": 5},
        "ok-ahead": {"email": "ahead@example.com", "balance": 7},
        "ok-tier": {"email": "tier@example.com", "tier": "Gold"},
        "ok-email": {"email": "after@example.com"},
        "ok-skew": {"email": "skew@example.com", "balance": 320},
        "ok-url": {"email": "url@example.com", "url": url},
    }
    custom = {
        "ok-names": ["loyalty_points_earned"] * 2,
        "ok-ahead": ["loyalty_points_earned"],
        "ok-tier": ["loyalty_tier_upgraded"],
        "ok-skew": ["loyalty_points_earned"] * 5,
    }
    ordered = [(cid.encode(), doc) for cid, docs in story.items() for doc in docs]
    return ordered, contacts, custom


def _interleave(rng: random.Random, valid: list, bad: list) -> list:
    """Bad records scattered among the valid ones; each customer's valid records keep order."""
    slots = [("valid", item) for item in valid]
    for item in bad:
        slots.insert(rng.randrange(len(slots) + 1), ("bad", item))
    return slots


async def test_hostile_corpus_is_dead_lettered_once_and_the_valid_records_arrive(
    names, sandbox, worker, producer
):
    now = datetime.now(UTC)
    bad = hostile_records(now)
    valid, contacts, custom = valid_story(now)
    assert len(bad) + len(valid) >= 50
    assert len(bad) >= 50
    worker.start()
    await worker.wait_ready()
    for kind, item in _interleave(random.Random(11), valid, bad):
        if kind == "valid":
            key, doc = item
            await producer.send(names.events, key=key, value=orjson.dumps(doc))
        else:
            await producer.send(names.events, key=item.key, value=item.value)
    await producer.flush()

    def arrived(body):
        got = {c["id"]: c for c in body["contacts"]}
        return set(contacts) <= set(got) and all(
            got[cid]["email"] == want["email"]
            and got[cid]["properties"].get("rivoPointsBalance") == want.get("balance", 0)
            for cid, want in contacts.items()
        )

    body = await poll(lambda: sandbox_get(sandbox, "/_sandbox/contacts"), arrived, timeout=60)
    got = {c["id"]: c for c in body["contacts"]}
    assert set(got) == set(contacts), "only the valid customers with an email become contacts"
    for cid, want in contacts.items():
        contact = got[cid]
        assert contact["email"] == want["email"]
        assert contact["properties"].get("rivoPointsBalance") == want.get("balance", 0), cid
        if "firstname" in want:
            assert contact["firstname"] == want["firstname"]
        if "lastname" in want:
            assert contact["lastname"] == want["lastname"]
    assert got["ok-tier"]["properties"]["rivoVipTierName"] == "Gold"
    assert got["ok-url"]["properties"]["rivoReferralUrl"] == contacts["ok-url"]["url"]

    # Every input record processed (its dead letter stored before the commit), every record
    # queued for Ometria delivered.
    positions = await poll(
        lambda: committed_to_the_end(names.app_id, names.events),
        lambda got: all(c == end for c, end in got.values()),
        timeout=30,
    )
    assert all(c == end for c, end in positions.values()), positions
    await outbox_delivered(names)
    dead = await read_topic(names.dead_letter, expected=len(bad), timeout=30)
    stored = await committed_to_the_end(names.app_id, names.dead_letter)
    assert sum(end for _, end in stored.values()) == len(bad), "each invalid record once"
    events = (await sandbox_get(sandbox, "/_sandbox/events"))["events"]
    fired: dict[str, list[str]] = {}
    for event in events:
        fired.setdefault(event["identity_account_id"], []).append(event["event_type"])
    assert {cid: sorted(types) for cid, types in fired.items()} == custom

    # Each invalid record exactly once, with its original bytes and a readable reason.
    assert len(dead) == len(bad)
    letters = {(record.key, record.value): read_headers(record.headers) for record in dead}
    assert len(letters) == len(bad), "no record is dead-lettered twice"
    for item in bad:
        letter = letters[(item.key, item.value)]
        assert letter["error_class"] == item.error_class, (item.reason, letter["reason"])
        assert item.reason in letter["reason"], letter["reason"]
        assert letter["reason"].isprintable()
        for value in personal_values(item.value):
            assert value not in letter["reason"], "a reason names the field, never the value"
        assert letter["source.topic"] == names.events

    response = await web_get(worker, "/metrics")
    metrics = {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in response.text.splitlines()
        if line and not line.startswith("#")
    }
    for reason in ("horizon", "stale", "no_email"):
        assert metrics[f'loyalty_triggers_suppressed_total{{reason="{reason}"}}'] == 1, reason

    # The stream went on: the worker is still running. (A replay judges records the same way
    # by construction: `python -m stream replay` rewinds the workers, whose one intake path
    # folds them again.)
    assert worker.process is not None
    assert worker.process.poll() is None
    # And redrive would not publish any of them back: they fail the same checks again.
    shown: list[str] = []
    report = await redrive(
        names_settings(names), "events", Filters(), dry_run=True, show=shown.append
    )
    assert (report.matched, report.still_invalid) == (len(bad), len(bad))
    assert all(line.startswith("keep ") and "still invalid" in line for line in shown)
    assert await worker.stop_async() == 0
    log = worker.text()
    assert "<script>" not in log
    assert "evil" not in log
