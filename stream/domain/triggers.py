"""Campaign triggers: loyalty events → Ometria custom events; pure.

See docs/architecture.md#campaign-triggers.

A trigger fires only for an event younger than the horizon at processing time, so replaying
history rebuilds contacts without re-firing old campaigns, and not ahead of the clock by more
than the allowed skew; a tier event the profile already knows better (a late one) fires
nothing. Each custom event held back this way is reported with its reason (`Firing`), for the
caller to count. Ids are
`{customer_id}:{event_id}:{rule}[:{suffix}]`: derived from the event alone, so a retried,
redelivered or replayed event re-sends the same id (an upsert, not a second event). The customer
is part of it because two customers' events may carry the same producer event id.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from stream.domain.conditions import (
    Condition,
    ConditionError,
    Variables,
    check,
    compile_condition,
)
from stream.domain.declared import DeclaredRule, fire_declared
from stream.domain.events import (
    LoyaltyEvent,
    MembershipCancelled,
    PointsEarned,
    PointsExpiring,
    PointsRedeemed,
    ReferralCompleted,
    RewardUsed,
    TierChanged,
)
from stream.domain.profile import Profile
from stream.domain.records import (
    MAX_EVENT_TYPE_CHARS,
    MAX_PROPERTY_CHARS,
    Scalar,
    custom_event_record,
)
from stream.errors import ConfigurationError, MappingError

DEFAULT_TIER_ORDER = ("Bronze", "Silver", "Gold", "Platinum")


@dataclass(frozen=True, slots=True)
class TriggerOptions:
    """A user's choices for one rule: off, another event type, fewer properties, a condition."""

    enabled: bool = True
    event_type: str | None = None
    properties: frozenset[str] | None = None
    condition: Condition | None = None


@dataclass(frozen=True, slots=True)
class RewardCost:
    name: str
    points: int


@dataclass(frozen=True, slots=True)
class TriggerConfig:
    tier_order: tuple[str, ...] = DEFAULT_TIER_ORDER
    horizon: timedelta = timedelta(hours=24)
    future_skew: timedelta = timedelta(minutes=5)
    disabled: frozenset[str] = frozenset()
    rewards: tuple[RewardCost, ...] = ()
    options: dict[str, TriggerOptions] = field(default_factory=dict)
    # A mapping file's own rules, by the event type that triggers them.
    declared: dict[str, tuple[DeclaredRule, ...]] = field(default_factory=dict)


_ALL_DEFAULTS = TriggerOptions()
Fired = tuple[str, dict[str, Scalar]]
Rule = Callable[[Any, Profile | None, Profile, TriggerConfig], Fired | None]


def _points_earned(event: PointsEarned, _: Profile | None, after: Profile, __: Any) -> Fired:
    return "loyalty_points_earned", {
        "points": event.data.points,
        "pending": event.data.pending,
        "action": event.data.action,
        "points_balance": after.points.balance,
    }


def _reward_claimed(event: PointsRedeemed, _: Profile | None, after: Profile, __: Any) -> Fired:
    reward = event.data.reward
    expires = event.data.expires_at
    return "loyalty_reward_claimed", {
        "reward_name": reward.name,
        "reward_code": event.data.code,
        "reward_value": reward.value,
        "reward_type": reward.reward_type,
        "expires_at": expires.isoformat() if expires else None,
        "points_spent": event.data.points,
        "points_balance": after.points.balance,
    }


def _reward_used(event: RewardUsed, *_: Any) -> Fired:
    return "loyalty_reward_used", {
        "reward_code": event.data.code,
        "redemption_id": event.data.redemption_id,
        "order_id": event.data.order_id,
    }


def _tier_changed(
    event: TierChanged, before: Profile | None, _: Profile, config: TriggerConfig
) -> Fired | None:
    data = event.data
    previous = data.previous_tier or (before.tier.name if before else None)
    if previous is None or previous.casefold() == data.tier.casefold():
        return None
    direction = data.direction or _direction(previous, data.tier, config.tier_order)
    name = {"up": "loyalty_tier_upgraded", "down": "loyalty_tier_downgraded"}.get(
        direction or "", "loyalty_tier_changed"
    )
    expires = data.tier_expires_at
    return name, {
        "tier": data.tier,
        "previous_tier": previous,
        "next_tier": data.next_tier,
        "tier_expires_at": expires.isoformat() if expires else None,
    }


def _direction(previous: str, tier: str, order: tuple[str, ...]) -> str | None:
    ranks = {name.casefold(): rank for rank, name in enumerate(order)}
    old, new = ranks.get(previous.casefold()), ranks.get(tier.casefold())
    if old is None or new is None or old == new:
        return None
    return "up" if new > old else "down"


def _referral_completed(event: ReferralCompleted, _: Any, after: Profile, __: Any) -> Fired:
    reward = event.data.reward
    return "loyalty_referral_completed", {
        "referred_customer_id": event.data.referred_customer_id,
        "reward_name": reward.name if reward else None,
        "referrals_completed": after.referrals_completed,
    }


def _membership_cancelled(event: MembershipCancelled, *_: Any) -> Fired:
    ends = event.data.ends_at
    return "loyalty_membership_cancelled", {
        "membership_tier_id": event.data.membership_tier_id,
        "cancellation_policy": event.data.cancellation_policy,
        "ends_at": ends.isoformat() if ends else None,
    }


def _points_expiring(event: PointsExpiring, _: Any, after: Profile, __: Any) -> Fired:
    return "loyalty_points_expiring", {
        "points": event.data.points,
        "expires_at": event.data.expires_at.isoformat(),
        "points_balance": after.points.balance,
    }


_RULES: dict[str, Rule] = {
    "points.earned": _points_earned,
    "points.redeemed": _reward_claimed,
    "reward.used": _reward_used,
    "tier.changed": _tier_changed,
    "referral.completed": _referral_completed,
    "membership.cancelled": _membership_cancelled,
    "points.expiring": _points_expiring,
}
_TIER = ("tier", "previous_tier", "next_tier", "tier_expires_at")
# Every rule and the properties it can send (a user mapping may keep a subset).
RULE_PROPERTIES: dict[str, tuple[str, ...]] = {
    "loyalty_points_earned": ("points", "pending", "action", "points_balance"),
    "loyalty_reward_claimed": (
        "reward_name", "reward_code", "reward_value", "reward_type", "expires_at",
        "points_spent", "points_balance",
    ),
    "loyalty_reward_used": ("reward_code", "redemption_id", "order_id"),
    "loyalty_tier_upgraded": _TIER,
    "loyalty_tier_downgraded": _TIER,
    "loyalty_tier_changed": _TIER,
    "loyalty_referral_completed": ("referred_customer_id", "reward_name", "referrals_completed"),
    "loyalty_membership_cancelled": ("membership_tier_id", "cancellation_policy", "ends_at"),
    "loyalty_reward_available": ("reward_name", "reward_points", "points_balance"),
    "loyalty_points_expiring": ("points", "expires_at", "points_balance"),
}  # fmt: skip
RULE_NAMES = tuple(RULE_PROPERTIES)
# The event types each rule fires for, which its condition's `event.data` fields must exist on
# (None: any event that changes the balance).
RULE_EVENT_TYPES: dict[str, tuple[str, ...] | None] = {
    "loyalty_points_earned": ("points.earned",),
    "loyalty_reward_claimed": ("points.redeemed",),
    "loyalty_reward_used": ("reward.used",),
    "loyalty_tier_upgraded": ("tier.changed",),
    "loyalty_tier_downgraded": ("tier.changed",),
    "loyalty_tier_changed": ("tier.changed",),
    "loyalty_referral_completed": ("referral.completed",),
    "loyalty_membership_cancelled": ("membership.cancelled",),
    "loyalty_reward_available": None,
    "loyalty_points_expiring": ("points.expiring",),
}


class TriggerOptionsError(ConfigurationError):
    """A built-in rule's options are invalid; the message says what and how to fix it.

    `at` narrows the place within the rule's options (e.g. its condition), for the caller's
    message.
    """

    def __init__(self, message: str, at: str = "") -> None:
        super().__init__(message)
        self.at = at


def parse_options(
    name: str,
    *,
    enabled: bool = True,
    event_type: str | None = None,
    properties: Iterable[str] | None = None,
    condition: str | None = None,
) -> TriggerOptions:
    """The checked options of the built-in rule `name`: a known rule, properties it has, and a
    condition that compiles over the fields of the events it fires for."""
    if name not in RULE_NAMES:
        raise TriggerOptionsError(f"unknown rule; use one of {', '.join(RULE_NAMES)}")
    chosen = frozenset(properties) if properties is not None else None
    unknown = (chosen or frozenset()) - set(RULE_PROPERTIES[name])
    if unknown:
        raise TriggerOptionsError(
            f"{name} has no properties {sorted(unknown)}; "
            f"choose from {', '.join(RULE_PROPERTIES[name])}"
        )
    compiled = None
    if condition is not None:
        try:
            compiled = compile_condition(condition, event_types=RULE_EVENT_TYPES[name])
        except ConditionError as exc:
            raise TriggerOptionsError(str(exc), at=f", condition {condition!r}") from None
    return TriggerOptions(
        enabled=enabled, event_type=event_type, properties=chosen, condition=compiled
    )


class TriggerEntry(BaseModel):
    """A `[triggers.<rule>]` table as written in a mapping file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    event_type: str | None = Field(default=None, min_length=1, max_length=MAX_EVENT_TYPE_CHARS)
    properties: list[str] | None = None
    condition: str | None = Field(default=None, min_length=1)


def parse_triggers(origin: str, entries: dict[str, TriggerEntry]) -> dict[str, TriggerOptions]:
    """The options of the built-in rules a mapping file's `[triggers.<rule>]` tables set."""
    triggers: dict[str, TriggerOptions] = {}
    for name, options in entries.items():
        try:
            triggers[name] = parse_options(name, **options.model_dump())
        except TriggerOptionsError as exc:
            raise MappingError(f"{origin}, [triggers.{name}]{exc.at}: {exc}") from None
    return triggers


def _rewards_available(
    before: Profile | None, after: Profile, config: TriggerConfig
) -> list[tuple[str, str, dict[str, Scalar]]]:
    """A reward becomes available when the balance crosses its cost upwards (each crossing)."""
    if not config.rewards:
        return []
    old = before.points.balance if before else 0
    new = after.points.balance
    return [
        (
            "loyalty_reward_available",
            _reward_key(reward.name),
            {"reward_name": reward.name, "reward_points": reward.points, "points_balance": new},
        )
        for reward in config.rewards
        if old < reward.points <= new
    ]


def _reward_key(name: str) -> str:
    """A readable, unique id part for a reward: '£5 off' → '5-off-1a2b3c4d'."""
    slug = "".join(ch if ch.isascii() and ch.isalnum() else "-" for ch in name.casefold())
    slug = re.sub("-+", "-", slug).strip("-")
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]  # '£5 off' and '$5 off' differ
    return f"{slug}-{digest}" if slug else digest


def _flat(properties: dict[str, Scalar], keep: frozenset[str] | None) -> dict[str, Scalar]:
    # Ometria caps string properties at 512 characters; None says nothing, so leave it out.
    return {
        key: value[:MAX_PROPERTY_CHARS] if isinstance(value, str) else value
        for key, value in properties.items()
        if value is not None and (keep is None or key in keep)
    }


@dataclass(frozen=True, slots=True)
class Firing:
    """The custom events an event fires, and one reason per custom event held back."""

    records: list[dict[str, Any]]
    suppressed: tuple[str, ...] = ()  # "horizon", "stale" or "no_email"


def _stale(event: LoyaltyEvent, before: Profile | None, after: Profile) -> bool:
    # A tier event older than the tier the profile holds changes nothing it would announce.
    return event.type == "tier.changed" and before is not None and after.tier == before.tier


def fire(
    event: LoyaltyEvent,
    before: Profile | None,
    after: Profile,
    config: TriggerConfig,
    now: datetime,
) -> Firing:
    """The custom events an applied event fires; those held back are counted by reason."""
    fired: list[tuple[str, str, dict[str, Scalar]]] = []
    rule = _RULES.get(event.type)
    if rule is not None and (result := rule(event, before, after, config)) is not None:
        fired.append((result[0], "", result[1]))
    fired.extend(_rewards_available(before, after, config))
    declared = config.declared.get(event.type) if config.declared else None
    chosen = []
    for name, suffix, properties in fired:
        options = config.options.get(name, _ALL_DEFAULTS)
        if name not in config.disabled and options.enabled:
            chosen.append((name, suffix, properties, options))
    if not chosen and not declared:
        return Firing([])
    age = now - event.occurred_at  # aware datetimes: compared in UTC
    if age > config.horizon or -age > config.future_skew:
        return Firing([], ("horizon",) * len(chosen))
    if _stale(event, before, after):
        return Firing([], ("stale",) * len(chosen))
    if not after.email:
        return Firing([], ("no_email",) * len(chosen))
    # Conditions and declared rules are evaluated only for an event that may fire, over
    # variables built once per event (stream.domain.conditions); a condition that does not hold
    # means the rule does not apply, which is not a suppression.
    variables: Variables | None = None
    if declared:
        variables = Variables(event, before, after, now)
        for name, suffix, properties in fire_declared(declared, variables):
            options = config.options.get(name, _ALL_DEFAULTS)
            if name not in config.disabled and options.enabled:
                chosen.append((name, suffix, properties, options))
    records = []
    for name, suffix, properties, options in chosen:
        if options.condition is not None:
            if variables is None:
                variables = Variables(event, before, after, now)
            if not check(options.condition, variables):
                continue
        # The id follows the rule, not its configured name, so renaming never re-sends.
        record = custom_event_record(
            id=f"{event.customer.id}:{event.event_id}:{name}" + (f":{suffix}" if suffix else ""),
            timestamp=event.occurred_at,
            event_type=options.event_type or name,
            identity_email=after.email,
            identity_account_id=after.customer_id,
            properties=_flat(properties, options.properties),
        )
        records.append(record)
    return Firing(records)
