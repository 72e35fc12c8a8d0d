"""Profile → Ometria contact, driven by a mapping table (design §5); pure apart from loading."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from importlib import resources
from typing import Any, Literal, get_args

from stream.ometria.records import CONTACT_BUILTINS, Contact, Scalar
from stream.profile import Profile

Transform = Literal["decimal", "birthday_1940", "date", "datetime", "text"]
TRANSFORMS: tuple[str, ...] = get_args(Transform)
# Consent must never be sent by accident: Ometria favours opt-outs and forced values stick.
CONSENT_FIELDS = frozenset({"marketing_optin", "@force_optin", "channels"})


class MappingError(Exception):
    """A mapping table is invalid; the message names the source, the entry and the fix."""


@dataclass(frozen=True, slots=True)
class FieldRule:
    target: str
    source: str
    transform: Transform | None = None


@dataclass(frozen=True, slots=True)
class ContactMapping:
    name: str
    fields: tuple[FieldRule, ...]


def load_preset(name: str) -> ContactMapping:
    """Read a mapping preset shipped with the package (`stream/ometria/presets/<name>.toml`)."""
    path = resources.files("stream.ometria") / "presets" / f"{name}.toml"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise MappingError(
            f"no mapping preset {name!r}: set STREAM_MAPPING__PRESET to rivo or loyaltylion"
        ) from None
    return parse_mapping(f"preset {name}", tomllib.loads(text))


def parse_mapping(origin: str, doc: dict[str, Any]) -> ContactMapping:
    """Validate a mapping table; every problem names the entry and how to fix it."""
    entries = doc.get("field")
    if not isinstance(entries, list) or not entries:
        raise MappingError(f"{origin}: expected [[field]] entries with target and source")
    rules = []
    seen: set[str] = set()
    for number, entry in enumerate(entries, start=1):
        where = f"{origin}, field #{number}"
        if not isinstance(entry, dict) or set(entry) - {"target", "source", "transform"}:
            raise MappingError(f"{where}: only target, source and transform are allowed")
        target, source = entry.get("target"), entry.get("source")
        transform = entry.get("transform")
        if not isinstance(target, str) or not target or " " in target:
            raise MappingError(f"{where}: target must be an Ometria field id without spaces")
        if target in CONSENT_FIELDS or target in {"id", "customer_id", "email", "@collection"}:
            raise MappingError(f"{where}: {target!r} is set by the product, not by a mapping")
        if target in seen:
            raise MappingError(f"{where}: target {target!r} is mapped twice; keep one")
        if not isinstance(source, str) or not _resolvable(source):
            raise MappingError(f"{where}: source {source!r} is not a profile field")
        if transform is not None and transform not in TRANSFORMS:
            raise MappingError(
                f"{where}: transform {transform!r} is unknown; use one of {', '.join(TRANSFORMS)}"
            )
        seen.add(target)
        rules.append(FieldRule(target=target, source=source, transform=transform))
    return ContactMapping(name=origin, fields=tuple(rules))


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


def _write(value: Any, transform: Transform | None) -> Scalar:
    match transform:
        case "decimal":
            return float(Decimal(str(value)))
        case "birthday_1940":
            # Platforms keep only month and day; Ometria wants a date, so the year is a marker.
            return f"1940-{value}"
        case "date":
            return value.date().isoformat() if isinstance(value, datetime) else str(value)
        case "datetime":
            return value.isoformat() if isinstance(value, datetime) else str(value)
        case "text":
            return str(value)
    if isinstance(value, str | int | float | bool):
        return value
    return str(value)


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
        written = _write(value, rule.transform)
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
