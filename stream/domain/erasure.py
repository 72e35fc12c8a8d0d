"""Forgetting a customer (GDPR Art. 17): what an erasure means for the records that follow it.

A `customer.erased` event at offset E of an input partition deletes the customer's profile
there. The erasure is kept, under a keyed hash of the id, for good (stream.runtime.erasures):
whatever is read again later (a replay, a rebuilt table, a redrive), a record of that customer
in that partition before E is skipped, and after E only an enrolment starts a profile again.
Pure: the caller looks the erasure up and passes its offset.
"""

from __future__ import annotations

import hashlib
from enum import Enum
from typing import Any

from stream.domain.events import LoyaltyEvent
from stream.domain.profile import Profile

ERASED = "customer.erased"
ENROLLED = "customer.enrolled"
# The outbox record that tells the pusher to forget the customer: never sent to Ometria.
ERASURE_RECORD = "@erasure"
_DIGEST_BYTES = 16


def erased_id(key: bytes, customer_id: str) -> str:
    """The keyed hash that stands for a customer id wherever an erasure is kept or logged.

    Keyed (BLAKE2b's own MAC mode): without the key, a known id cannot be checked against it.
    """
    digest = hashlib.blake2b(customer_id.encode(), key=key, digest_size=_DIGEST_BYTES)
    return digest.hexdigest()


class AfterErasure(Enum):
    """What to do with a record of a customer whose erasure is on record in its partition."""

    FOLD = "fold"  # as any record (an erasure erases): no erasure in the way
    DONE = "done"  # the erasure itself, read again once it took effect: nothing to do
    BEFORE = "before"  # older than the erasure: never folded again
    NOT_ENROLLED = "not_enrolled"  # after the erasure, but only an enrolment starts a profile


def after_erasure(
    event: LoyaltyEvent, profile_offset: int | None, offset: int, erased_at: int | None
) -> AfterErasure:
    """Judge one record at `offset` against the customer's erasure at offset `erased_at`.

    `profile_offset`: the input offset of the customer's stored profile (None: no profile).
    The erasure read again finds a profile older than itself only when a crash came between
    recording the erasure and deleting the profile: it erases again.
    """
    if erased_at is None:
        return AfterErasure.FOLD
    if offset < erased_at:
        return AfterErasure.BEFORE
    if offset == erased_at:
        erasing = profile_offset is not None and profile_offset < erased_at
        return AfterErasure.FOLD if erasing else AfterErasure.DONE
    if profile_offset is not None or event.type in (ENROLLED, ERASED):
        return AfterErasure.FOLD
    return AfterErasure.NOT_ENROLLED


def erasure_for(customer_id: str, profile: Profile | None) -> dict[str, Any]:
    """The erasure record for a customer whose profile (if any) is being deleted."""
    contact = profile.last_contact if profile is not None else None
    contact_id = contact.get("id") if isinstance(contact, dict) else None
    return erasure_record(customer_id, contact_id if isinstance(contact_id, str) else None)


def erasure_record(customer_id: str, contact_id: str | None) -> dict[str, Any]:
    """The outbox record that makes the pusher forget what it keeps of a customer.

    It follows the customer's earlier records in their outbox partition: the pusher drops
    those it has not sent yet and the contact version it kept (`contact_id`: the contact's id
    in Ometria, when a contact was sent).
    """
    return {"@type": ERASURE_RECORD, "customer_id": customer_id, "contact_id": contact_id}
