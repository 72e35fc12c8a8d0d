"""Ometria push API rules as pure functions: judge a push body and each of its records.

Facts come from docs/ometria-contract.md (request shape, records, limits). Nothing
here does I/O; the sandbox server applies these rules and keeps the results.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Final, Literal, TypeGuard, get_args

import orjson

RecordType = Literal["contact", "custom_event", "order", "product"]
RECORD_TYPES: Final[tuple[RecordType, ...]] = get_args(RecordType)

# Ometria's own wording (docs/ometria-contract.md#the-errors-list); the error list mostly says
# "not a valid value".
NOT_VALID: Final = "not a valid value"
REQUIRED: Final = "required key not provided"
TOO_LARGE: Final = "Payload invalid: Record is too large."

MAX_EVENT_TYPE_CHARS: Final = 32
MAX_EVENT_STRING_CHARS: Final = 512

_EMAIL: Final = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_E164: Final = re.compile(r"\+[1-9]\d{6,14}")
_CALENDAR_DATE: Final = re.compile(r"\d{4}-\d{2}-\d{2}")

Record = dict[str, object]
Scalar = str | int | float | bool | None


@dataclass(frozen=True, slots=True)
class RecordError:
    """Why one record was rejected, in the shape of Ometria's `/v2/push/_errors` entries.

    `hint` is the sandbox's own explanation (Ometria gives none); it never echoes the value,
    which may be personal data.
    """

    message: str
    path: str
    hint: str


@dataclass(frozen=True, slots=True)
class Batch:
    """A push body that passed the request-level rules."""

    record_type: RecordType
    records: list[Record]


class InvalidBatch(ValueError):
    """The push body breaks a request-level rule, so the whole request is refused (HTTP 400)."""


def parse_body(raw: bytes) -> object:
    """Decode a request body as UTF-8 JSON.

    Raises:
        InvalidBatch: the bytes are not UTF-8 JSON.
    """
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidBatch(f"Body is not valid UTF-8 JSON: {exc}") from exc


def record_types_in(body: object) -> frozenset[str]:
    """Return the distinct `@type` strings found in a body's records (empty if not an array)."""
    if not isinstance(body, list):
        return frozenset()
    return frozenset(
        kind
        for record in body
        if isinstance(record, dict) and isinstance(kind := record.get("@type"), str)
    )


def check_batch(body: object, *, max_records: int) -> Batch:
    """Apply the request-level rules: an array of 1..max_records objects of one known @type.

    Raises:
        InvalidBatch: with a message saying which rule failed and how to fix the request.
    """
    if not isinstance(body, list):
        raise InvalidBatch(
            f"Body must be a JSON array of records, got a JSON {_json_kind(body)}; "
            "wrap a single record in [...]"
        )
    if not 1 <= len(body) <= max_records:
        raise InvalidBatch(
            f"Body must hold 1 to {max_records} records, got {len(body)}; split larger batches"
        )
    records: list[Record] = []
    kinds: list[RecordType] = []
    for index, record in enumerate(body):
        if not isinstance(record, dict):
            raise InvalidBatch(f"Record {index} is a JSON {_json_kind(record)}, not an object")
        kind = record.get("@type")
        if not _is_record_type(kind):
            raise InvalidBatch(
                f"Record {index} has @type {kind!r}; expected one of {', '.join(RECORD_TYPES)}"
            )
        records.append(record)
        kinds.append(kind)
    distinct = sorted(set(kinds))
    if len(distinct) > 1:
        raise InvalidBatch(
            f"Mixed record types ({', '.join(distinct)}): one @type per request; "
            "send each type in its own request"
        )
    return Batch(record_type=kinds[0], records=records)


def record_id(record: Mapping[str, object]) -> str | None:
    """Return the record's `id` if it is a string."""
    value = record.get("id")
    return value if isinstance(value, str) else None


def validate_record(
    record: Mapping[str, object], record_type: RecordType, *, max_record_bytes: int
) -> list[RecordError]:
    """Return every rule the record breaks; an empty list means Ometria would accept it."""
    size = len(orjson.dumps(record))
    if size > max_record_bytes:
        return [
            RecordError(
                TOO_LARGE,
                "root",
                f"compact JSON is {size} bytes; the limit is {max_record_bytes} bytes",
            )
        ]
    return _VALIDATORS[record_type](record)


# A field check takes the value and its path and returns the errors it finds.
_Check = Callable[[object, str], list[RecordError]]


def _path(*keys: str) -> str:
    return " > ".join(("root", *keys))


def _invalid(path: str, hint: str) -> list[RecordError]:
    return [RecordError(NOT_VALID, path, hint)]


def _json_kind(value: object) -> str:
    kinds: tuple[tuple[type, str], ...] = (
        (bool, "boolean"),
        (int, "number"),
        (float, "number"),
        (str, "string"),
        (list, "array"),
        (dict, "object"),
    )
    return next((name for kind, name in kinds if isinstance(value, kind)), "null")


def _is_record_type(value: object) -> TypeGuard[RecordType]:
    return value in RECORD_TYPES


def _is_scalar(value: object) -> TypeGuard[Scalar]:
    return value is None or isinstance(value, str | int | float | bool)


def _any(value: object, path: str) -> list[RecordError]:
    return []


def _string(value: object, path: str) -> list[RecordError]:
    return [] if isinstance(value, str) else _invalid(path, "expected a string")


def _non_empty_string(value: object, path: str) -> list[RecordError]:
    return [] if isinstance(value, str) and value else _invalid(path, "expected a non-empty string")


def _boolean(value: object, path: str) -> list[RecordError]:
    return [] if isinstance(value, bool) else _invalid(path, "expected true or false")


def _object(value: object, path: str) -> list[RecordError]:
    return [] if isinstance(value, dict) else _invalid(path, "expected an object")


def _email(value: object, path: str) -> list[RecordError]:
    if isinstance(value, str) and _EMAIL.fullmatch(value):
        return []
    return _invalid(path, "expected an email address")


def _e164(value: object, path: str) -> list[RecordError]:
    if isinstance(value, str) and _E164.fullmatch(value):
        return []
    return _invalid(path, "expected an E.164 phone number such as +447700900123")


def _calendar_date(value: object, path: str) -> list[RecordError]:
    if isinstance(value, str) and _CALENDAR_DATE.fullmatch(value):
        try:
            date.fromisoformat(value)
        except ValueError:
            pass
        else:
            return []
    return _invalid(path, "expected a date as YYYY-MM-DD")


def _aware_datetime(value: object, path: str) -> list[RecordError]:
    hint = "expected an ISO 8601 date-time with an offset or Z, e.g. 2026-11-21T10:00:00+00:00"
    if not isinstance(value, str):
        return _invalid(path, hint)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return _invalid(path, hint)
    # Ometria can't place a naive time on its timeline, so a missing offset is an error.
    return [] if parsed.utcoffset() is not None else _invalid(path, hint)


def _one_of(*allowed: str) -> _Check:
    def check(value: object, path: str) -> list[RecordError]:
        return [] if value in allowed else _invalid(path, f"expected one of {', '.join(allowed)}")

    return check


def _list_of(item_ok: Callable[[object], bool], what: str) -> _Check:
    def check(value: object, path: str) -> list[RecordError]:
        if isinstance(value, list) and all(item_ok(item) for item in value):
            return []
        return _invalid(path, f"expected a list of {what}")

    return check


def _flat_properties(max_string_chars: int | None) -> _Check:
    """Check an object of scalars or lists of scalars (nested values can't drive segments)."""

    def scalar_ok(value: object) -> bool:
        if isinstance(value, str) and max_string_chars is not None:
            return len(value) <= max_string_chars
        return _is_scalar(value)

    if max_string_chars is None:
        hint = "expected a string, number, boolean, null or a list of those"
    else:
        hint = (
            f"expected a string of at most {max_string_chars} characters, a number, "
            "a boolean, null or a list of those"
        )

    def check(value: object, path: str) -> list[RecordError]:
        if not isinstance(value, dict):
            return _invalid(path, "expected an object")
        errors: list[RecordError] = []
        for key, item in value.items():
            flat = all(map(scalar_ok, item)) if isinstance(item, list) else scalar_ok(item)
            if not flat:
                errors += _invalid(f"{path} > {key}", hint)
        return errors

    return check


def _check_fields(
    record: Mapping[str, object],
    fields: Mapping[str, _Check],
    *,
    required: tuple[str, ...],
    open_ended: bool,
    kind: str,
) -> list[RecordError]:
    errors = [
        RecordError(REQUIRED, _path(key), f"a {kind} needs {key}")
        for key in required
        if key not in record
    ]
    for key, value in record.items():
        check = fields.get(key)
        if check is not None:
            errors += check(value, _path(key))
        elif not open_ended:
            errors += _invalid(_path(key), f"not a {kind} field; custom fields go in properties")
    return errors


_strings = _list_of(lambda item: isinstance(item, str), "strings")
_list_ids = _list_of(lambda item: isinstance(item, str | int) and not isinstance(item, bool), "ids")

_CONTACT_FIELDS: Final[Mapping[str, _Check]] = {
    "@type": _any,
    "@collection": _string,
    "@merge": _boolean,
    "@force_optin": _boolean,
    "@add_to_lists": _list_ids,
    "@remove_from_lists": _list_ids,
    "id": _non_empty_string,
    "email": _email,
    "customer_id": _string,
    "prefix": _string,
    "firstname": _string,
    "middlename": _string,
    "lastname": _string,
    "date_of_birth": _calendar_date,
    "gender": _one_of("m", "f", "o"),
    "phone_number": _e164,
    "country_id": _string,
    "timezone": _string,
    "store_ids": _strings,
    "timestamp_acquired": _aware_datetime,
    "timestamp_subscribed": _aware_datetime,
    "timestamp_unsubscribed": _aware_datetime,
    "marketing_optin": _one_of("EXPLICITLY_OPTEDIN", "EXPLICITLY_OPTEDOUT", "NOT_SPECIFIED"),
    "channels": _object,
    "extra_identifiers": _object,
    "properties": _flat_properties(max_string_chars=None),
}


def _event_type(value: object, path: str) -> list[RecordError]:
    if isinstance(value, str) and 0 < len(value) <= MAX_EVENT_TYPE_CHARS:
        return []
    return _invalid(
        path, f"expected a non-empty string of at most {MAX_EVENT_TYPE_CHARS} characters"
    )


_EVENT_IDENTITIES: Final = ("identity_email", "identity_account_id", "profile_id")

_CUSTOM_EVENT_FIELDS: Final[Mapping[str, _Check]] = {
    "@type": _any,
    "id": _non_empty_string,
    "timestamp": _aware_datetime,
    "event_type": _event_type,
    "identity_email": _email,
    "identity_account_id": _non_empty_string,
    "profile_id": _non_empty_string,
    "properties": _flat_properties(max_string_chars=MAX_EVENT_STRING_CHARS),
}


def _validate_contact(record: Mapping[str, object]) -> list[RecordError]:
    return _check_fields(
        record, _CONTACT_FIELDS, required=("id",), open_ended=False, kind="contact"
    )


def _validate_custom_event(record: Mapping[str, object]) -> list[RecordError]:
    errors = _check_fields(
        record,
        _CUSTOM_EVENT_FIELDS,
        required=("id", "timestamp", "event_type"),
        open_ended=False,
        kind="custom_event",
    )
    # Every custom event must be tied to a contact (docs/ometria-contract.md#custom-event).
    if not any(key in record for key in _EVENT_IDENTITIES):
        errors += _invalid("root", f"needs at least one of {', '.join(_EVENT_IDENTITIES)}")
    return errors


def _validate_keyed_only(kind: str) -> Callable[[Mapping[str, object]], list[RecordError]]:
    # Orders and products are not produced by this project yet, so only their key is checked.
    def validate(record: Mapping[str, object]) -> list[RecordError]:
        return _check_fields(
            record, {"id": _non_empty_string}, required=("id",), open_ended=True, kind=kind
        )

    return validate


_VALIDATORS: Final[Mapping[RecordType, Callable[[Mapping[str, object]], list[RecordError]]]] = {
    "contact": _validate_contact,
    "custom_event": _validate_custom_event,
    "order": _validate_keyed_only("order"),
    "product": _validate_keyed_only("product"),
}
