"""Profile → Ometria contact, driven by the `[[field]]` table of a mapping file; pure.

See docs/architecture.md#contact-mapping.

The contact mapping is data: `[[field]]` entries `target ← source` with an optional value
transform, on top of a preset's (`extends`, `remove`) or alone. stream.domain.mapping loads the
file and hands this module its fields; it is validated once at start-up.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, is_dataclass
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from functools import cache
from types import UnionType
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

from pydantic import BaseModel, ConfigDict

from stream.domain.profile import Profile
from stream.domain.records import CONTACT_BUILTINS, FIELD_ID, Scalar, contact_record
from stream.errors import MappingError

Transform = Literal["text", "integer", "decimal", "bool", "date", "datetime", "birthday_1940"]
# Consent must never be sent by accident: Ometria favours opt-outs and forced values stick.
CONSENT_FIELDS = frozenset({"marketing_optin", "@force_optin", "channels"})
RESERVED_TARGETS = frozenset({"id", "customer_id", "email", "@collection", "@type", "properties"})
OPTIN_VALUES = frozenset({"EXPLICITLY_OPTEDIN", "EXPLICITLY_OPTEDOUT", "NOT_SPECIFIED"})
# Built-in contact fields that take a fixed set of values.
ENUM_TARGETS = {"marketing_optin": OPTIN_VALUES, "gender": frozenset({"m", "f", "o"})}
TEXT_BUILTINS = frozenset(
    {"prefix", "firstname", "middlename", "lastname", "phone_number", "country_id", "timezone"}
)
# Profile fields that hold a month and day only (the platforms drop the year).
MONTH_DAY_SOURCES = frozenset({"date_of_birth"})
_DATE_TOKENS = re.compile(r"(YYYY|MM|DD)")  # a group, so that split keeps the tokens


@dataclass(frozen=True, slots=True)
class FieldRule:
    target: str
    source: str
    transform: Transform | None = None
    format: str | None = None
    values: tuple[tuple[str, Scalar], ...] = ()
    only_mapped: bool = False  # an enum target: a value without a mapping is left out
    as_text: bool = False  # a text built-in: whatever the source, write text


@dataclass(frozen=True, slots=True)
class ContactMapping:
    name: str
    fields: tuple[FieldRule, ...]
    consent: bool = False


class FieldEntry(BaseModel):
    """One `[[field]]` entry as written in a mapping file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    target: str
    source: str
    transform: Transform | None = None
    format: str | None = None
    values: dict[str, str | int | float | bool] | None = None


def parse_contact(
    origin: str,
    entries: list[FieldEntry],
    *,
    consent: bool,
    extends: str | None = None,
    base: ContactMapping | None = None,
    remove: list[str] | None = None,
) -> ContactMapping:
    """The contact mapping of a file's `[[field]]` entries over the preset it extends (`base`)."""
    if base is None and not entries:
        raise MappingError(
            f'{origin}: no fields; add [[field]] entries (target, source) or extends = "rivo"'
        )
    rules = {rule.target: rule for rule in base.fields} if base else {}
    if remove and base is None:
        raise MappingError(f'{origin}, remove: needs extends = "rivo" or "loyaltylion"')
    for target in remove or []:
        if rules.pop(target, None) is None:
            raise MappingError(f"{origin}, remove: {target!r} is not in preset {extends}")
    seen: set[str] = set()
    for number, entry in enumerate(entries, start=1):
        where = f"{origin}, [[field]] #{number} (target {entry.target!r})"
        if entry.target in seen:
            raise MappingError(f"{where}: the target is mapped twice; keep one entry")
        seen.add(entry.target)
        rules[entry.target] = _rule(where, entry, consent=consent)
    return ContactMapping(name=origin, fields=tuple(rules.values()), consent=consent)


_TRANSFORM_SOURCES: dict[str, frozenset[str]] = {
    "text": frozenset({"text", "integer", "decimal", "boolean", "datetime", "month_day"}),
    "integer": frozenset({"integer", "decimal"}),
    "decimal": frozenset({"integer", "decimal"}),
    "bool": frozenset({"boolean"}),
    "date": frozenset({"datetime", "month_day"}),
    "datetime": frozenset({"datetime"}),
    "birthday_1940": frozenset({"month_day"}),
}


def _rule(where: str, entry: FieldEntry, *, consent: bool) -> FieldRule:
    target, source = entry.target, entry.source
    if not FIELD_ID.match(target):
        raise MappingError(
            f"{where}: target must be an Ometria field id (letters, digits, _; no spaces)"
        )
    if target in RESERVED_TARGETS:
        raise MappingError(f"{where}: {target!r} is set by the product; map another field")
    if target in CONSENT_FIELDS and not (consent and target == "marketing_optin"):
        raise MappingError(
            f"{where}: consent is not sent unless the file says consent = true, and then only "
            "marketing_optin (Ometria favours opt-outs and forced values stick)"
        )
    kind = source_kind(source)
    if kind is None:
        raise MappingError(
            f"{where}: source {source!r} is not a profile field (e.g. points.balance, tier.name)"
        )
    transform = entry.transform
    fmt = entry.format
    if fmt is not None and transform != "date":
        raise MappingError(f'{where}: format applies to transform = "date" only')
    if transform is not None and kind not in _TRANSFORM_SOURCES[transform]:
        fits = ", ".join(t for t, kinds in _TRANSFORM_SOURCES.items() if kind in kinds)
        raise MappingError(
            f"{where}: transform {transform!r} does not apply to {source} ({kind}); use one of "
            f"{fits} or none"
        )
    if transform == "date":
        fmt = fmt or "YYYY-MM-DD"
        if kind == "month_day" and "YYYY" in fmt:
            raise MappingError(
                f'{where}: {source} has no year; use a fixed year such as format = "1940-MM-DD"'
            )
    if target in ENUM_TARGETS:
        allowed = ENUM_TARGETS[target]
        if not entry.values or not {str(v) for v in entry.values.values()} <= allowed:
            raise MappingError(
                f"{where}: {target} takes only {', '.join(sorted(allowed))}; give values = "
                "{...} mapping the source's values to them (unmapped values are left out)"
            )
    if target == "date_of_birth" and not (
        transform in ("date", "birthday_1940") and (fmt or "YYYY-MM-DD").count("-") == 2
    ):
        raise MappingError(
            f'{where}: date_of_birth must be YYYY-MM-DD; use transform = "birthday_1940" or '
            '"date" with a YYYY-MM-DD format'
        )
    if target == "timestamp_acquired" and kind != "datetime":
        raise MappingError(f"{where}: timestamp_acquired needs a date-time source")
    values = tuple((str(k), v) for k, v in (entry.values or {}).items())
    return FieldRule(
        target=target,
        source=source,
        transform=transform,
        format=fmt,
        values=values,
        only_mapped=target in ENUM_TARGETS,
        as_text=target in TEXT_BUILTINS,
    )


SourceKind = Literal["text", "integer", "decimal", "boolean", "datetime", "month_day"]
# Bookkeeping is the product's, not the customer's data.
_HIDDEN = frozenset(
    {"as_of", "recent_event_ids", "last_contact", "deltas", "base_points", "base_credits",
     "base_as_of"}
)  # fmt: skip
# Decimal amounts kept as exact text in the profile.
_DECIMAL_SOURCES = frozenset(
    {"points.credits", "tier.progress", "tier.progress_to_next", "tier.progress_to_renew"}
)


def _kind_of(annotation: Any) -> SourceKind | None:
    args = [a for a in get_args(annotation) if a is not type(None)]
    if get_origin(annotation) in (Union, UnionType) and len(args) == 1:
        annotation = args[0]
    if get_origin(annotation) is Literal or annotation is str:
        return "text"
    if annotation is bool:
        return "boolean"
    if annotation is int:
        return "integer"
    if annotation is datetime:
        return "datetime"
    return None


def source_kind(source: str) -> SourceKind | None:
    """What a dotted profile field holds, or None when it is not a mappable value."""
    if source in MONTH_DAY_SOURCES:
        return "month_day"
    if source in _DECIMAL_SOURCES:
        return "decimal"
    owner: Any = Profile
    parts = source.split(".")
    for number, part in enumerate(parts):
        if part in _HIDDEN or part.startswith("_"):
            return None
        last = number == len(parts) - 1
        fields = get_type_hints(owner) if is_dataclass(owner) else {}
        if part in fields:
            annotation = fields[part]
        elif isinstance(prop := getattr(owner, part, None), property) and prop.fget:
            annotation = get_type_hints(prop.fget).get("return")
        else:
            return None
        if last:
            return _kind_of(annotation)
        args = [a for a in get_args(annotation) if a is not type(None)]
        owner = args[0] if args else annotation
    return None


@cache
def _path(source: str) -> tuple[str, ...]:
    return tuple(source.split("."))


def _lookup(profile: Profile, source: str) -> Any:
    value: Any = profile
    for part in _path(source):
        value = getattr(value, part, None)
        if value is None:
            return None
    return value


@cache
def _date_pieces(fmt: str) -> tuple[str, ...]:
    """A date format split into literal text (even positions) and tokens (odd positions)."""
    return tuple(_DATE_TOKENS.split(fmt))


def _date_text(value: Any, fmt: str) -> str:
    if isinstance(value, datetime | date):
        parts = {"YYYY": f"{value.year:04d}", "MM": f"{value.month:02d}", "DD": f"{value.day:02d}"}
    else:  # a month-day "MM-DD"
        month, day = str(value).split("-")
        parts = {"YYYY": "", "MM": month, "DD": day}
    pieces = _date_pieces(fmt)
    return "".join(parts[piece] if odd % 2 else piece for odd, piece in enumerate(pieces))


def _key(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _write(value: Any, rule: FieldRule) -> Scalar:
    if rule.values:
        mapped = dict(rule.values)
        if _key(value) in mapped:
            return mapped[_key(value)]
    if rule.only_mapped:
        return None
    written = _transform(value, rule)
    return str(written) if rule.as_text and written is not None else written


def _transform(value: Any, rule: FieldRule) -> Scalar:
    match rule.transform:
        case "text":
            return str(value)
        case "integer":
            return int(Decimal(str(value)).to_integral_value(ROUND_HALF_UP))
        case "decimal":
            return float(Decimal(str(value)))
        case "bool":
            return value if isinstance(value, bool) else str(value).lower() in {"true", "1", "yes"}
        case "date":
            return _date_text(value, rule.format or "YYYY-MM-DD")
        case "birthday_1940":
            # Platforms keep only month and day; Ometria wants a date, so the year is a marker.
            return _date_text(value, "1940-MM-DD")
        case "datetime":
            return value.isoformat() if isinstance(value, datetime) else str(value)
    if isinstance(value, str | int | float | bool):
        return value
    return value.isoformat() if isinstance(value, datetime | date) else str(value)


def map_contact(
    profile: Profile, mapping: ContactMapping, collection: str
) -> dict[str, Any] | None:
    """The contact record for a profile, or None when there is no email to match it by."""
    if not profile.email:
        return None
    builtins: dict[str, Any] = {}
    properties: dict[str, Scalar] = {}
    for rule in mapping.fields:
        value = _lookup(profile, rule.source)
        if value is None:
            continue
        written = _write(value, rule)
        if written is None:
            continue
        if rule.target in CONTACT_BUILTINS:
            builtins[rule.target] = written
        else:
            properties[rule.target] = written
    return contact_record(collection, profile.customer_id, profile.email, builtins, properties)
