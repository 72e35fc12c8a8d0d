"""Profile → Ometria contact, driven by a mapping table; pure apart from loading.

See docs/architecture.md#contact-mapping.

A mapping is data: a preset shipped with the package (`presets/*.toml`) or a user file (TOML or
JSON) of `[[field]]` entries `target ← source` with an optional value transform, plus optional
`[triggers.<rule>]` options for the custom events. It is validated once at start-up.
"""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass, field, is_dataclass, replace
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from functools import cache
from importlib import resources
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin, get_type_hints
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from stream.domain.conditions import (
    EVENT_TYPES,
    LIST_VARIABLES,
    SCAN_VARIABLES,
    ConditionError,
    compile_condition,
)
from stream.domain.declared import DeclaredRule
from stream.domain.lists import ListRule
from stream.domain.profile import Profile
from stream.domain.records import (
    CONTACT_BUILTINS,
    MAX_EVENT_TYPE_CHARS,
    Scalar,
    contact_record,
)
from stream.domain.schedule import DEFAULT_LEAD_DAYS, SCHEDULE_RULES, ScheduleConfig, ScheduleRule
from stream.domain.triggers import RULE_NAMES, TriggerOptions, TriggerOptionsError, parse_options
from stream.errors import ConfigurationError

Transform = Literal["text", "integer", "decimal", "bool", "date", "datetime", "birthday_1940"]
PRESETS = ("rivo", "loyaltylion")
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
_FIELD_ID = re.compile(r"^@?[A-Za-z_][A-Za-z0-9_]{0,99}$")


class MappingError(ConfigurationError):
    """A mapping is invalid; the message names the file, the entry and the fix."""


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
    triggers: dict[str, TriggerOptions] = field(default_factory=dict)
    declared: tuple[DeclaredRule, ...] = ()
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    lists: tuple[ListRule, ...] = ()


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
    condition: str | None = Field(default=None, min_length=1)


class _RuleEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    on: list[str] = Field(min_length=1)
    condition: str | None = Field(default=None, min_length=1)
    properties: dict[str, str] = {}


class _ScheduleEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    event_type: str | None = Field(default=None, min_length=1, max_length=MAX_EVENT_TYPE_CHARS)
    lead_days: list[Annotated[int, Field(ge=1, le=366)]] | None = Field(default=None, min_length=1)
    condition: str | None = Field(default=None, min_length=1)
    timezone: str | None = None  # loyalty_birthday only
    within: Decimal | None = Field(default=None, ge=0)  # loyalty_tier_approaching only


class _ListEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1, max_length=100)  # Ometria's list id, e.g. "1234"
    condition: str = Field(min_length=1)


class _MappingDoc(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    extends: Literal["rivo", "loyaltylion"] | None = None
    consent: bool = False
    remove: list[str] = []
    field: list[_FieldEntry] = []
    triggers: dict[str, _TriggerEntry] = {}
    rules: dict[str, _RuleEntry] = {}
    schedule: dict[str, _ScheduleEntry] = {}
    lists: list[_ListEntry] = Field(default=[], alias="list")  # [[list]] entries


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
    """Read a mapping preset shipped with the package (`stream/domain/presets/<name>.toml`)."""
    if name not in PRESETS:
        raise MappingError(
            f"no mapping preset {name!r}: set STREAM_MAPPING__PRESET to {' or '.join(PRESETS)}"
        )
    path = resources.files("stream.domain") / "presets" / f"{name}.toml"
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
    if parsed.remove and base is None:
        raise MappingError(f'{origin}, remove: needs extends = "rivo" or "loyaltylion"')
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
    triggers: dict[str, TriggerOptions] = {}
    for name, options in parsed.triggers.items():
        try:
            triggers[name] = parse_options(name, **options.model_dump())
        except TriggerOptionsError as exc:
            raise MappingError(f"{origin}, [triggers.{name}]{exc.at}: {exc}") from None
    declared = tuple(_declared(origin, name, entry) for name, entry in parsed.rules.items())
    return ContactMapping(
        name=origin,
        fields=tuple(rules.values()),
        consent=parsed.consent,
        triggers=triggers,
        declared=declared,
        schedule=_schedule(origin, parsed.schedule),
        lists=_lists(origin, parsed.lists),
    )


def _lists(origin: str, entries: list[_ListEntry]) -> tuple[ListRule, ...]:
    rules: list[ListRule] = []
    for number, entry in enumerate(entries, start=1):
        where = f"{origin}, [[list]] #{number} (id {entry.id!r})"
        if entry.id in (rule.list_id for rule in rules):
            raise MappingError(f"{where}: the list is declared twice; keep one entry")
        try:
            condition = compile_condition(entry.condition, allowed=LIST_VARIABLES)
        except ConditionError as exc:
            raise MappingError(f"{where}, condition {entry.condition!r}: {exc}") from None
        rules.append(ListRule(list_id=entry.id, condition=condition))
    return tuple(rules)


def _schedule(origin: str, entries: dict[str, _ScheduleEntry]) -> ScheduleConfig:
    rules = {}
    config = ScheduleConfig()
    for name, entry in entries.items():
        where = f"{origin}, [schedule.{name}]"
        if name not in SCHEDULE_RULES:
            raise MappingError(f"{where}: unknown rule; use one of {', '.join(SCHEDULE_RULES)}")
        if entry.lead_days is not None and name not in DEFAULT_LEAD_DAYS:
            raise MappingError(f"{where}: lead_days applies to {', '.join(DEFAULT_LEAD_DAYS)}")
        if entry.timezone is not None:
            if name != "loyalty_birthday":
                raise MappingError(f"{where}: timezone applies to loyalty_birthday only")
            try:
                ZoneInfo(entry.timezone)
            except (ZoneInfoNotFoundError, ValueError):
                raise MappingError(
                    f"{where}: no timezone {entry.timezone!r}; use an IANA name such as "
                    '"Europe/London"'
                ) from None
            config = replace(config, birthday_timezone=entry.timezone)
        if entry.within is not None:
            if name != "loyalty_tier_approaching":
                raise MappingError(f"{where}: within applies to loyalty_tier_approaching only")
            config = replace(config, approaching_within=entry.within)
        condition = None
        if entry.condition is not None:
            try:
                condition = compile_condition(entry.condition, allowed=SCAN_VARIABLES)
            except ConditionError as exc:
                raise MappingError(f"{where}, condition {entry.condition!r}: {exc}") from None
        rules[name] = ScheduleRule(
            enabled=entry.enabled,
            event_type=entry.event_type,
            lead_days=tuple(sorted(set(entry.lead_days), reverse=True))
            if entry.lead_days
            else None,
            condition=condition,
        )
    return replace(config, rules=rules)


def _declared(origin: str, name: str, entry: _RuleEntry) -> DeclaredRule:
    where = f"{origin}, [rules.{name}]"
    if not _FIELD_ID.match(name) or name.startswith("@") or len(name) > MAX_EVENT_TYPE_CHARS:
        raise MappingError(
            f"{where}: the rule's name is its Ometria event type: letters, digits and _, "
            f"at most {MAX_EVENT_TYPE_CHARS} characters"
        )
    if name in RULE_NAMES:
        raise MappingError(f"{where}: {name} is a built-in rule; set it under [triggers.{name}]")
    unknown = sorted(set(entry.on) - set(EVENT_TYPES))
    if unknown:
        raise MappingError(
            f"{where}, on: no event type {unknown[0]!r}; use some of {', '.join(EVENT_TYPES)}"
        )
    on = tuple(dict.fromkeys(entry.on))

    def compiled(what: str, source: str) -> Any:
        try:
            return compile_condition(source, event_types=on)
        except ConditionError as exc:
            raise MappingError(f"{where}, {what} {source!r}: {exc}") from None

    condition = compiled("condition", entry.condition) if entry.condition else None
    properties = []
    for key, source in entry.properties.items():
        if not _FIELD_ID.match(key) or key.startswith("@"):
            raise MappingError(f"{where}, properties: {key!r} is not a property name")
        properties.append((key, compiled(f"properties.{key}", source)))
    return DeclaredRule(name=name, on=on, condition=condition, properties=tuple(properties))


_TRANSFORM_SOURCES: dict[str, frozenset[str]] = {
    "text": frozenset({"text", "integer", "decimal", "boolean", "datetime", "month_day"}),
    "integer": frozenset({"integer", "decimal"}),
    "decimal": frozenset({"integer", "decimal"}),
    "bool": frozenset({"boolean"}),
    "date": frozenset({"datetime", "month_day"}),
    "datetime": frozenset({"datetime"}),
    "birthday_1940": frozenset({"month_day"}),
}


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
