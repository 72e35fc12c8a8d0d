"""A generated catalogue of customers' events and the contacts the reference model expects of it."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import orjson

from stream.domain.events import parse_event
from stream.domain.profile import stamp_of
from tests.support.reference_profile import reference

CUSTOMERS = 1500


def _latest_status(parsed):
    found = [
        (stamp_of(e), e.data.loyalty_status)
        for e in parsed
        if e.type in ("customer.enrolled", "customer.updated") and e.data.loyalty_status
    ]
    return max(found)[1]


def generate(seed: int, customers: int = CUSTOMERS):
    """Random histories for many customers: (events in produce order, expected contacts)."""
    rng = random.Random(seed)
    start = datetime.now(UTC) - timedelta(hours=2)
    events, expected = [], {}
    for n in range(customers):
        cid = str(1_000_000 + n)
        email = f"c{n}@example.com" if rng.random() < 0.85 else None

        def at(rng=rng):
            return (start + timedelta(seconds=rng.randint(0, 3600))).isoformat()

        def make(kind, data, customer=None, *, cid=cid, counter=[0]):  # noqa: B006
            counter[0] += 1
            return {
                "event_id": f"{cid}-{counter[0]}",
                "type": kind,
                "occurred_at": at(),
                "customer": customer or {"id": cid},
                "data": data,
            }

        enrol_customer = {"id": cid, **({"email": email} if email else {})}
        mine = [make("customer.enrolled", {"loyalty_status": "member"}, enrol_customer)]
        for _ in range(rng.randint(2, 7)):
            kind = rng.choice(
                ["earned", "earned", "pending", "approved", "redeemed", "expired", "adjusted",
                 "snapshot", "tier", "birthday", "expiring", "membership", "cancel", "referral",
                 "used", "status"]
            )  # fmt: skip
            points = rng.randint(1, 300)
            if kind == "earned":
                mine.append(make("points.earned", {"points": points}))
            elif kind == "pending":
                mine.append(make("points.earned", {"points": points, "pending": True}))
            elif kind == "approved":
                mine.append(make("points.approved", {"points": points}))
            elif kind == "redeemed":
                reward = {"id": 5, "name": "£5 off", "value": 5.0}
                data = {
                    "redemption_id": f"r{n}",
                    "code": f"C{n}",
                    "points": points,
                    "reward": reward,
                }
                mine.append(make("points.redeemed", data))
            elif kind == "expired":
                mine.append(make("points.expired", {"points": points, "reason": "expiry"}))
            elif kind == "adjusted":
                mine.append(make("points.adjusted", {"points": rng.randint(-200, 200)}))
            elif kind == "snapshot":
                data = {
                    "points": points,
                    "balance": {"points": rng.randint(0, 5000), "credits": "1.50"},
                }
                mine.append(make("points.earned", data))
            elif kind == "tier":
                tier = rng.choice(["Bronze", "Silver", "Gold"])
                mine.append(make("tier.changed", {"tier": tier, "progress": rng.randint(0, 99)}))
            elif kind == "birthday":
                mine.append(make("birthday.updated", {"date_of_birth": "1990-07-04"}))
            elif kind == "expiring":
                mine.append(make("points.expiring", {"points": points, "expires_at": at()}))
            elif kind == "membership":
                mine.append(make("membership.started", {"membership_tier_id": 2229}))
            elif kind == "cancel":
                data = {"cancellation_policy": "end_of_period", "ends_at": at()}
                mine.append(make("membership.cancelled", data))
            elif kind == "referral":
                mine.append(make("referral.completed", {"reward": "£5 credit"}))
            elif kind == "used":
                mine.append(make("reward.used", {"redemption_id": f"r{n}", "code": f"C{n}"}))
            else:
                mine.append(
                    make("customer.updated", {"loyalty_status": rng.choice(["member", "guest"])})
                )
        parsed = [parse_event(orjson.dumps(e)) for e in mine]
        if email:
            model = reference(parsed)  # the balance is set below, once the arrival order is known
            expected[cid] = {
                "email": email,
                "rivoPointsBalance": model["balance"],
                "rivoVipTierName": model["tier"],
                "rivoLoyaltyStatus": _latest_status(parsed),
                "rivoDateOfBirth": "1940-07-04"
                if any(p.type == "birthday.updated" for p in parsed)
                else None,
            }
        events.extend(mine)
    rng.shuffle(events)  # late and early arrivals within each customer's partition
    duplicates = rng.sample(events, len(events) // 10)  # producer retries
    for dup in duplicates:
        events.insert(rng.randrange(len(events)), dup)
    return events, arrival_balances(expected, events)


def arrival_balances(expected: dict, produced: list[dict]) -> dict:
    """The expected contacts with the balances that `produced` (the order the events are sent
    in) gives: the balance follows the order events arrive in (README "Balances"), and each
    customer's events arrive in the order they were sent, as they share a partition."""
    arrived: dict[str, list] = {}
    for event in produced:
        arrived.setdefault(event["customer"]["id"], []).append(parse_event(orjson.dumps(event)))
    balanced = {}
    for cid, want in expected.items():
        mine = arrived[cid]
        by_id = {event.event_id: event for event in mine}
        balance = reference(list(by_id.values()), mine)["balance"]
        balanced[cid] = {**want, "rivoPointsBalance": balance}
    return balanced


def differing_contacts(body, expected) -> list[str]:
    """The customers whose contact at the stand-in is missing or differs from the reference."""
    got = {c["id"]: c for c in body["contacts"]}

    def matches(contact, want):
        props = contact["properties"]
        return (
            contact["email"] == want["email"]
            and props.get("rivoPointsBalance") == want["rivoPointsBalance"]
            and props.get("rivoVipTierName") == want["rivoVipTierName"]
            and props.get("rivoLoyaltyStatus") == want["rivoLoyaltyStatus"]
            and props.get("rivoDateOfBirth") == want["rivoDateOfBirth"]
        )

    return [cid for cid, want in expected.items() if cid not in got or not matches(got[cid], want)]
