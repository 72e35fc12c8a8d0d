"""Campaign triggers: loyalty events → Ometria custom events (design §6); pure.

A trigger fires only for an event younger than the horizon at processing time, so replaying
history rebuilds contacts without re-firing old campaigns. Ids derive from the event id and the
rule, so a redelivered event re-sends the same id (an upsert, not a second event).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from stream.events import (
    LoyaltyEvent,
    PointsEarned,
    PointsRedeemed,
    ReferralCompleted,
    RewardUsed,
    TierChanged,
)
from stream.ometria.records import MAX_PROPERTY_CHARS, CustomEvent, Scalar
from stream.profile import Profile

DEFAULT_TIER_ORDER = ("Bronze", "Silver", "Gold", "Platinum")


@dataclass(frozen=True, slots=True)
class TriggerConfig:
    tier_order: tuple[str, ...] = DEFAULT_TIER_ORDER
    horizon: timedelta = timedelta(hours=24)
    disabled: frozenset[str] = frozenset()


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


_RULES: dict[str, Rule] = {
    "points.earned": _points_earned,
    "points.redeemed": _reward_claimed,
    "reward.used": _reward_used,
    "tier.changed": _tier_changed,
    "referral.completed": _referral_completed,
}


def _flat(properties: dict[str, Scalar]) -> dict[str, Scalar]:
    # Ometria caps string properties at 512 characters; None says nothing, so leave it out.
    return {
        key: value[:MAX_PROPERTY_CHARS] if isinstance(value, str) else value
        for key, value in properties.items()
        if value is not None
    }


def custom_events(
    event: LoyaltyEvent,
    before: Profile | None,
    after: Profile,
    config: TriggerConfig,
    now: datetime,
) -> list[dict[str, Any]]:
    """The custom events an applied event fires (none when too old or no email is known)."""
    rule = _RULES.get(event.type)
    if rule is None or not after.email:
        return []
    if now.astimezone(UTC) - event.occurred_at.astimezone(UTC) > config.horizon:
        return []
    fired = rule(event, before, after, config)
    if fired is None or fired[0] in config.disabled:
        return []
    event_type, properties = fired
    record = CustomEvent(
        id=f"{event.event_id}:{event_type}",
        timestamp=event.occurred_at,
        event_type=event_type,
        identity_email=after.email,
        identity_account_id=after.customer_id,
        properties=_flat(properties),
    )
    return [record.to_json()]
