"""A customer's loyalty profile and the pure fold of one event into it.

See docs/architecture.md#profile-state.

The fold is idempotent (a record at or before the last input position applied, or a recent
event id again, changes nothing), order-tolerant (a late event never rolls a snapshot field
back; deltas apply once) and deterministic. Each snapshot
field remembers the stamp `<occurred_at UTC>|<event_id>` of the event that set it; a value is
replaced only by a strictly newer stamp, so any interleaving yields the same snapshot fields.
The time part is fixed width (`YYYY-MM-DDTHH:MM:SS.ffffffZ`, years 1900-9998 by the contract),
so comparing stamps as text orders them by instant, then by event id: a total order.

The balance follows the rule in `PointsState`; it depends on the order events arrive in, which
Kafka fixes per customer, so redelivery and replay give the same balance.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal, TypeVar

import orjson

from stream.domain import json_bytes
from stream.domain.events import (
    Balance,
    BirthdayUpdated,
    CustomerEnrolled,
    CustomerUpdated,
    LoyaltyEvent,
    MembershipCancelled,
    MembershipStarted,
    PointsAdjusted,
    PointsApproved,
    PointsEarned,
    PointsExpired,
    PointsExpiring,
    PointsRedeemed,
    ReferralCompleted,
    RewardUsed,
    TierChanged,
)

# Redeliveries are caught exactly by the input position; the ids only catch a producer that
# sent one event twice, and such retries follow each other closely.
RECENT_EVENT_IDS = 32
MAX_DELTAS = 256
# Aware datetimes as `...Z` for UTC and `...+01:00` otherwise: the JSON document pydantic wrote
# when the profile was a pydantic model, so stored profiles read and compare as before.
_JSON_OPTIONS = orjson.OPT_UTC_Z

Delta = tuple[str, int, str]  # (stamp, points, credits) of one change of balance


@dataclass(frozen=True)
class PointsState:
    """Counters plus the balance ledger.

    The balance rule (README "Balances"): the balance is the newest platform snapshot (an
    event's `balance`, newest by stamp) plus every change of points it does not account for.
    A snapshot accounts for the changes that reached us before it and are not newer than it;
    a change that arrives after it is added even when its stamp is older (a producer whose
    clock runs ahead, or a late event the platform reported after its snapshot). A snapshot
    older than the newest one already taken is treated as a change of its event's points.

    `base_*` is the newest snapshot plus the changes added to it since; `deltas` holds the
    changes newer than it, so that a newer snapshot arriving later can account for them.
    Beyond `MAX_DELTAS` the oldest are merged into the base (`merged_as_of` is the newest
    merged stamp); a later snapshot older than a merged change cannot tell which of them it
    includes, so it counts as a change too.
    """

    balance: int = 0
    pending: int = 0
    spent: int = 0
    lifetime: int = 0
    credits: str = "0"
    base_points: int = 0
    base_credits: str = "0"
    base_as_of: str = ""
    deltas: tuple[Delta, ...] = ()
    merged_as_of: str = ""

    @property
    def total(self) -> int:
        """Spendable plus pending points (LoyaltyLion's "total points")."""
        return self.balance + self.pending


@dataclass(frozen=True)
class LastReward:
    name: str
    code: str
    expires_at: datetime | None = None
    used: bool = False  # a reward.used with this code came after the claim


@dataclass(frozen=True)
class TierState:
    name: str | None = None
    previous: str | None = None
    expires_at: datetime | None = None
    progress: str | None = None
    next: str | None = None
    progress_to_next: str | None = None
    progress_to_renew: str | None = None
    forecast: str | None = None


@dataclass(frozen=True)
class Profile:
    """Everything known about one customer; values are replaced, never mutated.

    Plain frozen data: the fold builds one per event, and a validating model cost more than
    the fold itself. Its inputs are validated events; stored profiles are read back by
    `from_json`, which refuses a document that is not one.
    """

    customer_id: str
    email: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    loyalty_status: str | None = None
    enrolled_at: datetime | None = None
    blocked: bool = False
    referral_code: str | None = None
    referral_url: str | None = None
    insights_segment: str | None = None
    tags: tuple[str, ...] = ()
    date_of_birth: str | None = None
    points: PointsState = PointsState()
    rewards_claimed: int = 0
    rewards_used: int = 0
    last_reward: LastReward | None = None
    tier: TierState = TierState()
    referrals_completed: int = 0
    points_expire_at: datetime | None = None
    expiring_points: int | None = None
    membership_status: Literal["active", "cancelled"] | None = None
    membership_tier_id: str | None = None
    membership_source: str | None = None
    membership_started_at: datetime | None = None
    membership_ends_at: datetime | None = None
    membership_cancellation_policy: str | None = None
    # Bookkeeping: the stamp that set each snapshot field, recently applied event ids, and
    # the last contact record sent (so an unchanged contact is not sent again).
    as_of: dict[str, str] = field(default_factory=dict)
    input_offset: int = -1  # the last position applied in the customer's input partition
    recent_event_ids: tuple[str, ...] = ()
    last_contact: dict[str, Any] | None = None
    # Time-based triggers already fired, `<due UTC>|<rule>`, kept while they could be due
    # (stream.domain.schedule): a restart or a takeover of the partition does not fire them again.
    schedule_fired: tuple[str, ...] = ()
    # The Ometria lists the last contact sent put the customer in (stream.domain.lists).
    lists: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """The JSON-able table value."""
        document: dict[str, Any] = orjson.loads(self.to_bytes())
        return document

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> Profile:
        """Read a stored profile back (the document `to_json` gives).

        Raises:
            ValueError: the document is not a profile (unknown or missing fields).
        """
        return _profile_of(dict(value))

    def to_bytes(self) -> bytes:
        """The table value: the same document as `to_json`, encoded."""
        return json_bytes.dumps(self, _JSON_OPTIONS)

    @classmethod
    def from_bytes(cls, value: bytes) -> Profile:
        return _profile_of(orjson.loads(value))


_Frozen = TypeVar("_Frozen", "Profile", PointsState)


def evolve(value: _Frozen, changes: Mapping[str, Any]) -> _Frozen:
    """A copy of a profile (or its points) with some fields changed, nothing validated.

    `dataclasses.replace` without its per-field checks and `__init__`: the fold makes a few
    of these per event. `changes` must name fields of the value's class.
    """
    new = object.__new__(type(value))
    object.__setattr__(new, "__dict__", {**value.__dict__, **changes})
    return new


_Stored = TypeVar("_Stored", "Profile", PointsState, LastReward, TierState)


def _names(kind: type) -> tuple[tuple[str, ...], frozenset[str]]:
    names = tuple(f.name for f in fields(kind))
    return names, frozenset(names)


_PROFILE_FIELDS = _names(Profile)
_POINTS_FIELDS = _names(PointsState)
_REWARD_FIELDS = _names(LastReward)
_TIER_FIELDS = _names(TierState)
_PROFILE_DATETIMES = (
    "enrolled_at",
    "points_expire_at",
    "membership_started_at",
    "membership_ends_at",
)


def _build(
    kind: type[_Stored], names: tuple[tuple[str, ...], frozenset[str]], value: Any, what: str
) -> _Stored:
    """A stored object read back: every field given is used, the others take their defaults.

    A complete document (what `to_bytes` writes) skips `__init__`, which costs more than
    parsing the JSON; the fields keep their declared order, the order they are written in.
    """
    order, known = names
    if not isinstance(value, dict):
        raise ValueError(f"not a stored profile: {what} is not an object")
    if not value.keys() <= known:
        unknown = sorted(value.keys() - known)
        raise ValueError(f"not a stored profile: {what} has unknown fields {unknown}")
    if len(value) < len(order):
        return kind(**value)
    new = object.__new__(kind)
    object.__setattr__(new, "__dict__", {name: value[name] for name in order})
    return new


def _when(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    when = datetime.fromisoformat(value)
    if when.tzinfo is None:
        raise ValueError(f"not a stored profile: {value!r} has no UTC offset")
    return when


def _profile_of(value: Any) -> Profile:
    if not isinstance(value, dict) or not isinstance(value.get("customer_id"), str):
        raise ValueError("not a stored profile: no customer_id")
    doc = dict(value)
    for name in _PROFILE_DATETIMES:
        if doc.get(name) is not None:
            doc[name] = _when(doc[name])
    if "points" in doc:
        points = dict(doc["points"]) if isinstance(doc["points"], dict) else doc["points"]
        if isinstance(points, dict) and "deltas" in points:
            points["deltas"] = tuple(tuple(delta) for delta in points["deltas"])
        doc["points"] = _build(PointsState, _POINTS_FIELDS, points, "points")
    if doc.get("last_reward") is not None:
        reward = doc["last_reward"]
        if isinstance(reward, dict) and reward.get("expires_at") is not None:
            reward = {**reward, "expires_at": _when(reward["expires_at"])}
        doc["last_reward"] = _build(LastReward, _REWARD_FIELDS, reward, "last_reward")
    if "tier" in doc:
        tier = doc["tier"]
        if isinstance(tier, dict) and tier.get("expires_at") is not None:
            tier = {**tier, "expires_at": _when(tier["expires_at"])}
        doc["tier"] = _build(TierState, _TIER_FIELDS, tier, "tier")
    for name in ("tags", "recent_event_ids", "schedule_fired", "lists"):
        if name in doc:
            doc[name] = tuple(doc[name])
    return _build(Profile, _PROFILE_FIELDS, doc, "the profile")


@dataclass(frozen=True, slots=True)
class Folded:
    """The outcome of folding one event: the new profile, and whether the event was new."""

    profile: Profile
    applied: bool


def stamp_of(event: LoyaltyEvent) -> str:
    """The order of an event: event time (UTC, fixed width) then event id as a tie-break."""
    at = event.occurred_at.astimezone(UTC)
    # Spelled out rather than strftime: several times cheaper, and %Y does not pad years < 1000.
    return (
        f"{at.year:04d}-{at.month:02d}-{at.day:02d}T{at.hour:02d}:{at.minute:02d}:"
        f"{at.second:02d}.{at.microsecond:06d}Z|{event.event_id}"
    )


_ZERO = Decimal(0)


def _credits(deltas: list[Delta]) -> Decimal:
    """The credits the changes add up to; no generator for none, the usual case."""
    return sum((Decimal(d[2]) for d in deltas), _ZERO) if deltas else _ZERO


class _Draft:
    """Collects the updates one event makes, applying the snapshot and delta rules."""

    def __init__(self, profile: Profile, stamp: str) -> None:
        self.profile = profile
        self.stamp = stamp
        self.updates: dict[str, Any] = {}
        self.as_of = dict(profile.as_of)

    def newer(self, field: str) -> bool:
        return self.stamp > self.as_of.get(field, "")

    def snapshot(self, field: str, value: Any) -> None:
        """Set a field unless a newer event already set it; None means "not given"."""
        if value is not None:
            self.assign(field, value)

    def assign(self, field: str, value: Any) -> None:
        """Set a field, even to None, unless a newer event already set it."""
        if self.newer(field):
            self.updates[field] = value
            self.as_of[field] = self.stamp

    def current(self, field: str) -> Any:
        return self.updates.get(field, getattr(self.profile, field))

    def add(self, field: str, amount: int) -> None:
        self.updates[field] = self.current(field) + amount

    def points(self, **changes: Any) -> None:
        self.updates["points"] = evolve(self.current("points"), changes)

    def _ledger(
        self, points: int, credits: Decimal, as_of: str, deltas: list[Delta], merged: str
    ) -> None:
        if len(deltas) > MAX_DELTAS:
            extra = len(deltas) - MAX_DELTAS
            for stamp, more_points, more_credits in deltas[:extra]:
                points += more_points
                credits += Decimal(more_credits)
                merged = max(merged, stamp)
            deltas = deltas[extra:]
        self.points(
            base_points=points,
            base_credits=str(credits),
            base_as_of=as_of,
            deltas=tuple(deltas),
            merged_as_of=merged,
            balance=points + sum(d[1] for d in deltas) if deltas else points,
            credits=str(credits + _credits(deltas)),
        )

    def balance_delta(self, points: int, credits: Decimal | None) -> None:
        """Record a change of balance (see the rule in `PointsState`)."""
        state: PointsState = self.current("points")
        change = str(credits or 0)
        if self.stamp <= state.base_as_of:
            # The snapshot reached us before this change: it cannot include it.
            self._ledger(
                state.base_points + points,
                Decimal(state.base_credits) + Decimal(change),
                state.base_as_of,
                list(state.deltas),
                state.merged_as_of,
            )
            return
        deltas = list(state.deltas)
        bisect.insort(deltas, (self.stamp, points, change))
        self._ledger(
            state.base_points,
            Decimal(state.base_credits),
            state.base_as_of,
            deltas,
            state.merged_as_of,
        )

    def balance_snapshot(self, balance: Balance | None) -> bool:
        """Take the platform's balance after this event; True when it accounts for the event.

        False for an older snapshot than the one taken (or than a merged change): the event's
        own change then counts as a delta.
        """
        state: PointsState = self.current("points")
        if balance is None or self.stamp <= state.base_as_of or self.stamp < state.merged_as_of:
            return False
        older = [d for d in state.deltas if d[0] <= self.stamp] if state.deltas else []
        newer = [d for d in state.deltas if d[0] > self.stamp] if state.deltas else []
        credits = (
            balance.credits
            if balance.credits is not None
            else Decimal(state.base_credits) + _credits(older)
        )
        self._ledger(balance.points, credits, self.stamp, newer, "")
        return True

    def build(self, event_id: str, offset: int | None) -> Profile:
        recent = (*self.profile.recent_event_ids, event_id)[-RECENT_EVENT_IDS:]
        position = self.profile.input_offset if offset is None else offset
        return evolve(
            self.profile,
            {
                **self.updates,
                "as_of": self.as_of,
                "recent_event_ids": recent,
                "input_offset": position,
            },
        )


def fold(profile: Profile | None, event: LoyaltyEvent, offset: int | None = None) -> Folded:
    """Fold one event into a customer's profile (None: the customer is new).

    `offset`: the event's position in its input partition, when it has one.
    """
    if event.type == "customer.erased":
        raise ValueError("an erasure deletes the profile, it is not folded (stream.domain.erasure)")
    base = profile if profile is not None else Profile(customer_id=event.customer.id)
    if offset is not None and offset <= base.input_offset:
        return Folded(base, applied=False)
    if event.event_id in base.recent_event_ids:
        return Folded(base, applied=False)
    draft = _Draft(base, stamp_of(event))
    customer = event.customer
    # An update's data says what changed; its envelope may still carry the old values.
    changed = event.data if event.type == "customer.updated" else None
    draft.snapshot("email", changed.email if changed and changed.email else customer.email)
    draft.snapshot(
        "first_name", changed.first_name if changed and changed.first_name else customer.first_name
    )
    draft.snapshot(
        "last_name", changed.last_name if changed and changed.last_name else customer.last_name
    )
    # Dispatched on the type's name: a class pattern costs an isinstance check per class tried,
    # and a pydantic model's check goes through its metaclass.
    _FOLDS[event.type](draft, event)
    return Folded(draft.build(event.event_id, offset), applied=True)


def _enrolled(draft: _Draft, event: CustomerEnrolled) -> None:
    data = event.data
    draft.snapshot("loyalty_status", data.loyalty_status)
    draft.snapshot("enrolled_at", data.enrolled_at or event.occurred_at.astimezone(UTC))
    draft.snapshot("referral_code", data.referral_code)
    draft.snapshot("referral_url", data.referral_url)
    draft.snapshot("date_of_birth", data.date_of_birth)


def _updated(draft: _Draft, event: CustomerUpdated) -> None:
    data = event.data
    for name in ("loyalty_status", "blocked"):
        draft.snapshot(name, getattr(data, name))
    draft.snapshot("referral_url", data.referral_url)
    draft.snapshot("insights_segment", data.insights_segment)
    draft.snapshot("tags", tuple(data.tags) if data.tags is not None else None)


def _points_earned(draft: _Draft, event: PointsEarned) -> None:
    data = event.data
    if data.pending:
        # Pending points are not spendable yet, but a balance snapshot still wins.
        draft.points(pending=draft.current("points").pending + data.points)
        draft.balance_snapshot(data.balance)
    else:
        draft.points(lifetime=draft.current("points").lifetime + data.points)
        if not draft.balance_snapshot(data.balance):
            draft.balance_delta(data.points, data.credits)


def _points_redeemed(draft: _Draft, event: PointsRedeemed) -> None:
    data = event.data
    draft.points(spent=draft.current("points").spent + data.points)
    draft.add("rewards_claimed", 1)
    reward = LastReward(name=data.reward.name, code=data.code, expires_at=data.expires_at)
    draft.snapshot("last_reward", reward)
    if not draft.balance_snapshot(data.balance):
        spent_credits = -data.credits if data.credits is not None else None
        draft.balance_delta(-data.points, spent_credits)


def _points_approved(draft: _Draft, event: PointsApproved) -> None:
    points = event.data.points
    now = draft.current("points")
    draft.points(pending=now.pending - points, lifetime=now.lifetime + points)
    if not draft.balance_snapshot(event.data.balance):
        draft.balance_delta(points, None)


def _membership_started(draft: _Draft, event: MembershipStarted) -> None:
    data = event.data
    draft.snapshot("membership_status", "active")
    draft.snapshot("membership_tier_id", data.membership_tier_id)
    draft.snapshot("membership_source", data.source)
    draft.snapshot("membership_started_at", data.started_at or event.occurred_at)
    # A (re)start supersedes an earlier cancellation's end.
    draft.assign("membership_ends_at", data.ends_at)
    draft.assign("membership_cancellation_policy", None)


def _membership_cancelled(draft: _Draft, event: MembershipCancelled) -> None:
    data = event.data
    draft.snapshot("membership_status", "cancelled")
    draft.snapshot("membership_tier_id", data.membership_tier_id)
    draft.snapshot("membership_source", data.source)
    draft.assign("membership_ends_at", data.ends_at)
    draft.assign("membership_cancellation_policy", data.cancellation_policy)


def _reward_used(draft: _Draft, event: RewardUsed) -> None:
    draft.add("rewards_used", 1)
    reward = draft.current("last_reward")
    if reward is not None and reward.code == event.data.code and not reward.used:
        draft.assign("last_reward", replace(reward, used=True))


def _referral_completed(draft: _Draft, event: ReferralCompleted) -> None:
    draft.add("referrals_completed", 1)


def _birthday_updated(draft: _Draft, event: BirthdayUpdated) -> None:
    draft.snapshot("date_of_birth", event.data.date_of_birth)


def _points_expired(draft: _Draft, event: PointsExpired) -> None:
    if not draft.balance_snapshot(event.data.balance):
        draft.balance_delta(-event.data.points, None)


def _points_adjusted(draft: _Draft, event: PointsAdjusted) -> None:
    if not draft.balance_snapshot(event.data.balance):
        draft.balance_delta(event.data.points, None)


def _points_expiring(draft: _Draft, event: PointsExpiring) -> None:
    draft.snapshot("points_expire_at", event.data.expires_at)
    draft.snapshot("expiring_points", event.data.points)


def _tier_changed(draft: _Draft, event: TierChanged) -> None:
    data = event.data
    # The tier fields travel together: a newer change replaces the whole group.
    tier = TierState(
        name=data.tier,
        previous=data.previous_tier,
        expires_at=data.tier_expires_at,
        progress=_text(data.progress),
        next=data.next_tier,
        progress_to_next=_text(data.progress_to_next),
        progress_to_renew=_text(data.progress_to_renew),
        forecast=data.forecast_tier,
    )
    draft.snapshot("tier", tier)


def _text(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


# Every event type but customer.erased (which is not folded), by its `type`.
_FOLDS: dict[str, Callable[[_Draft, Any], None]] = {
    "customer.enrolled": _enrolled,
    "customer.updated": _updated,
    "points.earned": _points_earned,
    "points.redeemed": _points_redeemed,
    "reward.used": _reward_used,
    "tier.changed": _tier_changed,
    "referral.completed": _referral_completed,
    "birthday.updated": _birthday_updated,
    "points.approved": _points_approved,
    "points.expired": _points_expired,
    "points.adjusted": _points_adjusted,
    "points.expiring": _points_expiring,
    "membership.started": _membership_started,
    "membership.cancelled": _membership_cancelled,
}
