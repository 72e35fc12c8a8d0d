"""Ometria push records (contact, custom_event) as validated models, serialised with orjson."""

from __future__ import annotations

from typing import Any, Literal

import orjson
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

Scalar = str | int | float | bool | None
# Ometria's documented limits (ometria-api.md §2.1, §3.2).
MAX_EVENT_TYPE_CHARS = 32
MAX_PROPERTY_CHARS = 512
MAX_RECORD_BYTES = 60 * 1024
MAX_RECORDS_PER_REQUEST = 100

RecordType = Literal["contact", "custom_event"]

# Our own bookkeeping on an outbox record (the contact's per-customer version): kept in the
# outbox and in dead letters, never sent to Ometria.
VERSION_KEY = "@version"
PRIVATE_KEYS = frozenset({VERSION_KEY})


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    def to_json(self) -> dict[str, Any]:
        """The record as Ometria expects it: aliases, no empty fields."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class Contact(_Record):
    type: Literal["contact"] = Field(default="contact", alias="@type")
    collection: str = Field(alias="@collection")
    id: str = Field(min_length=1)
    customer_id: str
    email: str
    prefix: str | None = None
    firstname: str | None = None
    middlename: str | None = None
    lastname: str | None = None
    date_of_birth: str | None = None
    gender: Literal["m", "f", "o"] | None = None
    phone_number: str | None = None
    country_id: str | None = None
    timezone: str | None = None
    timestamp_acquired: AwareDatetime | None = None
    # Only ever set by a user mapping that opts in to consent (`consent = true`).
    marketing_optin: (
        Literal["EXPLICITLY_OPTEDIN", "EXPLICITLY_OPTEDOUT", "NOT_SPECIFIED"] | None
    ) = None
    properties: dict[str, Scalar] = Field(default_factory=dict)


CONTACT_BUILTINS = frozenset(
    alias or name
    for name, field in Contact.model_fields.items()
    for alias in [field.alias]
    if name not in {"type", "collection", "id", "customer_id", "email", "properties"}
)


class CustomEvent(_Record):
    type: Literal["custom_event"] = Field(default="custom_event", alias="@type")
    id: str = Field(min_length=1)
    timestamp: AwareDatetime
    event_type: str = Field(min_length=1, max_length=MAX_EVENT_TYPE_CHARS)
    identity_email: str | None = None
    identity_account_id: str | None = None
    properties: dict[str, Scalar] = Field(default_factory=dict)


def with_version(contact: dict[str, Any], version: int) -> dict[str, Any]:
    """The contact, marked with the version of the profile it was mapped from."""
    return {**contact, VERSION_KEY: version}


def version_of(record: dict[str, Any]) -> int | None:
    """A record's version, or None when it carries none (custom events, old records)."""
    version = record.get(VERSION_KEY)
    return version if isinstance(version, int) and not isinstance(version, bool) else None


def encode(record: dict[str, Any] | list[dict[str, Any]]) -> bytes:
    """The one JSON encoding of a record, or of a customer's records in one outbox message
    (sorted keys, so equal records are equal bytes)."""
    return orjson.dumps(record, option=orjson.OPT_SORT_KEYS)


def decode(value: bytes) -> list[dict[str, Any]]:
    """The records of one outbox message: a single record (backfill, redrive) or a list.

    Raises:
        ValueError: not JSON (orjson.JSONDecodeError), or not an object or a list of objects.
    """
    document = orjson.loads(value)
    records = document if isinstance(document, list) else [document]
    if not all(isinstance(record, dict) for record in records):
        raise ValueError("an outbox message holds a JSON object or a list of objects")
    return records
