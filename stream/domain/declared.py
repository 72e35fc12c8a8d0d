"""Campaign rules declared in a mapping file, without code; pure.

A declared rule names the Ometria event type it sends, the loyalty event types that trigger
it, an optional CEL condition and its properties, each a CEL expression over the same
variables (see stream.domain.conditions). Its custom-event id follows the default rules':
`{customer_id}:{event_id}:{name}`.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from stream.domain.conditions import (
    EVENT_TYPES,
    Condition,
    ConditionError,
    Variables,
    check,
    compile_condition,
    scalar,
    value_of,
)
from stream.domain.records import FIELD_ID, MAX_EVENT_TYPE_CHARS, Scalar
from stream.errors import MappingError


@dataclass(frozen=True, slots=True)
class DeclaredRule:
    name: str  # the Ometria event type, and the rule's part of the id
    on: tuple[str, ...]  # the loyalty event types that trigger it
    condition: Condition | None
    properties: tuple[tuple[str, Condition], ...]


class RuleEntry(BaseModel):
    """A `[rules.<name>]` table as written in a mapping file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    on: list[str] = Field(min_length=1)
    condition: str | None = Field(default=None, min_length=1)
    properties: dict[str, str] = {}


def parse_declared(
    origin: str, entries: dict[str, RuleEntry], *, builtin: Collection[str]
) -> tuple[DeclaredRule, ...]:
    """The rules a mapping file's `[rules.<name>]` tables declare; `builtin` are the names of
    the built-in rules, which a declared rule may not take."""
    return tuple(_declared(origin, name, entry, builtin) for name, entry in entries.items())


def _declared(origin: str, name: str, entry: RuleEntry, builtin: Collection[str]) -> DeclaredRule:
    where = f"{origin}, [rules.{name}]"
    if not FIELD_ID.match(name) or name.startswith("@") or len(name) > MAX_EVENT_TYPE_CHARS:
        raise MappingError(
            f"{where}: the rule's name is its Ometria event type: letters, digits and _, "
            f"at most {MAX_EVENT_TYPE_CHARS} characters"
        )
    if name in builtin:
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
        if not FIELD_ID.match(key) or key.startswith("@"):
            raise MappingError(f"{where}, properties: {key!r} is not a property name")
        properties.append((key, compiled(f"properties.{key}", source)))
    return DeclaredRule(name=name, on=on, condition=condition, properties=tuple(properties))


def by_event_type(rules: Iterable[DeclaredRule]) -> dict[str, tuple[DeclaredRule, ...]]:
    """The rules each event type triggers: one look-up per event on the fold path."""
    index: dict[str, tuple[DeclaredRule, ...]] = {}
    for rule in rules:
        for event_type in rule.on:
            index[event_type] = (*index.get(event_type, ()), rule)
    return index


def fire_declared(
    rules: tuple[DeclaredRule, ...], variables: Variables
) -> list[tuple[str, str, dict[str, Scalar]]]:
    """The declared rules whose condition holds, with their properties evaluated."""
    return [
        (
            rule.name,
            "",
            {name: scalar(value_of(expression, variables)) for name, expression in rule.properties},
        )
        for rule in rules
        if check(rule.condition, variables)
    ]
