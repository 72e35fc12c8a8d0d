"""Inbound loyalty events: the pydantic models of the contract (design §3) and `parse_event`.

Unknown top-level fields are rejected (a typo must not pass silently); unknown fields inside
`data` are tolerated so producers can add fields before we read them.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Literal

import orjson
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    WithJsonSchema,
)

MAX_EVENT_BYTES = 64 * 1024
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_DECIMAL = re.compile(r"^-?\d{1,12}(\.\d{1,6})?$")
_MONTH_DAY = re.compile(r"^(?:\d{4}-|--)?(\d{2})-(\d{2})$")
_DAYS_IN_MONTH = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


class InvalidEvent(Exception):
    """An input record that is not a valid loyalty event; `reason` says what to fix."""

    def __init__(self, reason: str, *, error_class: str = "InvalidEvent") -> None:
        super().__init__(reason)
        self.reason = reason
        self.error_class = error_class


def _decimal_string(value: object) -> Decimal:
    # Money travels as a decimal string so no float rounding happens on the way.
    if not isinstance(value, str) or not _DECIMAL.match(value):
        raise ValueError("expected a decimal string such as '25.50'")
    try:
        return Decimal(value)
    except InvalidOperation:  # pragma: no cover - the pattern already guarantees this
        raise ValueError("expected a decimal string such as '25.50'") from None


def _month_day(value: str) -> str:
    match = _MONTH_DAY.match(value)
    if not match:
        raise ValueError("expected a birthday as MM-DD, --MM-DD or YYYY-MM-DD")
    month, day = int(match.group(1)), int(match.group(2))
    if not (1 <= month <= 12 and 1 <= day <= _DAYS_IN_MONTH[month - 1]):
        raise ValueError(f"{value!r} is not a calendar day")
    return f"{month:02d}-{day:02d}"


def _id_text(value: object) -> object:
    # Platforms such as Rivo use numeric ids; they are identifiers, so keep them as text.
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


def _amount(value: object) -> Decimal:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return Decimal(str(value))
    return _decimal_string(value)


def _reward_name(value: object) -> object:
    return {"name": value} if isinstance(value, str) else value


def _email(value: str) -> str:
    if not _EMAIL.match(value):
        raise ValueError("expected an email address")
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
    WithJsonSchema(
        {"anyOf": [{"type": "string", "minLength": 1, "maxLength": 128}, {"type": "integer"}]}
    ),
]
Name = Annotated[str, StringConstraints(max_length=256)]
Text = Annotated[str, StringConstraints(max_length=2048)]
Points = Annotated[int, Field(ge=0, le=10**12)]
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

    points: int
    credits: Money | None = None


class Reward(_Tolerant):
    id: Id | None = None
    name: Name
    reward_type: Name | None = None
    value: Name | int | float | None = None


class EnrolledData(_Tolerant):
    loyalty_status: LoyaltyStatus = "member"
    enrolled_at: AwareDatetime | None = None
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
    expires_at: AwareDatetime | None = None
    balance: Balance | None = None


class RewardUsedData(_Tolerant):
    redemption_id: Id
    code: Name
    order_id: Id | None = None


class TierChangedData(_Tolerant):
    tier: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    previous_tier: Name | None = None
    direction: Literal["up", "down"] | None = None
    tier_expires_at: AwareDatetime | None = None
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
    points: Annotated[int, Field(ge=-(10**12), le=10**12)]
    reason: Text | None = None
    balance: Balance | None = None


class PointsExpiringData(_Tolerant):
    points: Points
    expires_at: AwareDatetime


class MembershipStartedData(_Tolerant):
    membership_tier_id: Id
    source: Name | None = None
    started_at: AwareDatetime | None = None
    ends_at: AwareDatetime | None = None


class MembershipCancelledData(_Tolerant):
    membership_tier_id: Id | None = None
    source: Name | None = None
    cancellation_policy: Name | None = None
    ends_at: AwareDatetime | None = None


class _Envelope(_Strict):
    event_id: Id
    occurred_at: AwareDatetime
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
    | MembershipCancelled,
    Field(discriminator="type"),
]
EVENT_ADAPTER: TypeAdapter[LoyaltyEvent] = TypeAdapter(LoyaltyEvent)
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
)


def _describe(error: ValidationError, doc: Any) -> str:
    head = ""
    if isinstance(doc, dict):
        head = f"{doc.get('type', '?')} event {str(doc.get('event_id', '?'))[:128]}: "
    parts = []
    for item in error.errors()[:5]:
        # The discriminator puts the type name into the location; people think in fields.
        loc = [str(p) for p in item["loc"] if str(p) not in EVENT_TYPES]
        where = ".".join(loc) or "type"
        shown = item.get("input")
        got = f" (got {shown!r:.80})" if isinstance(shown, str | int | float | bool) else ""
        parts.append(f"{where}: {item['msg']}{got}")
    more = len(error.errors()) - 5
    tail = f"; and {more} more" if more > 0 else ""
    return head + "; ".join(parts) + tail


def parse_event(raw: bytes | None) -> LoyaltyEvent:
    """Parse one Kafka record value into a loyalty event.

    Raises:
        InvalidEvent: the bytes are not a valid event; the reason names the field and the rule.
    """
    if raw is None:
        raise InvalidEvent("the record has no value (a tombstone?)", error_class="EmptyRecord")
    if len(raw) > MAX_EVENT_BYTES:
        raise InvalidEvent(
            f"the record is {len(raw)} bytes; events are limited to {MAX_EVENT_BYTES}",
            error_class="RecordTooLarge",
        )
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidEvent(f"not UTF-8 JSON: {exc}", error_class="UnparsableJSON") from None
    if not isinstance(doc, dict):
        raise InvalidEvent("expected a JSON object", error_class="SchemaViolation")
    try:
        event = EVENT_ADAPTER.validate_python(doc)
    except ValidationError as exc:
        raise InvalidEvent(_describe(exc, doc), error_class="SchemaViolation") from None
    return event


def check_key(event: LoyaltyEvent, key: bytes | None) -> None:
    """Reject an event whose Kafka key is not its customer id (the table is keyed by it).

    Raises:
        InvalidEvent: the key is missing or names another customer.
    """
    shown = "no key" if key is None else f"the key {key.decode('utf-8', 'replace')!r:.140}"
    if key is None or key.decode("utf-8", "replace") != event.customer.id:
        raise InvalidEvent(
            f"the record has {shown}, not customer.id {event.customer.id!r}; producers must "
            "key events by customer id so that each customer's events share a partition",
            error_class="KeyMismatch",
        )
