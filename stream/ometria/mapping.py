"""Profile → Ometria contact, driven by a mapping table (design §5); pure apart from loading.

A mapping is data: a preset shipped with the package (`presets/*.toml`) or a user file (TOML or
JSON) of `[[field]]` entries `target ← source` with an optional value transform, plus optional
`[triggers.<rule>]` options for the custom events. It is validated once at start-up.
"""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from stream.ometria.records import CONTACT_BUILTINS, MAX_EVENT_TYPE_CHARS, Contact, Scalar
from stream.profile import Profile
from stream.triggers import RULE_NAMES, TriggerOptions

Transform = Literal["text", "integer", "decimal", "bool", "date", "datetime", "birthday_1940"]
TRANSFORMS: tuple[str, ...] = get_args(Transform)
PRESETS = ("rivo", "loyaltylion")
# Consent must never be sent by accident: Ometria favours opt-outs and forced values stick.
CONSENT_FIELDS = frozenset({"marketing_optin", "@force_optin", "channels"})
RESERVED_TARGETS = frozenset({"id", "customer_id", "email", "@collection", "@type", "properties"})
OPTIN_VALUES = frozenset({"EXPLICITLY_OPTEDIN", "EXPLICITLY_OPTEDOUT", "NOT_SPECIFIED"})
# Profile fields that hold a month and day only (the platforms drop the year).
MONTH_DAY_SOURCES = frozenset({"date_of_birth"})
_DATE_TOKENS = re.compile(r"YYYY|MM|DD")
_FIELD_ID = re.compile(r"^@?[A-Za-z_][A-Za-z0-9_]{0,99}$")


class MappingError(Exception):
    """A mapping is invalid; the message names the file, the entry and the fix."""


@dataclass(frozen=True, slots=True)
class FieldRule:
    target: str
    source: str
    transform: Transform | None = None
    format: str | None = None
    values: tuple[tuple[str, Scalar], ...] = ()


@dataclass(frozen=True, slots=True)
class ContactMapping:
    name: str
    fields: tuple[FieldRule, ...]
    consent: bool = False
    triggers: dict[str, TriggerOptions] = field(default_factory=dict)


class _FieldEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    target: str
    source: str
    transform: Transform | None = None
    format: str | None = None
    values: dict[str, str | int | float | bool] | None = None


class _TriggerEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    event_type: str | None = Field(default=None, min_length=1, max_length=MAX_EVENT_TYPE_CHARS)
    properties: list[str] | None = None


class _MappingDoc(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    extends: Literal["rivo", "loyaltylion"] | None = None
    consent: bool = False
    remove: list[str] = []
    field: list[_FieldEntry] = []
    triggers: dict[str, _TriggerEntry] = {}


def load_mapping(preset: str, file: Path | None) -> ContactMapping:
    """The mapping in force: the user file when given, else the preset."""
    if file is None:
        return load_preset(preset)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise MappingError(
            f"{file}: cannot read the mapping file ({exc.strerror}); fix STREAM_MAPPING__FILE"
        ) from None
    try:
        doc = json.loads(text) if file.suffix.lower() == ".json" else tomllib.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise MappingError(
            f"{file}: not valid {file.suffix[1:].upper() or 'TOML'}: {exc}"
        ) from None
    return parse_mapping(str(file), doc)


def load_preset(name: str) -> ContactMapping:
    """Read a mapping preset shipped with the package (`stream/ometria/presets/<name>.toml`)."""
    if name not in PRESETS:
        raise MappingError(
            f"no mapping preset {name!r}: set STREAM_MAPPING__PRESET to {' or '.join(PRESETS)}"
        )
    path = resources.files("stream.ometria") / "presets" / f"{name}.toml"
    return parse_mapping(f"preset {name}", tomllib.loads(path.read_text(encoding="utf-8")))


def _where(origin: str, loc: tuple[int | str, ...], doc: dict[str, Any]) -> str:
    if len(loc) >= 2 and loc[0] == "field" and isinstance(loc[1], int):
        entries = doc.get("field") or []
        entry = entries[loc[1]] if loc[1] < len(entries) else {}
        target = entry.get("target") if isinstance(entry, dict) else None
        name = f" (target {target!r})" if target else ""
        rest = ".".join(str(p) for p in loc[2:])
        return f"{origin}, [[field]] #{loc[1] + 1}{name}" + (f", {rest}" if rest else "")
    return f"{origin}, " + ".".join(str(p) for p in loc)


def parse_mapping(origin: str, doc: dict[str, Any]) -> ContactMapping:
    """Validate a mapping document; every problem names the entry and how to fix it."""
    try:
        parsed = _MappingDoc.model_validate(doc)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise MappingError(f"{_where(origin, first['loc'], doc)}: {first['msg']}") from None
    base = load_preset(parsed.extends) if parsed.extends else None
    if base is None and not parsed.field:
        raise MappingError(
            f'{origin}: no fields; add [[field]] entries (target, source) or extends = "rivo"'
        )
    rules = {rule.target: rule for rule in base.fields} if base else {}
    for target in parsed.remove:
        if rules.pop(target, None) is None:
            raise MappingError(f"{origin}, remove: {target!r} is not in preset {parsed.extends}")
    seen: set[str] = set()
    for number, entry in enumerate(parsed.field, start=1):
        where = f"{origin}, [[field]] #{number} (target {entry.target!r})"
        if entry.target in seen:
            raise MappingError(f"{where}: the target is mapped twice; keep one entry")
        seen.add(entry.target)
        rules[entry.target] = _rule(where, entry, consent=parsed.consent)
    triggers = {}
    for name, options in parsed.triggers.items():
        if name not in RULE_NAMES:
            raise MappingError(
                f"{origin}, [triggers.{name}]: unknown rule; use one of {', '.join(RULE_NAMES)}"
            )
        triggers[name] = TriggerOptions(
            enabled=options.enabled,
            event_type=options.event_type,
            properties=frozenset(options.properties) if options.properties is not None else None,
        )
    return ContactMapping(
        name=origin, fields=tuple(rules.values()), consent=parsed.consent, triggers=triggers
    )


def _rule(where: str, entry: _FieldEntry, *, consent: bool) -> FieldRule:
    target, source = entry.target, entry.source
    if not _FIELD_ID.match(target):
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
    if target == "marketing_optin" and not set(map(str, (entry.values or {}).values())) <= (
        OPTIN_VALUES
    ):
        raise MappingError(f"{where}: values must map to {', '.join(sorted(OPTIN_VALUES))}")
    if not _resolvable(source):
        raise MappingError(
            f"{where}: source {source!r} is not a profile field (e.g. points.balance, tier.name)"
        )
    transform = entry.transform
    fmt = entry.format
    if fmt is not None and transform != "date":
        raise MappingError(f'{where}: format applies to transform = "date" only')
    if transform == "date":
        fmt = fmt or "YYYY-MM-DD"
        if source in MONTH_DAY_SOURCES and "YYYY" in fmt:
            raise MappingError(
                f'{where}: {source} has no year; use a fixed year such as format = "1940-MM-DD"'
            )
    values = tuple((str(k), v) for k, v in (entry.values or {}).items())
    return FieldRule(target=target, source=source, transform=transform, format=fmt, values=values)


def _resolvable(source: str) -> bool:
    owner: Any = Profile
    for part in source.split("."):
        fields = getattr(owner, "model_fields", {})
        if part in fields:
            owner = fields[part].annotation
        elif isinstance(getattr(owner, part, None), property):
            owner = None
        else:
            return False
    return True


def _lookup(profile: Profile, source: str) -> Any:
    value: Any = profile
    for part in source.split("."):
        value = getattr(value, part, None)
        if value is None:
            return None
    return value


def _date_text(value: Any, fmt: str) -> str:
    if isinstance(value, datetime | date):
        parts = {"YYYY": f"{value.year:04d}", "MM": f"{value.month:02d}", "DD": f"{value.day:02d}"}
    else:  # a month-day "MM-DD"
        month, day = str(value).split("-")
        parts = {"YYYY": "", "MM": month, "DD": day}
    return _DATE_TOKENS.sub(lambda m: parts[m.group(0)], fmt)


def _key(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _write(value: Any, rule: FieldRule) -> Scalar:
    mapped = dict(rule.values)
    if _key(value) in mapped:
        return mapped[_key(value)]
    match rule.transform:
        case "text":
            return str(value)
        case "integer":
            return int(Decimal(str(value)))
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
        if rule.target in CONTACT_BUILTINS:
            builtins[rule.target] = written
        else:
            properties[rule.target] = written
    contact = Contact(
        collection=collection,
        id=profile.customer_id,
        customer_id=profile.customer_id,
        email=profile.email,
        properties=properties,
        **builtins,
    )
    return contact.to_json()
