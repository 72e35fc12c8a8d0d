"""A simple model of the profile fields over distinct events, for property tests of the fold
and for checking what Ometria ends up with."""

from __future__ import annotations

from stream.domain.profile import stamp_of

BALANCE_SIGN = {
    "points.earned": 1, "points.approved": 1, "points.adjusted": 1,
    "points.redeemed": -1, "points.expired": -1,
}  # fmt: skip


def _latest(ordered, event_type, value):
    found = [value(e) for e in ordered if e.type == event_type]
    return found[-1] if found else None


def reference_balance(arrived):
    """The balance rule over the distinct events in the order they arrived (README "Balances").

    The newest snapshot by stamp, plus every change it does not account for: one stamped after
    it or one that arrived after it.
    """
    snapshots = [e for e in arrived if getattr(e.data, "balance", None) is not None]
    newest = max(snapshots, key=stamp_of, default=None)
    balance, since, position = 0, "", -1
    if newest is not None:
        balance, since = newest.data.balance.points, stamp_of(newest)
        position = arrived.index(newest)
    for n, e in enumerate(arrived):
        pending = getattr(e.data, "pending", False)
        if e is newest or e.type not in BALANCE_SIGN or pending:
            continue
        if stamp_of(e) > since or n > position:
            balance += BALANCE_SIGN[e.type] * e.data.points
    return balance


def reference(events, arrived=None):
    """The profile fields as a simple model defines them over the distinct events.

    `arrived`: the stream as folded (duplicates included); the balance depends on it.
    """
    ordered = sorted({e.event_id: e for e in events}.values(), key=stamp_of)
    first_arrivals: dict[str, object] = {}
    for e in arrived or ordered:
        first_arrivals.setdefault(e.event_id, e)
    balance = reference_balance(list(first_arrivals.values()))
    earned = [e for e in ordered if e.type == "points.earned"]
    approved = sum(e.data.points for e in ordered if e.type == "points.approved")
    redeemed = [e for e in ordered if e.type == "points.redeemed"]
    emails = [e.customer.email for e in ordered if e.customer.email]
    membership = [e for e in ordered if e.type.startswith("membership.")]
    started = [e for e in membership if e.type == "membership.started"]
    return {
        "balance": balance,
        "pending": sum(e.data.points for e in earned if e.data.pending) - approved,
        "lifetime": sum(e.data.points for e in earned if not e.data.pending) + approved,
        "spent": sum(e.data.points for e in redeemed),
        "rewards_claimed": len(redeemed),
        "email": emails[-1] if emails else None,
        "tier": _latest(ordered, "tier.changed", lambda e: e.data.tier),
        "expiring_points": _latest(ordered, "points.expiring", lambda e: e.data.points),
        "membership_status": (
            {"membership.started": "active", "membership.cancelled": "cancelled"}[
                membership[-1].type
            ]
            if membership
            else None
        ),
        "membership_tier_id": started[-1].data.membership_tier_id if started else None,
    }
