"""Valid loyalty events for the benchmarks, keyed by customer id, per the README's contract.

Every customer is enrolled (with an email, so Ometria contacts are produced) before any other
event of theirs; the rest follows a configurable type mix, mostly `points.earned`. Balances are
tracked per customer so the `balance` snapshots and redemptions are consistent. Event ids are
random UUIDs (unique), times carry an offset.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

# Share of each type among the events that follow the enrolments (weights, any scale).
DEFAULT_MIX: dict[str, float] = {
    "points.earned": 70,
    "points.redeemed": 5,
    "reward.used": 4,
    "points.approved": 4,
    "customer.updated": 4,
    "tier.changed": 4,
    "points.expiring": 3,
    "referral.completed": 2,
    "birthday.updated": 2,
    "points.adjusted": 2,
}
TIERS = ("Bronze", "Silver", "Gold", "Platinum")
ACTIONS = ("placed_order", "placed_order", "placed_order", "product_review", "social_follow")
REWARDS = (("$5 off coupon", 100, "5.00"), ("$10 off coupon", 200, "10.00"))
FIRST_CUSTOMER_ID = 7_294_851_000_000  # 13 digits, like Shopify customer ids

Record = tuple[bytes, bytes]  # (key, value)


def parse_mix(text: str) -> dict[str, float]:
    """`points.earned=80,tier.changed=5,...` → weights; unknown types are refused."""
    known = {*DEFAULT_MIX, *_BUILDERS}
    mix: dict[str, float] = {}
    for item in text.split(","):
        name, sep, weight = item.strip().partition("=")
        if not sep or name not in known:
            raise ValueError(
                f"bad mix entry {item!r}; use TYPE=WEIGHT with TYPE in {sorted(known)}"
            )
        mix[name] = float(weight)
    if not mix or sum(mix.values()) <= 0:
        raise ValueError("the mix needs at least one positive weight")
    return mix


def customer_id(index: int) -> str:
    return str(FIRST_CUSTOMER_ID + index)


@dataclass
class _Customer:
    id: str
    email: str
    balance: int = 0
    pending: int = 0
    tier: int = 0
    unused: list[tuple[str, str]] = field(default_factory=list)  # (redemption_id, code)


class EventGenerator:
    """Builds events; `clock()` gives each event's occurred_at (an aware datetime)."""

    def __init__(
        self,
        *,
        mix: dict[str, float] | None = None,
        seed: int = 1,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self._rng = random.Random(seed)  # noqa: S311 (reproducible test data, not secrets)
        mix = mix or DEFAULT_MIX
        self._types = list(mix)
        self._weights = [mix[t] for t in self._types]
        self._clock = clock or (lambda: datetime.now(UTC))
        self.customers: list[_Customer] = []

    # --- whole streams ------------------------------------------------------------------

    def stream(self, events: int, customers: int) -> Iterator[Record]:
        """`events` events for `customers` customers: enrolments spread evenly through the
        stream (each customer's first event), the rest of the mix for enrolled customers."""
        to_enrol = min(customers, events)
        for index in range(events):
            left = events - index
            if to_enrol and (not self.customers or self._rng.random() < to_enrol / left):
                yield self.enrol(len(self.customers))
                to_enrol -= 1
            else:
                yield self.activity()

    def enrol(self, index: int) -> Record:
        """The enrolment of customer `index` (with email and names)."""
        cid = customer_id(index)
        customer = _Customer(cid, f"c{cid}@example.com")
        self.customers.append(customer)
        code = self._token(12)
        data: dict[str, Any] = {
            "loyalty_status": "member",
            "referral_code": code,
            "referral_url": f"https://shop.example.com/r/{code}",
        }
        if self._rng.random() < 0.5:
            data["date_of_birth"] = self._month_day()
        identity = {"id": cid, "email": customer.email, "first_name": "Alex", "last_name": "Doe"}
        return self._event("customer.enrolled", customer, data, identity)

    def existing(self, index: int) -> _Customer:
        """Customer `index` as enrolled before this generator (in a changelog figure f's code
        wrote), for `activity`: no event; balances here start at 0 whatever the profile holds."""
        cid = customer_id(index)
        return _Customer(cid, f"c{cid}@example.com")

    def activity(self, customer: _Customer | None = None) -> Record:
        """One event of the mix for an enrolled customer (a random one unless given)."""
        who = customer or self._rng.choice(self.customers)
        kind = self._rng.choices(self._types, self._weights)[0]
        built = _BUILDERS[kind](self, who)
        if built is None:  # not possible for this customer now (nothing to redeem, ...)
            kind, built = "points.earned", self._earned(who)
        return self._event(kind, who, built)

    # --- one event ----------------------------------------------------------------------

    def _event(
        self,
        kind: str,
        customer: _Customer,
        data: dict[str, Any],
        identity: dict[str, Any] | None = None,
    ) -> Record:
        doc = {
            "event_id": str(uuid.UUID(int=self._rng.getrandbits(128), version=4)),
            "type": kind,
            "occurred_at": self._clock().isoformat(timespec="milliseconds"),
            "source": "rivo",
            "customer": identity or self._identity(customer),
            "data": data,
        }
        return customer.id.encode(), orjson.dumps(doc)

    def _identity(self, c: _Customer) -> dict[str, Any]:
        # Producers send the email with some events only.
        return {"id": c.id, "email": c.email} if self._rng.random() < 0.5 else {"id": c.id}

    def _earned(self, c: _Customer) -> dict[str, Any]:
        points = self._rng.choice((10, 25, 50, 100, 150, 250))
        if self._rng.random() < 0.1:
            c.pending += points
            return {"points": points, "pending": True, "action": "placed_order"}
        c.balance += points
        action = self._rng.choice(ACTIONS)
        return {"points": points, "action": action, "balance": {"points": c.balance}}

    def _redeemed(self, c: _Customer) -> dict[str, Any] | None:
        name, cost, value = self._rng.choice(REWARDS)
        if c.balance < cost:
            return None
        c.balance -= cost
        redemption, code = str(self._rng.randrange(10**7, 10**8)), f"REDEEM-{self._token(12)}"
        c.unused.append((redemption, code))
        reward = {"id": "594155", "name": name, "reward_type": "fixed_amount", "value": value}
        return {
            "redemption_id": redemption,
            "code": code,
            "reward": reward,
            "points": cost,
            "balance": {"points": c.balance},
        }

    def _used(self, c: _Customer) -> dict[str, Any] | None:
        if not c.unused:
            return None
        redemption, code = c.unused.pop()
        order = str(self._rng.randrange(10**6, 10**7))
        return {"redemption_id": redemption, "code": code, "order_id": order}

    def _approved(self, c: _Customer) -> dict[str, Any] | None:
        if not c.pending:
            return None
        points, c.pending = c.pending, 0
        c.balance += points
        return {"points": points, "balance": {"points": c.balance}}

    def _updated(self, c: _Customer) -> dict[str, Any]:
        segment = self._rng.choice(("Loyal", "At Risk", "Win Back"))
        return {"insights_segment": segment, "tags": ["vip"] if c.tier >= 2 else []}

    def _tier(self, c: _Customer) -> dict[str, Any]:
        before = c.tier
        up = before == 0 or (before < len(TIERS) - 1 and self._rng.random() < 0.8)
        c.tier = before + 1 if up else before - 1
        data: dict[str, Any] = {
            "tier": TIERS[c.tier],
            "previous_tier": TIERS[before],
            "direction": "up" if up else "down",
            "progress_to_next": f"{self._rng.randrange(0, 500)}.00",
        }
        if c.tier + 1 < len(TIERS):
            data["next_tier"] = TIERS[c.tier + 1]
        return data

    def _expiring(self, c: _Customer) -> dict[str, Any] | None:
        if c.balance <= 0:
            return None
        expires = self._clock() + timedelta(days=30)
        return {"points": min(c.balance, 50), "expires_at": expires.isoformat()}

    def _referral(self, c: _Customer) -> dict[str, Any]:
        return {"referred_customer_id": customer_id(self._rng.randrange(10**6))}

    def _birthday(self, c: _Customer) -> dict[str, Any]:
        return {"date_of_birth": self._month_day()}

    def _adjusted(self, c: _Customer) -> dict[str, Any]:
        points = self._rng.choice((-20, -10, 10, 20, 50))
        points = max(points, -c.balance)
        c.balance += points
        return {"points": points, "reason": "goodwill", "balance": {"points": c.balance}}

    def _expired(self, c: _Customer) -> dict[str, Any] | None:
        if c.balance <= 0:
            return None
        points = min(c.balance, 25)
        c.balance -= points
        return {"points": points, "reason": "expiry", "balance": {"points": c.balance}}

    def _month_day(self) -> str:
        return f"{self._rng.randrange(1, 13):02d}-{self._rng.randrange(1, 29):02d}"

    def _token(self, length: int) -> str:
        return f"{self._rng.getrandbits(4 * length):0{length}x}"


_BUILDERS: dict[str, Callable[[EventGenerator, _Customer], dict[str, Any] | None]] = {
    "points.earned": EventGenerator._earned,
    "points.redeemed": EventGenerator._redeemed,
    "reward.used": EventGenerator._used,
    "points.approved": EventGenerator._approved,
    "customer.updated": EventGenerator._updated,
    "tier.changed": EventGenerator._tier,
    "points.expiring": EventGenerator._expiring,
    "referral.completed": EventGenerator._referral,
    "birthday.updated": EventGenerator._birthday,
    "points.adjusted": EventGenerator._adjusted,
    "points.expired": EventGenerator._expired,
}


def ticking_clock(start: datetime, step: timedelta) -> Callable[[], datetime]:
    """A clock that advances by `step` on every reading (pre-produced streams)."""
    state = {"now": start}

    def clock() -> datetime:
        state["now"] += step
        return state["now"]

    return clock
