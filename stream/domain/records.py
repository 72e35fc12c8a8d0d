"""Ometria push records (contact, custom_event) as validated models, serialised with orjson."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal, NamedTuple

import orjson
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter

from stream.domain import json_bytes

Scalar = str | int | float | bool | None
# Ometria's documented limits (docs/ometria-contract.md#limits).
MAX_EVENT_TYPE_CHARS = 32
MAX_PROPERTY_CHARS = 512
MAX_RECORD_BYTES = 60 * 1024
MAX_RECORDS_PER_REQUEST = 100
# A field id a mapping may name: a contact field or property, a custom event's type or property
# (the `@` ones are Ometria's own fields).
FIELD_ID = re.compile(r"^@?[A-Za-z_][A-Za-z0-9_]{0,99}$")

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


# The built-in contact fields in the model's order (the order `to_json` writes them in).
CONTACT_BUILTIN_ORDER = tuple(
    alias or name
    for name, field in Contact.model_fields.items()
    for alias in [field.alias]
    if name not in {"type", "collection", "id", "customer_id", "email", "properties"}
)
CONTACT_BUILTINS = frozenset(CONTACT_BUILTIN_ORDER)


class CustomEvent(_Record):
    type: Literal["custom_event"] = Field(default="custom_event", alias="@type")
    id: str = Field(min_length=1)
    timestamp: AwareDatetime
    event_type: str = Field(min_length=1, max_length=MAX_EVENT_TYPE_CHARS)
    identity_email: str | None = None
    identity_account_id: str | None = None
    properties: dict[str, Scalar] = Field(default_factory=dict)


class Version(NamedTuple):
    """A contact's version, compared generation first: nothing a replay does can lower it.

    `offset` is the input offset the profile was folded up to (a customer's events share one
    partition, so it only grows while the profile is kept). `replay --reset-state` rebuilds
    every profile from the start of the input and starts a new `generation`
    (stream.ops.replay), so a rebuilt contact is newer than any delivered before the rebuild,
    even when its content last changed at an earlier offset.
    """

    generation: int
    offset: int


def with_version(contact: dict[str, Any], offset: int, generation: int = 0) -> dict[str, Any]:
    """The contact, marked with the version of the profile it was mapped from."""
    return {**contact, VERSION_KEY: _version_value(Version(generation, offset))}


def version_of(record: dict[str, Any]) -> Version | None:
    """A record's version, or None when it carries none (custom events, old records)."""
    return _as_version(record.get(VERSION_KEY))


def encode_version(version: Version) -> bytes:
    """A version as the versions topic stores it (as records carry it)."""
    return json_bytes.dumps(_version_value(version))


def parse_version(raw: bytes) -> Version:
    """A version as the versions topic stores it.

    Raises:
        ValueError: not a version.
    """
    try:
        version = _as_version(orjson.loads(raw))
    except orjson.JSONDecodeError:
        version = None
    if version is None:
        raise ValueError(f"not a contact version: {raw[:40]!r}")
    return version


def _version_value(version: Version) -> int | list[int]:
    # Generation 0 is a plain offset: what every record and versions topic value held before
    # generations existed, so those still read as the versions they were.
    return version.offset if version.generation == 0 else [version.generation, version.offset]


def _as_version(value: Any) -> Version | None:
    if _is_int(value):
        return Version(0, value)
    if isinstance(value, list) and len(value) == 2 and all(_is_int(part) for part in value):
        return Version(value[0], value[1])
    return None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


_CHOICES: dict[str, frozenset[str]] = {
    "gender": frozenset({"m", "f", "o"}),
    "marketing_optin": frozenset({"EXPLICITLY_OPTEDIN", "EXPLICITLY_OPTEDOUT", "NOT_SPECIFIED"}),
}
_DATETIME: TypeAdapter[datetime] = TypeAdapter(AwareDatetime)


def _plain(properties: Mapping[str, Scalar]) -> bool:
    """Whether the models would pass these properties through unchanged."""
    for value in properties.values():
        kind = type(value)
        if kind is float:
            if not math.isfinite(value):  # type: ignore[arg-type]
                return False
        elif kind is not str and kind is not int and kind is not bool:
            return False
    return True


def contact_record(
    collection: str,
    customer_id: str,
    email: str,
    builtins: Mapping[str, Any],
    properties: dict[str, Scalar],
) -> dict[str, Any]:
    """The contact as `Contact(...).to_json()` gives it, without a model for plain values.

    Values the model would convert or refuse (a date-time, a choice outside its set, anything
    but text in a built-in field, a None or a non-finite number) go through the model itself.

    Raises:
        pydantic.ValidationError: a value the model refuses.
    """
    plain = (
        customer_id
        and "timestamp_acquired" not in builtins
        and all(type(value) is str for value in builtins.values())
        and all(builtins[name] in allowed for name, allowed in _CHOICES.items() if name in builtins)
        and _plain(properties)
    )
    if not plain:
        return Contact(
            collection=collection,
            id=customer_id,
            customer_id=customer_id,
            email=email,
            properties=properties,
            **builtins,
        ).to_json()
    record: dict[str, Any] = {
        "@type": "contact",
        "@collection": collection,
        "id": customer_id,
        "customer_id": customer_id,
        "email": email,
    }
    for name in CONTACT_BUILTIN_ORDER:
        if name in builtins:
            record[name] = builtins[name]
    record["properties"] = properties
    return record


def custom_event_record(
    id: str,
    timestamp: datetime,
    event_type: str,
    identity_email: str | None,
    identity_account_id: str | None,
    properties: dict[str, Scalar],
) -> dict[str, Any]:
    """The custom event as `CustomEvent(...).to_json()` gives it, without a model when plain.

    Raises:
        pydantic.ValidationError: a value the model refuses.
    """
    plain = (
        id
        and 0 < len(event_type) <= MAX_EVENT_TYPE_CHARS
        and timestamp.tzinfo is not None
        and timestamp.utcoffset() is not None
        and _plain(properties)
    )
    if not plain:
        return CustomEvent(
            id=id,
            timestamp=timestamp,
            event_type=event_type,
            identity_email=identity_email,
            identity_account_id=identity_account_id,
            properties=properties,
        ).to_json()
    record: dict[str, Any] = {
        "@type": "custom_event",
        "id": id,
        "timestamp": _DATETIME.dump_python(timestamp, mode="json"),
        "event_type": event_type,
    }
    if identity_email is not None:
        record["identity_email"] = identity_email
    if identity_account_id is not None:
        record["identity_account_id"] = identity_account_id
    record["properties"] = properties
    return record


def encode(record: dict[str, Any] | list[dict[str, Any]]) -> bytes:
    """The one JSON encoding of a record, or of a list of records (an outbox message)
    (sorted keys, so equal records are equal bytes)."""
    return json_bytes.dumps(record, orjson.OPT_SORT_KEYS)


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
