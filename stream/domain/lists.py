"""Ometria list membership driven by CEL conditions; pure.

A mapping file declares lists (`[[list]]`: an Ometria list id and a condition over `after`, the
profile). A contact carries `@add_to_lists` / `@remove_from_lists` only when the customer's
membership changed since the last contact sent (the profile remembers it in `lists`), and only
the change. When the pusher coalesces several contacts of a customer into the newest, the list
changes of the ones it drops are carried into the one it sends (`carry_lists`), so no change
is lost to coalescing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from stream.domain.conditions import (
    LIST_VARIABLES,
    Condition,
    ConditionError,
    Variables,
    check,
    compile_condition,
)
from stream.domain.profile import Profile
from stream.errors import MappingError

ADD = "@add_to_lists"
REMOVE = "@remove_from_lists"


@dataclass(frozen=True, slots=True)
class ListRule:
    list_id: str
    condition: Condition


class ListEntry(BaseModel):
    """A `[[list]]` entry as written in a mapping file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1, max_length=100)  # Ometria's list id, e.g. "1234"
    condition: str = Field(min_length=1)


def parse_lists(origin: str, entries: list[ListEntry]) -> tuple[ListRule, ...]:
    """The list rules of a mapping file's `[[list]]` entries, in declaration order."""
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


def membership(profile: Profile, rules: Iterable[ListRule]) -> tuple[str, ...]:
    """The declared lists the customer belongs to now, in declaration order."""
    variables = Variables(None, profile, profile, None)
    return tuple(rule.list_id for rule in rules if check(rule.condition, variables))


def with_changes(
    contact: dict[str, Any], old: tuple[str, ...], new: tuple[str, ...]
) -> dict[str, Any]:
    """The contact with the list changes from `old` to `new` membership (none: unchanged)."""
    added = [list_id for list_id in new if list_id not in old]
    removed = [list_id for list_id in old if list_id not in new]
    changes: dict[str, Any] = {}
    if added:
        changes[ADD] = added
    if removed:
        changes[REMOVE] = removed
    return {**contact, **changes} if changes else contact


def carry_lists(older: dict[str, Any], newer: dict[str, Any]) -> dict[str, Any]:
    """`newer` with the list changes of `older`, a contact of the same customer sent before
    it, folded in: what `newer` changes wins."""
    if ADD not in older and REMOVE not in older:
        return newer
    new_add, new_remove = newer.get(ADD, []), newer.get(REMOVE, [])
    add = [i for i in older.get(ADD, []) if i not in new_remove] + list(new_add)
    remove = [i for i in older.get(REMOVE, []) if i not in new_add] + list(new_remove)
    merged = {k: v for k, v in newer.items() if k not in (ADD, REMOVE)}
    if add:
        merged[ADD] = list(dict.fromkeys(add))
    if remove:
        merged[REMOVE] = list(dict.fromkeys(remove))
    return merged
