"""What one loyalty event produces: the new profile and the Ometria records to send; pure."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from stream.domain.contact_mapping import map_contact
from stream.domain.declared import by_event_type
from stream.domain.events import LoyaltyEvent
from stream.domain.lists import membership, with_changes
from stream.domain.mapping import MappingFile
from stream.domain.profile import Profile, evolve, fold
from stream.domain.triggers import RewardCost, TriggerConfig, fire
from stream.settings import Settings


@dataclass(frozen=True, slots=True)
class SyncRules:
    """The configured parts of the sync step."""

    mapping: MappingFile
    collection: str
    triggers: TriggerConfig

    @classmethod
    def from_settings(cls, settings: Settings, mapping: MappingFile) -> SyncRules:
        """The rules the settings and the loaded mapping describe."""
        return cls(
            mapping=mapping,
            collection=settings.ometria.collection,
            triggers=TriggerConfig(
                tier_order=tuple(settings.triggers.tier_order),
                horizon=settings.triggers.horizon,
                future_skew=settings.events.future_skew,
                disabled=frozenset(settings.triggers.disabled),
                rewards=tuple(RewardCost(n, p) for n, p in settings.triggers.rewards.items()),
                options=mapping.triggers,
                declared=by_event_type(mapping.declared),
            ),
        )


@dataclass(frozen=True, slots=True)
class Outcome:
    profile: Profile
    records: tuple[dict[str, Any], ...]
    applied: bool
    suppressed: tuple[str, ...] = ()  # reasons of the custom events held back (see triggers)


def apply_event(
    profile: Profile | None,
    event: LoyaltyEvent,
    rules: SyncRules,
    now: datetime,
    offset: int | None = None,
    *,
    replayed: bool = False,
) -> Outcome:
    """Fold an event and fire its custom events; the contact is left to `contact_update`.

    `offset` is the event's position in its partition (every event of a customer shares one):
    a redelivered record, at or before the last position applied, changes nothing. `replayed`
    folds an event that fired its campaigns the first time (`python -m stream replay`): they
    are held back with the reason "replayed".
    """
    folded = fold(profile, event, offset=offset)
    if not folded.applied:
        return Outcome(folded.profile, (), applied=False)
    fired = fire(event, profile, folded.profile, rules.triggers, now)
    if replayed:
        held = fired.suppressed + ("replayed",) * len(fired.records)
        return Outcome(folded.profile, (), applied=True, suppressed=held)
    return Outcome(folded.profile, tuple(fired.records), applied=True, suppressed=fired.suppressed)


def contact_update(profile: Profile, rules: SyncRules) -> tuple[Profile, dict[str, Any] | None]:
    """The contact to send when its mapped content changed since the last one sent, if any.

    Called once per customer after any number of folded events: the contact is the customer's
    latest, whatever happened in between.
    """
    contact = map_contact(profile, rules.mapping.contact, rules.collection)
    if contact is None:
        return profile, None
    if not rules.mapping.lists:
        if contact == profile.last_contact:
            return profile, None
        return evolve(profile, {"last_contact": contact}), contact
    lists = membership(profile, rules.mapping.lists)
    if contact == profile.last_contact and lists == profile.lists:
        return profile, None
    record = with_changes(contact, profile.lists, lists)
    return evolve(profile, {"last_contact": contact, "lists": lists}), record
