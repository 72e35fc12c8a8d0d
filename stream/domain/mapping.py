"""The mapping in force: read a preset or a user file and hand each section to its feature; pure
apart from reading the file.

See docs/architecture.md#contact-mapping.

A mapping is data: a preset shipped with the package (`presets/*.toml`) or a user file (TOML or
JSON). Its sections each configure one feature and are parsed beside it: `[[field]]` the
contact (stream.domain.contact_mapping), `[triggers.<rule>]` the built-in custom events
(triggers), `[rules.<name>]` the declared ones (declared), `[schedule.<rule>]` the time-based
ones (schedule) and `[[list]]` the list memberships (lists). It is validated once at start-up.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from stream.domain.contact_mapping import ContactMapping, FieldEntry, parse_contact
from stream.domain.declared import DeclaredRule, RuleEntry, parse_declared
from stream.domain.lists import ListEntry, ListRule, parse_lists
from stream.domain.schedule import ScheduleConfig, ScheduleEntry, parse_schedule
from stream.domain.triggers import RULE_NAMES, TriggerEntry, TriggerOptions, parse_triggers
from stream.errors import MappingError

PRESETS = ("rivo", "loyaltylion")


@dataclass(frozen=True, slots=True)
class MappingFile:
    """A mapping file's sections, each parsed by the feature it configures."""

    contact: ContactMapping
    triggers: dict[str, TriggerOptions] = field(default_factory=dict)
    declared: tuple[DeclaredRule, ...] = ()
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    lists: tuple[ListRule, ...] = ()


class _MappingDoc(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    extends: Literal["rivo", "loyaltylion"] | None = None
    consent: bool = False
    remove: list[str] = []
    field: list[FieldEntry] = []
    triggers: dict[str, TriggerEntry] = {}
    rules: dict[str, RuleEntry] = {}
    schedule: dict[str, ScheduleEntry] = {}
    lists: list[ListEntry] = Field(default=[], alias="list")  # [[list]] entries


def load_mapping(preset: str, file: Path | None) -> MappingFile:
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


def load_preset(name: str) -> MappingFile:
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


def parse_mapping(origin: str, doc: dict[str, Any]) -> MappingFile:
    """Validate a mapping document; every problem names the entry and how to fix it."""
    try:
        parsed = _MappingDoc.model_validate(doc)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise MappingError(f"{_where(origin, first['loc'], doc)}: {first['msg']}") from None
    # A file that extends a preset takes over its fields only, not its other sections.
    base = load_preset(parsed.extends).contact if parsed.extends else None
    contact = parse_contact(
        origin,
        parsed.field,
        consent=parsed.consent,
        extends=parsed.extends,
        base=base,
        remove=parsed.remove,
    )
    return MappingFile(
        contact=contact,
        triggers=parse_triggers(origin, parsed.triggers),
        declared=parse_declared(origin, parsed.rules, builtin=RULE_NAMES),
        schedule=parse_schedule(origin, parsed.schedule),
        lists=parse_lists(origin, parsed.lists),
    )
