"""What one loyalty event produces: the new profile and the Ometria records to send; pure."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from stream.events import LoyaltyEvent
from stream.ometria.mapping import ContactMapping, map_contact
from stream.profile import Profile, fold
from stream.triggers import TriggerConfig, custom_events


@dataclass(frozen=True, slots=True)
class SyncRules:
    """The configured parts of the sync step."""

    mapping: ContactMapping
    collection: str
    triggers: TriggerConfig


@dataclass(frozen=True, slots=True)
class Outcome:
    profile: Profile
    records: tuple[dict[str, Any], ...]
    applied: bool


def sync_event(
    profile: Profile | None, event: LoyaltyEvent, rules: SyncRules, now: datetime
) -> Outcome:
    """Fold an event, then map: a contact when its content changed, and any custom events.

    A duplicate (already applied) event yields the profile unchanged and no records.
    """
    folded = fold(profile, event)
    if not folded.applied:
        return Outcome(folded.profile, (), applied=False)
    after = folded.profile
    records: list[dict[str, Any]] = []
    contact = map_contact(after, rules.mapping, rules.collection)
    if contact is not None and contact != after.last_contact:
        records.append(contact)
        after = after.model_copy(update={"last_contact": contact})
    records.extend(custom_events(event, profile, after, rules.triggers, now))
    return Outcome(after, tuple(records), applied=True)
