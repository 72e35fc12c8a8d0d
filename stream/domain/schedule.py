"""Time-based campaign triggers: what falls due for a profile at a moment; pure.

Each rule derives due moments from the profile alone: N days before `points_expire_at`, an
unused reward's `expires_at` or `tier.expires_at`; local midnight of the birthday in a
configured timezone; the moment a tier update put `progress_to_next` within a threshold.

A due moment fires when the scan sees it in `(now - window, now]`:
- once per due moment: the id is `{customer_id}:{rule}:{due}` (a re-send is an upsert at
  Ometria), and the profile remembers what fired (`schedule_fired`, written through the table
  and so through its changelog), so a restart or a worker that takes the partition over does
  not fire it again;
- never for a due moment older than the window: state rebuilt by replaying old history (a new
  deployment, a lost store) has no markers, and without the window it would fire every
  warning of the past at once. Within the window a rebuilt state re-sends the same ids, which
  Ometria treats as one event. The window is also the longest outage the scan catches up on.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field

from stream.domain.conditions import (
    SCAN_VARIABLES,
    Condition,
    ConditionError,
    Variables,
    check,
    compile_condition,
)
from stream.domain.profile import Profile, evolve
from stream.domain.records import (
    MAX_EVENT_TYPE_CHARS,
    MAX_PROPERTY_CHARS,
    Scalar,
    custom_event_record,
)
from stream.errors import MappingError

# Profiles the worker's scan handles per hold of the fold's lock (stream.runtime.scanner): the
# longest a fold batch waits for the scan is one slice's work.
SCAN_SLICE = 500

POINTS_EXPIRING = "loyalty_points_expiring"
REWARD_EXPIRING = "loyalty_reward_expiring"
BIRTHDAY = "loyalty_birthday"
TIER_EXPIRING = "loyalty_tier_expiring"
TIER_APPROACHING = "loyalty_tier_approaching"
SCHEDULE_RULES: dict[str, tuple[str, ...]] = {
    POINTS_EXPIRING: ("points", "expires_at", "days_left", "points_balance"),
    REWARD_EXPIRING: ("reward_name", "reward_code", "expires_at", "days_left"),
    BIRTHDAY: ("date_of_birth", "first_name", "points_balance"),
    TIER_EXPIRING: ("tier", "tier_expires_at", "days_left", "progress_to_renew"),
    TIER_APPROACHING: ("tier", "next_tier", "progress_to_next"),
}
DEFAULT_LEAD_DAYS: dict[str, tuple[int, ...]] = {
    POINTS_EXPIRING: (30, 7),  # a warning and a last chance
    REWARD_EXPIRING: (7, 1),
    TIER_EXPIRING: (30, 7),
}


@dataclass(frozen=True, slots=True)
class ScheduleRule:
    """A user's choices for one time-based rule."""

    enabled: bool = True
    event_type: str | None = None
    lead_days: tuple[int, ...] | None = None  # None: DEFAULT_LEAD_DAYS
    condition: Condition | None = None


@dataclass(frozen=True, slots=True)
class ScheduleConfig:
    rules: dict[str, ScheduleRule] = field(default_factory=dict)
    window: timedelta = timedelta(days=1)
    birthday_timezone: str = "UTC"
    approaching_within: Decimal = Decimal(100)
    disabled: frozenset[str] = frozenset()  # STREAM_TRIGGERS__DISABLED: event types not sent


class ScheduleEntry(BaseModel):
    """A `[schedule.<rule>]` table as written in a mapping file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    event_type: str | None = Field(default=None, min_length=1, max_length=MAX_EVENT_TYPE_CHARS)
    lead_days: list[Annotated[int, Field(ge=1, le=366)]] | None = Field(default=None, min_length=1)
    condition: str | None = Field(default=None, min_length=1)
    timezone: str | None = None  # loyalty_birthday only
    within: Decimal | None = Field(default=None, ge=0)  # loyalty_tier_approaching only


def parse_schedule(origin: str, entries: dict[str, ScheduleEntry]) -> ScheduleConfig:
    """The time-based rules a mapping file's `[schedule.<rule>]` tables configure."""
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
            _check_timezone(where, entry.timezone)
            config = replace(config, birthday_timezone=entry.timezone)
        if entry.within is not None:
            if name != "loyalty_tier_approaching":
                raise MappingError(f"{where}: within applies to loyalty_tier_approaching only")
            config = replace(config, approaching_within=entry.within)
        rules[name] = _rule(where, entry)
    return replace(config, rules=rules)


def _check_timezone(where: str, name: str) -> None:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise MappingError(
            f'{where}: no timezone {name!r}; use an IANA name such as "Europe/London"'
        ) from None


def _rule(where: str, entry: ScheduleEntry) -> ScheduleRule:
    condition = None
    if entry.condition is not None:
        try:
            condition = compile_condition(entry.condition, allowed=SCAN_VARIABLES)
        except ConditionError as exc:
            raise MappingError(f"{where}, condition {entry.condition!r}: {exc}") from None
    return ScheduleRule(
        enabled=entry.enabled,
        event_type=entry.event_type,
        lead_days=tuple(sorted(set(entry.lead_days), reverse=True)) if entry.lead_days else None,
        condition=condition,
    )


@dataclass(frozen=True, slots=True)
class Due:
    """One custom event due for a customer, and the marker that says it fired."""

    marker: str
    record: dict[str, Any]


def _stamp(when: datetime) -> str:
    at = when.astimezone(UTC)
    return f"{at:%Y-%m-%dT%H:%M:%S}Z"


def _iso(when: datetime | None) -> str | None:
    return None if when is None else when.isoformat()


def _number(text: str | None) -> float | None:
    try:
        return None if text is None else float(Decimal(text))
    except InvalidOperation:
        return None


Candidate = tuple[str, str, datetime, dict[str, Scalar]]  # rule, id part, due, properties


def _before(
    rule: str, at: datetime | None, config: ScheduleConfig
) -> Iterable[tuple[int, datetime]]:
    if at is None:
        return ()
    options = config.rules.get(rule)
    leads = (options.lead_days if options else None) or DEFAULT_LEAD_DAYS[rule]
    return ((days, at - timedelta(days=days)) for days in leads)


def _candidates(profile: Profile, now: datetime, config: ScheduleConfig) -> Iterable[Candidate]:
    balance = profile.points.balance
    expire = profile.points_expire_at
    if expire is not None and expire > now:
        points = profile.expiring_points if profile.expiring_points is not None else balance
        for days, due in _before(POINTS_EXPIRING, expire, config):
            yield POINTS_EXPIRING, f"{days}d", due, {
                "points": points, "expires_at": _iso(expire), "days_left": days,
                "points_balance": balance,
            }  # fmt: skip
    reward = profile.last_reward
    if reward is not None and not reward.used and reward.expires_at and reward.expires_at > now:
        for days, due in _before(REWARD_EXPIRING, reward.expires_at, config):
            yield REWARD_EXPIRING, f"{days}d", due, {
                "reward_name": reward.name, "reward_code": reward.code,
                "expires_at": _iso(reward.expires_at), "days_left": days,
            }  # fmt: skip
    tier = profile.tier
    if tier.name and tier.expires_at is not None and tier.expires_at > now:
        for days, due in _before(TIER_EXPIRING, tier.expires_at, config):
            yield TIER_EXPIRING, f"{days}d", due, {
                "tier": tier.name, "tier_expires_at": _iso(tier.expires_at), "days_left": days,
                "progress_to_renew": _number(tier.progress_to_renew),
            }  # fmt: skip
    if profile.date_of_birth:
        for due in _birthdays(profile.date_of_birth, now, config.birthday_timezone):
            yield BIRTHDAY, "", due, {
                "date_of_birth": profile.date_of_birth, "first_name": profile.first_name,
                "points_balance": balance,
            }  # fmt: skip
    to_next = _number(tier.progress_to_next)
    tier_set = profile.as_of.get("tier")
    if tier.next and to_next is not None and tier_set and to_next <= config.approaching_within:
        # Due when the tier update that brought the customer this close happened.
        due = datetime.fromisoformat(tier_set.split("|", 1)[0])
        yield TIER_APPROACHING, "", due, {
            "tier": tier.name, "next_tier": tier.next, "progress_to_next": to_next,
        }  # fmt: skip


def _birthdays(month_day: str, now: datetime, timezone: str) -> Iterable[datetime]:
    """Local midnight of the birthday this year and last (the window may span New Year)."""
    month, day = (int(part) for part in month_day.split("-"))
    zone = ZoneInfo(timezone)
    year = now.astimezone(zone).year
    for candidate in (year - 1, year):
        try:
            yield datetime(candidate, month, day, tzinfo=zone)
        except ValueError:  # 29 February outside a leap year: the 28th
            yield datetime(candidate, month, day - 1, tzinfo=zone)


def due(profile: Profile, now: datetime, config: ScheduleConfig) -> list[Due]:
    """The time-based custom events due for a profile at `now`, not fired before."""
    if not profile.email:
        return []
    fired = set(profile.schedule_fired)
    variables: Variables | None = None
    results = []
    for rule, part, when, properties in _candidates(profile, now, config):
        if not now - config.window < when <= now:
            continue
        stamp = _stamp(when)
        marker = f"{stamp}|{rule}" + (f":{part}" if part else "")
        if marker in fired:
            continue
        options = config.rules.get(rule, _DEFAULTS)
        if not options.enabled or rule in config.disabled:
            continue
        if options.condition is not None:
            if variables is None:
                variables = Variables(None, profile, profile, now)
            if not check(options.condition, variables):
                continue
        record = custom_event_record(
            id=f"{profile.customer_id}:{rule}:" + (f"{part}:" if part else "") + stamp,
            timestamp=when.astimezone(UTC),
            event_type=options.event_type or rule,
            identity_email=profile.email,
            identity_account_id=profile.customer_id,
            properties={
                key: value[:MAX_PROPERTY_CHARS] if isinstance(value, str) else value
                for key, value in properties.items()
                if value is not None
            },
        )
        results.append(Due(marker=marker, record=record))
    return results


_DEFAULTS = ScheduleRule()


def mark_fired(profile: Profile, fired: Iterable[Due], now: datetime, window: timedelta) -> Profile:
    """The profile remembering what fired; markers that can no longer be due are dropped."""
    oldest = _stamp(now - window - timedelta(days=1))
    kept = [marker for marker in profile.schedule_fired if marker >= oldest]
    return evolve(profile, {"schedule_fired": (*kept, *(item.marker for item in fired))})
