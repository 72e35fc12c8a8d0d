"""Inbound loyalty events: the pydantic models of the contract and `parse_event`.

The contract: README "The event contract" and docs/architecture.md#event-contract.

Unknown top-level fields are rejected (a typo must not pass silently); unknown fields inside
`data` are tolerated so producers can add fields before we read them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Annotated, Any, Literal, cast

import orjson
from email_validator import EmailNotValidError, validate_email
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
)
from pydantic_core import ErrorDetails

from stream.errors import LoyaltyStreamError

MAX_EVENT_BYTES = 64 * 1024
# The validation context's key for an email address already checked (see `parse_document`).
KNOWN_EMAIL = "known_email"
# Ometria caps string properties at 512 characters: a longer value is rejected here, with its
# field named, rather than cut short on the way out.
MAX_TEXT_CHARS = 512
MAX_POINTS = 10**12
# Control characters (C0, DEL, C1) and the bidirectional overrides/isolates that can make a name
# or an id display as something else ("Trojan Source"); zero-width joiners stay (emoji, scripts).
_UNSAFE_CHARS = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
# Free text (reasons, URLs) may hold tabs and line breaks, nothing else from those ranges.
_UNSAFE_TEXT_CHARS = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]"
)
# Years a date-time in `data` may have (Ometria reads them as dates people care about). The
# event's own occurred_at is judged against the reader's clock instead (stream.domain.intake), so it
# only has to convert to UTC without overflow; its four-digit year keeps the stamps fixed width.
_MIN_YEAR, _MAX_YEAR = 1900, 9998
_ISO_HINT = "expected an ISO 8601 date-time with a UTC offset, such as 2026-11-21T10:00:00+00:00"
_DECIMAL = re.compile(r"^-?\d{1,12}(\.\d{1,6})?$")
_MONTH_DAY = re.compile(r"^(?:\d{4}-|--)?(\d{2})-(\d{2})$")
_DAYS_IN_MONTH = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


class InvalidEvent(LoyaltyStreamError):
    """An input record that is not a valid loyalty event; `reason` says what to fix.

    A reason names the field and the rule, never a value of the record (a reason is logged and
    kept in a dead letter's headers); the event id and customer id, once valid, name the event.
    """

    def __init__(self, reason: str, *, error_class: str = "InvalidEvent") -> None:
        super().__init__(reason)
        self.reason = reason
        self.error_class = error_class


class _Rule(ValueError):
    """A validator's refusal: its message states the rule and holds nothing of the value.

    Only this error's message reaches a reason; any other ValueError (a library's, which may
    quote what it refused) is reported as "is not valid".
    """


def _decimal_string(value: object) -> Decimal:
    # Money travels as a decimal string so no float rounding happens on the way.
    if not isinstance(value, str) or not _DECIMAL.match(value):
        raise _Rule("expected a decimal string such as '25.50'")
    try:
        return Decimal(value)
    except InvalidOperation:  # pragma: no cover - the pattern already guarantees this
        raise _Rule("expected a decimal string such as '25.50'") from None


def _month_day(value: str) -> str:
    match = _MONTH_DAY.match(value)
    if not match:
        raise _Rule("expected a birthday as MM-DD, --MM-DD or YYYY-MM-DD")
    month, day = int(match.group(1)), int(match.group(2))
    if not (1 <= month <= 12 and 1 <= day <= _DAYS_IN_MONTH[month - 1]):
        raise _Rule("is not a calendar day (month 01-12, day within that month)")
    return f"{month:02d}-{day:02d}"


def _id_text(value: object) -> object:
    # Platforms such as Rivo use numeric ids; they are identifiers, so keep them as text.
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


def _amount(value: object) -> Decimal:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return _bounded_amount(Decimal(str(value)))
    return _decimal_string(value)


def _reward_name(value: object) -> object:
    return {"name": value} if isinstance(value, str) else value


@lru_cache(maxsize=65_536)
def _is_email(value: str) -> bool:
    # Syntax only (no DNS: the pure core does no I/O). Cached: the check is costly and a
    # customer's events repeat the same address.
    try:
        validate_email(value, check_deliverability=False)
    except EmailNotValidError:
        return False
    return True


def _email(value: str, info: ValidationInfo) -> str:
    # The address the customer's stored profile holds passed this check when it was folded:
    # at a million customers most addresses are not in `_is_email`'s cache, and the check
    # (about 40 µs) cost more than the rest of the event's validation.
    if info.context is not None and value == info.context.get(KNOWN_EMAIL):
        return value
    # email-validator's own messages quote the characters or the domain label they refuse.
    if not _is_email(value):
        raise _Rule("expected an email address such as name@example.com (RFC 5322 syntax)")
    return value


def _refusing(unsafe: re.Pattern[str]) -> Callable[[str], str]:
    """A validator refusing a text that holds a character `unsafe` matches."""

    def check(value: str) -> str:
        if (found := unsafe.search(value)) is not None:
            # The code point names the rule broken; one character carries no personal data.
            raise _Rule(
                f"contains the control or bidi-override character U+{ord(found.group()):04X}; "
                "expected printable text"
            )
        return value

    return check


_safe = _refusing(_UNSAFE_CHARS)
_safe_text = _refusing(_UNSAFE_TEXT_CHARS)


def _instant(value: object) -> datetime:
    # Strict: a string with an offset only. pydantic's lax mode would take epoch numbers (and
    # numeric strings) as UTC, which the contract does not allow.
    if not isinstance(value, str):
        raise _Rule(f"{_ISO_HINT}, not a {type(value).__name__}")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise _Rule(_ISO_HINT) from None
    offset = parsed.utcoffset()  # None for a naive time too
    if offset is None:
        raise _Rule(f"{_ISO_HINT}; this one has no offset")
    if offset:  # at a zero offset the conversion cannot leave the calendar
        try:
            parsed.astimezone(UTC)
        except OverflowError:
            raise _Rule("lies outside the years 0001-9999 once converted to UTC") from None
    return parsed


def _moment(value: object) -> datetime:
    parsed = _instant(value)
    if not _MIN_YEAR <= parsed.year <= _MAX_YEAR:
        raise _Rule(f"the year must lie between {_MIN_YEAR} and {_MAX_YEAR}")
    return parsed


def _bounded_amount(value: Decimal) -> Decimal:
    if abs(value) > MAX_POINTS:
        raise _Rule(f"expected at most {MAX_POINTS} in size")
    return value


Money = Annotated[
    Decimal,
    BeforeValidator(_decimal_string),
    PlainSerializer(str, return_type=str),
    WithJsonSchema({"type": "string", "pattern": _DECIMAL.pattern, "examples": ["25.50"]}),
]
MonthDay = Annotated[
    str,
    StringConstraints(max_length=10),
    AfterValidator(_month_day),
    WithJsonSchema({"type": "string", "pattern": _MONTH_DAY.pattern, "examples": ["03-15"]}),
]
Email = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=254), AfterValidator(_email)
]
_DATE_TIME_SCHEMA = WithJsonSchema(
    {"type": "string", "format": "date-time", "examples": ["2026-11-21T10:00:00+00:00"]}
)
Moment = Annotated[datetime, BeforeValidator(_moment), _DATE_TIME_SCHEMA]
Instant = Annotated[datetime, BeforeValidator(_instant), _DATE_TIME_SCHEMA]
Amount = Annotated[
    Decimal,
    BeforeValidator(_amount),
    PlainSerializer(str, return_type=str),
    WithJsonSchema(
        {"anyOf": [{"type": "number"}, {"type": "string", "pattern": _DECIMAL.pattern}]}
    ),
]
Id = Annotated[
    str,
    BeforeValidator(_id_text),
    StringConstraints(min_length=1, max_length=128),
    AfterValidator(_safe),
    WithJsonSchema(
        {"anyOf": [{"type": "string", "minLength": 1, "maxLength": 128}, {"type": "integer"}]}
    ),
]
Name = Annotated[str, StringConstraints(max_length=256), AfterValidator(_safe)]
Text = Annotated[str, StringConstraints(max_length=MAX_TEXT_CHARS), AfterValidator(_safe_text)]
Points = Annotated[int, Field(ge=0, le=MAX_POINTS)]
# A platform's balance after an event: never negative, never beyond what points can reach.
BalancePoints = Annotated[int, Field(ge=0, le=MAX_POINTS)]
Score = Annotated[float, Field(ge=-MAX_POINTS, le=MAX_POINTS, allow_inf_nan=False)]
LoyaltyStatus = Literal["member", "guest"]


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class _Tolerant(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class Customer(_Strict):
    id: Id
    email: Email | None = None
    first_name: Name | None = None
    last_name: Name | None = None


class Balance(_Tolerant):
    """The platform's authoritative balance after the event."""

    points: BalancePoints
    credits: Money | None = None


class Reward(_Tolerant):
    id: Id | None = None
    name: Name
    reward_type: Name | None = None
    value: Name | Annotated[int, Field(ge=-MAX_POINTS, le=MAX_POINTS)] | Score | None = None


class EnrolledData(_Tolerant):
    loyalty_status: LoyaltyStatus = "member"
    enrolled_at: Moment | None = None
    referral_code: Name | None = None
    referral_url: Text | None = None
    date_of_birth: MonthDay | None = None


class UpdatedData(_Tolerant):
    email: Email | None = None
    first_name: Name | None = None
    last_name: Name | None = None
    loyalty_status: LoyaltyStatus | None = None
    blocked: bool | None = None
    referral_url: Text | None = None
    insights_segment: Literal["Loyal", "At Risk", "Win Back"] | None = None
    tags: Annotated[list[Name], Field(max_length=100)] | None = None


class PointsEarnedData(_Tolerant):
    points: Points
    credits: Money | None = None
    pending: bool = False
    action: Name | None = None
    balance: Balance | None = None


class PointsRedeemedData(_Tolerant):
    redemption_id: Id
    code: Name
    reward: Reward
    points: Points = 0
    credits: Money | None = None
    expires_at: Moment | None = None
    balance: Balance | None = None


class RewardUsedData(_Tolerant):
    redemption_id: Id
    code: Name
    order_id: Id | None = None


class TierChangedData(_Tolerant):
    tier: Annotated[str, StringConstraints(min_length=1, max_length=256), AfterValidator(_safe)]
    previous_tier: Name | None = None
    direction: Literal["up", "down"] | None = None
    tier_expires_at: Moment | None = None
    progress: Amount | None = None
    next_tier: Name | None = None
    progress_to_next: Amount | None = None
    progress_to_renew: Amount | None = None
    forecast_tier: Name | None = None


class ReferralCompletedData(_Tolerant):
    referred_customer_id: Id | None = None
    reward: Annotated[Reward, BeforeValidator(_reward_name)] | None = None


class BirthdayUpdatedData(_Tolerant):
    date_of_birth: MonthDay


class PointsApprovedData(_Tolerant):
    points: Points
    balance: Balance | None = None


class PointsExpiredData(_Tolerant):
    points: Points
    reason: Text | None = None
    balance: Balance | None = None


class PointsAdjustedData(_Tolerant):
    points: Annotated[int, Field(ge=-MAX_POINTS, le=MAX_POINTS)]
    reason: Text | None = None
    balance: Balance | None = None


class PointsExpiringData(_Tolerant):
    points: Points
    expires_at: Moment


class MembershipStartedData(_Tolerant):
    membership_tier_id: Id
    source: Name | None = None
    started_at: Moment | None = None
    ends_at: Moment | None = None


class MembershipCancelledData(_Tolerant):
    membership_tier_id: Id | None = None
    source: Name | None = None
    cancellation_policy: Name | None = None
    ends_at: Moment | None = None


class ErasedData(_Tolerant):
    """A right-to-erasure request carries nothing but the customer's id (in the envelope)."""


class _Envelope(_Strict):
    event_id: Id
    occurred_at: Instant
    source: Name | None = None
    customer: Customer

    @property
    def occurred_at_utc(self) -> datetime:
        return self.occurred_at.astimezone(UTC)


class CustomerEnrolled(_Envelope):
    type: Literal["customer.enrolled"]
    data: EnrolledData


class CustomerUpdated(_Envelope):
    type: Literal["customer.updated"]
    data: UpdatedData


class PointsEarned(_Envelope):
    type: Literal["points.earned"]
    data: PointsEarnedData


class PointsRedeemed(_Envelope):
    type: Literal["points.redeemed"]
    data: PointsRedeemedData


class RewardUsed(_Envelope):
    type: Literal["reward.used"]
    data: RewardUsedData


class TierChanged(_Envelope):
    type: Literal["tier.changed"]
    data: TierChangedData


class ReferralCompleted(_Envelope):
    type: Literal["referral.completed"]
    data: ReferralCompletedData


class BirthdayUpdated(_Envelope):
    type: Literal["birthday.updated"]
    data: BirthdayUpdatedData


class PointsApproved(_Envelope):
    type: Literal["points.approved"]
    data: PointsApprovedData


class PointsExpired(_Envelope):
    type: Literal["points.expired"]
    data: PointsExpiredData


class PointsAdjusted(_Envelope):
    type: Literal["points.adjusted"]
    data: PointsAdjustedData


class PointsExpiring(_Envelope):
    type: Literal["points.expiring"]
    data: PointsExpiringData


class MembershipStarted(_Envelope):
    type: Literal["membership.started"]
    data: MembershipStartedData


class MembershipCancelled(_Envelope):
    type: Literal["membership.cancelled"]
    data: MembershipCancelledData


class CustomerErased(_Envelope):
    """Forget the customer (GDPR Art. 17): see stream.domain.erasure."""

    type: Literal["customer.erased"]
    data: ErasedData = Field(default_factory=ErasedData)


LoyaltyEvent = Annotated[
    CustomerEnrolled
    | CustomerUpdated
    | PointsEarned
    | PointsRedeemed
    | RewardUsed
    | TierChanged
    | ReferralCompleted
    | BirthdayUpdated
    | PointsApproved
    | PointsExpired
    | PointsAdjusted
    | PointsExpiring
    | MembershipStarted
    | MembershipCancelled
    | CustomerErased,
    Field(discriminator="type"),
]
# Typed through Any: mypy's incremental cache misreads the annotated union once this module
# changes (a false arg-type error that a fresh cache does not show).
EVENT_ADAPTER: TypeAdapter[LoyaltyEvent] = TypeAdapter(cast(Any, LoyaltyEvent))
EVENT_TYPES: tuple[str, ...] = (
    "customer.enrolled",
    "customer.updated",
    "points.earned",
    "points.redeemed",
    "reward.used",
    "tier.changed",
    "referral.completed",
    "birthday.updated",
    "points.approved",
    "points.expired",
    "points.adjusted",
    "points.expiring",
    "membership.started",
    "membership.cancelled",
    "customer.erased",
)


# Context pydantic fills from the rule (a bound, a length, a pattern, the choices), never from
# the input: a message whose context holds only these may be shown as pydantic words it.
_RULE_CONTEXT = frozenset(
    {
        "gt",
        "ge",
        "lt",
        "le",
        "multiple_of",
        "min_length",
        "max_length",
        "actual_length",
        "expected_plural",
        "field_type",
        "pattern",
        "expected",
        "class_name",
        "discriminator",
        "max_digits",
        "decimal_places",
        "whole_digits",
    }
)
_ID_ADAPTER: TypeAdapter[str] = TypeAdapter(Id)
_MAX_FIELD_NAME_CHARS = 64


def _printable(value: object, limit: int) -> str:
    return _UNSAFE_CHARS.sub("?", str(value))[:limit]


def _event_id(doc: dict[str, Any]) -> str:
    """The document's event id if it is a valid one (a valid id names the event; anything
    else may be any value at all), else "?"."""
    try:
        return _ID_ADAPTER.validate_python(doc.get("event_id"))
    except ValidationError:
        return "?"


def _rule(item: ErrorDetails) -> str:
    """What `item` says is wrong, in words that hold nothing of the input."""
    context = item.get("ctx", {})
    if item["type"] == "value_error":
        error = context.get("error")
        return str(error) if isinstance(error, _Rule) else "is not valid"
    if item["type"] == "union_tag_invalid":
        return f"expected one of the event types {context.get('expected_tags', '')}"
    if set(context) <= _RULE_CONTEXT:
        return item["msg"]
    return f"is not valid ({item['type']})"


def _describe(error: ValidationError, doc: dict[str, Any]) -> str:
    kind = doc.get("type")
    head = f"{kind if kind in EVENT_TYPES else '?'} event {_event_id(doc)}: "
    errors = error.errors(include_url=False, include_input=False)
    parts = []
    for item in errors[:5]:
        # The discriminator puts the type name into the location; people think in fields. A
        # name is a field's (an unexpected field's, too), so it is shown, made printable.
        loc = [_printable(p, _MAX_FIELD_NAME_CHARS) for p in item["loc"] if p not in EVENT_TYPES]
        parts.append(f"{'.'.join(loc) or 'type'}: {_rule(item)}")
    more = len(errors) - 5
    tail = f"; and {more} more" if more > 0 else ""
    return head + "; ".join(parts) + tail


def check_record(raw: bytes | None) -> bytes:
    """The record's value, if it has one within the size limit.

    Raises:
        InvalidEvent: a tombstone, or a record beyond MAX_EVENT_BYTES.
    """
    if raw is None:
        raise InvalidEvent("the record has no value (a tombstone?)", error_class="EmptyRecord")
    if len(raw) > MAX_EVENT_BYTES:
        raise InvalidEvent(
            f"the record is {len(raw)} bytes; events are limited to {MAX_EVENT_BYTES}",
            error_class="RecordTooLarge",
        )
    return raw


def parse_event(
    raw: bytes | None, *, framing: str = "", known_email: str | None = None
) -> LoyaltyEvent:
    """Parse one Kafka record value (or a framed record's JSON payload) into a loyalty event.

    Args:
        framing: words on the framing the JSON came in, appended to a JSON syntax reason.
        known_email: see `parse_document`.

    Raises:
        InvalidEvent: the bytes are not a valid event; the reason names the field and the rule.
    """
    raw = check_record(raw)
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidEvent(
            f"not UTF-8 JSON{framing}: {exc}", error_class="UnparsableJSON"
        ) from None
    return parse_document(doc, known_email=known_email)


def parse_document(
    doc: object, *, expected: str = "a JSON object", known_email: str | None = None
) -> LoyaltyEvent:
    """Validate a decoded document (JSON's, or an Avro record's) as a loyalty event.

    Args:
        known_email: an address that passed the email check before (the one the customer's
            stored profile holds); an email field holding exactly it is not checked again.

    Raises:
        InvalidEvent: the reason names the field and the rule.
    """
    if not isinstance(doc, dict):
        raise InvalidEvent(f"expected {expected}", error_class="SchemaViolation")
    context = {KNOWN_EMAIL: known_email} if known_email is not None else None
    try:
        event = EVENT_ADAPTER.validate_python(doc, context=context)
    except ValidationError as exc:
        raise InvalidEvent(_describe(exc, doc), error_class="SchemaViolation") from None
    return event


def check_key(event: LoyaltyEvent, key: bytes | None) -> None:
    """Reject an event whose Kafka key is not its customer id (the table is keyed by it).

    Raises:
        InvalidEvent: the key is missing or names another customer.
    """
    if key is None or key.decode("utf-8", "replace") != event.customer.id:
        # The key's bytes are not shown: a producer keying by something else (an email) would
        # put it in the reason. The dead letter keeps the key itself.
        shown = "no key" if key is None else "another key"
        raise InvalidEvent(
            f"the record has {shown}, not customer.id {event.customer.id!r}; producers must "
            "key events by customer id so that each customer's events share a partition",
            error_class="KeyMismatch",
        )
