"""Campaign rules declared in a mapping file, without code (issue 13); pure.

A declared rule names the Ometria event type it sends, the loyalty event types that trigger
it, an optional CEL condition and its properties, each a CEL expression over the same
variables (see stream.domain.conditions). Its custom-event id follows the default rules':
`{customer_id}:{event_id}:{name}`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from stream.domain.conditions import Condition, Variables, check, scalar, value_of
from stream.domain.records import Scalar


@dataclass(frozen=True, slots=True)
class DeclaredRule:
    name: str  # the Ometria event type, and the rule's part of the id
    on: tuple[str, ...]  # the loyalty event types that trigger it
    condition: Condition | None
    properties: tuple[tuple[str, Condition], ...]


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
