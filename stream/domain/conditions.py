"""CEL conditions and expressions on campaign rules; pure.

A condition is a CEL expression (the Common Expression Language Kubernetes uses) over
`event` (the loyalty event), `before` and `after` (the profile before and after its fold) and
`now` (the processing or scan time), e.g. `after.tier.name == "Gold" && before.tier.name !=
"Gold"`. It is compiled once at start-up and every field it reads is checked against the event
and profile models then, so a typo stops start-up naming the rule, the expression and the
field. Evaluating takes compiled programs and values only: no clock, no environment.

The profile seen by an expression is the customer's data without the product's bookkeeping;
decimal amounts kept as text (`tier.progress_to_next`) are numbers there, date-times are CEL
timestamps. A condition whose evaluation fails (a field of a null value, mixed number types)
does not hold: guard with `has(...)` or `!= null`.
"""

from __future__ import annotations

import io
import tokenize
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields, is_dataclass
from datetime import datetime
from decimal import Decimal
from functools import cache
from typing import Any, Union, get_args, get_origin, get_type_hints

import cel
from pydantic import BaseModel

from stream.domain.events import LoyaltyEvent
from stream.domain.profile import PointsState, Profile
from stream.domain.records import MAX_PROPERTY_CHARS, Scalar
from stream.errors import ConfigurationError

EVENT_VARIABLES: frozenset[str] = frozenset({"event", "before", "after", "now"})
# Time-based rules have no event and no "before": the profile as it stands, at the scan.
SCAN_VARIABLES: frozenset[str] = frozenset({"after", "now"})
# List membership follows the profile alone.
LIST_VARIABLES: frozenset[str] = frozenset({"after"})
_MACROS = frozenset({"all", "exists", "exists_one", "map", "filter"})
# The product's bookkeeping, not the customer's data: not visible to expressions.
HIDDEN_FIELDS = frozenset(
    {"as_of", "recent_event_ids", "last_contact", "input_offset", "deltas", "base_points",
     "base_credits", "base_as_of", "schedule_fired", "lists"}
)  # fmt: skip
# Profile amounts kept as exact decimal text; expressions see them as numbers.
_DECIMAL_TEXT = frozenset({"credits", "progress", "progress_to_next", "progress_to_renew"})


class ConditionError(ConfigurationError):
    """An expression does not compile or reads a field that does not exist."""


@dataclass(frozen=True, slots=True)
class Condition:
    """A compiled CEL expression, the variables it reads and the fields it reads of each."""

    source: str
    program: cel.Program
    reads: frozenset[str]
    # variable -> the field paths read below it (an empty path: the whole value)
    fields: tuple[tuple[str, tuple[tuple[str, ...], ...]], ...] = ()


def _event_models() -> dict[str, type[BaseModel]]:
    union = get_args(LoyaltyEvent)[0]  # Annotated[A | B | ..., discriminator]
    return {get_args(m.model_fields["type"].annotation)[0]: m for m in get_args(union)}


EVENT_MODELS: dict[str, type[BaseModel]] = _event_models()
EVENT_TYPES: tuple[str, ...] = tuple(EVENT_MODELS)


def compile_condition(
    source: str,
    *,
    allowed: frozenset[str] = EVENT_VARIABLES,
    event_types: Iterable[str] | None = None,
) -> Condition:
    """Compile an expression and check every field it reads.

    `event_types`: the event types the rule fires for, whose `data` fields `event.data.*` may
    read (None: any type, each field checked against all of them together).

    Raises:
        ConditionError: a syntax error, an unknown variable or an unknown field; the message
            names the field and what exists.
    """
    try:
        program = cel.compile(source)
    except ValueError as exc:
        raise ConditionError(f"does not compile: {str(exc).splitlines()[0]}") from None
    bound = _bound_names(source)
    reads = frozenset(program.variables()) - bound
    unknown = sorted(reads - allowed)
    if unknown:
        raise ConditionError(f"unknown variable {unknown[0]!r}; use {', '.join(sorted(allowed))}")
    types_ = tuple(event_types) if event_types is not None else EVENT_TYPES
    paths = _paths(source, bound)
    for path in paths:
        _check_path(path, types_)
    below = {
        name: tuple(sorted({path[1:] for path in paths if path[0] == name})) or ((),)
        for name in sorted(reads)
    }
    return Condition(source=source, program=program, reads=reads, fields=tuple(below.items()))


def _tokens(source: str) -> list[tokenize.TokenInfo]:
    # CEL's identifiers, numbers, dots and quoted strings read as Python's do, which is all
    # the field check needs; operators Python lacks (&&, !, ?) come out as ERRORTOKENs.
    readline = io.StringIO(" ".join(source.splitlines())).readline
    try:
        return [
            t
            for t in tokenize.generate_tokens(readline)
            if t.type not in (tokenize.NEWLINE, tokenize.NL, tokenize.ENDMARKER)
        ]
    except (tokenize.TokenError, SyntaxError) as exc:
        raise ConditionError(f"cannot be read: {exc}") from None


def _bound_names(source: str) -> frozenset[str]:
    """Names bound by comprehension macros: the `t` of `after.tags.exists(t, t == "vip")`."""
    tokens = _tokens(source)
    bound = set()
    for n in range(len(tokens) - 3):
        a, b, c, d = tokens[n : n + 4]
        if a.string == "." and b.string in _MACROS and c.string == "(" and d.type == tokenize.NAME:
            bound.add(d.string)
    return frozenset(bound)


def _paths(source: str, bound: frozenset[str]) -> list[tuple[str, ...]]:
    """Every selection chain rooted at a variable: `after.tier.name` → (after, tier, name)."""
    tokens = _tokens(source)
    paths = []
    n = 0
    while n < len(tokens):
        token = tokens[n]
        follows_dot = n > 0 and tokens[n - 1].string == "."
        if token.type == tokenize.NAME and token.string in EVENT_VARIABLES and not follows_dot:
            if token.string in bound:
                n += 1
                continue
            path = [token.string]
            n += 1
            while (
                n + 1 < len(tokens)
                and tokens[n].string == "."
                and tokens[n + 1].type == tokenize.NAME
                # `x.f(...)` is a call of f on x, not a field f
                and not (n + 2 < len(tokens) and tokens[n + 2].string == "(")
            ):
                path.append(tokens[n + 1].string)
                n += 2
            paths.append(tuple(path))
        else:
            n += 1
    return paths


def _unwrap(annotation: Any) -> Any:
    while True:
        origin = get_origin(annotation)
        if origin is typing.Annotated:
            annotation = get_args(annotation)[0]
            continue
        if origin in (Union, types.UnionType):
            args = [a for a in get_args(annotation) if a is not type(None)]
            inner = [_unwrap(a) for a in args]
            structured = [a for a in inner if _members(a) is not None]
            annotation = structured[0] if structured else (inner[0] if inner else annotation)
            continue
        return annotation


@cache
def _members(owner: Any) -> dict[str, Any] | None:
    """The fields an expression may select on a value of this type (None: a plain value)."""
    if isinstance(owner, type) and issubclass(owner, BaseModel):
        return {name: f.annotation for name, f in owner.model_fields.items()}
    if is_dataclass(owner) and isinstance(owner, type):
        hints = get_type_hints(owner)
        members = {f.name: hints[f.name] for f in fields(owner) if f.name not in HIDDEN_FIELDS}
        if owner is PointsState:
            members["total"] = int
        return members
    return None


def _check_path(path: tuple[str, ...], event_types: tuple[str, ...]) -> None:
    root, rest = path[0], path[1:]
    if root == "now":
        if rest:
            raise ConditionError(f"now is a timestamp and has no field {rest[0]!r}")
        return
    if root in ("before", "after"):
        _walk(root, Profile, rest)
        return
    # event: the envelope is shared; `data` differs by type and must exist in each
    owners = [EVENT_MODELS[kind] for kind in event_types]
    lacking = []
    for model in owners:
        try:
            _walk(root, model, rest)
        except ConditionError as exc:
            lacking.append((model, exc))
    if lacking and len(lacking) == len(owners):
        raise lacking[0][1]
    if lacking:
        missing = sorted(get_args(m.model_fields["type"].annotation)[0] for m, _ in lacking)
        raise ConditionError(
            f"{'.'.join(path)} does not exist on {', '.join(missing)} events, which this "
            "rule also fires for"
        )


def _walk(root: str, owner: Any, rest: tuple[str, ...]) -> None:
    where = root
    for part in rest:
        members = _members(_unwrap(owner))
        if members is None:
            raise ConditionError(f"{where} is a value and has no field {part!r}")
        if part not in members:
            raise ConditionError(
                f"{where} has no field {part!r}; it has {', '.join(sorted(members))}"
            )
        owner = members[part]
        where = f"{where}.{part}"


# Values as expressions see them ------------------------------------------------------------


def _value(value: Any, name: str = "") -> Any:
    if value is None or isinstance(value, bool | int | float | str | datetime):
        if name in _DECIMAL_TEXT and isinstance(value, str):
            return float(Decimal(value))
        return value
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, tuple | list):
        return [_value(item) for item in value]
    if isinstance(value, BaseModel):
        return {key: _value(getattr(value, key), key) for key in type(value).model_fields}
    if isinstance(value, Mapping):
        return {str(key): _value(item) for key, item in value.items()}
    if is_dataclass(value):
        view = {
            f.name: _value(getattr(value, f.name), f.name)
            for f in fields(value)
            if f.name not in HIDDEN_FIELDS
        }
        if isinstance(value, PointsState):
            view["total"] = value.total
        return view
    return str(value)


class Variables:
    """What one evaluation reads from: the event, the profile before and after, the time."""

    __slots__ = ("after", "before", "event", "now")

    def __init__(
        self,
        event: LoyaltyEvent | None,
        before: Profile | None,
        after: Profile,
        now: datetime | None,
    ) -> None:
        self.event = event
        # A new customer's "before" is an empty profile, so `before.tier.name` reads null.
        self.before = before if before is not None else Profile(customer_id=after.customer_id)
        self.after = after
        self.now = now


def _pick(value: Any, paths: tuple[tuple[str, ...], ...], name: str = "") -> Any:
    """Only the parts of a value that these field paths read, as expressions see them.

    Handing CEL the whole profile costs over a hundred microseconds per evaluation (every
    value is converted); the few fields a condition reads cost a few.
    """
    kind: Any = type(value)
    if () in paths or value is None or _members(kind) is None:
        return _value(value, name)
    picked: dict[str, Any] = {}
    for field_name in dict.fromkeys(path[0] for path in paths):
        below = tuple(path[1:] for path in paths if path[0] == field_name)
        picked[field_name] = _pick(getattr(value, field_name, None), below, field_name)
    return picked


def value_of(expression: Condition, variables: Variables) -> Any:
    """The expression's value, or None when it cannot be evaluated for these values."""
    try:
        context = {
            name: _pick(getattr(variables, name), paths) for name, paths in expression.fields
        }
        return expression.program.execute(context)
    except (TypeError, ValueError, KeyError, RuntimeError, ArithmeticError):
        # CEL reports a null field, mixed number types or an overflow as one of these.
        return None


def check(condition: Condition | None, variables: Variables) -> bool:
    """Whether a rule's condition holds (no condition: it does)."""
    return condition is None or value_of(condition, variables) is True


def scalar(value: Any) -> Scalar:
    """An expression's value as a custom-event property (None: left out)."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, str):
        return value[:MAX_PROPERTY_CHARS]
    if value is None or isinstance(value, bool | int | float):
        return value
    return None  # lists and maps are not properties Ometria can segment on
