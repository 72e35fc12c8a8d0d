"""What the Ometria stand-in remembers and decides: stored records, logs, faults, rate limit.

`SandboxState.push` turns one push request into a `Reply` (status, body, headers, delay) without
touching HTTP, so the aiohttp layer in `server.py` stays a thin adapter. The clock is injected
so tests can hold time still.
"""

from __future__ import annotations

import hmac
import logging
import math
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Final
from uuid import uuid4

from stream.ops.sandbox.config import SandboxConfig
from stream.ops.sandbox.rules import (
    NOT_VALID,
    InvalidBatch,
    Record,
    RecordError,
    RecordType,
    check_batch,
    parse_body,
    record_id,
    record_types_in,
    validate_record,
)

logger = logging.getLogger("stream.ops.sandbox")

Clock = Callable[[], float]

# Ometria keeps the 100 newest errors (docs/ometria-contract.md#the-errors-list).
MAX_ERRORS: Final = 100
MAX_LOGGED_REQUESTS: Final = 10_000  # bounds memory on long `make run` sessions
NOT_AUTHORISED: Final = "API key is not authorised to access this resource"
RATE_LIMITED: Final = "Rate limit exceeded"


@dataclass(frozen=True, slots=True)
class Reply:
    """An HTTP answer decided by the state: JSON body, extra headers, delay before sending."""

    status: int
    body: object
    headers: Mapping[str, str] = field(default_factory=dict)
    delay_seconds: float = 0.0


class InvalidFaults(ValueError):
    """A `/_sandbox/faults` update is malformed; the message names the field to fix."""


@dataclass(frozen=True, slots=True)
class Faults:
    """Misbehaviour switched on at runtime; replaced as a whole on every change."""

    fail_next: int = 0
    fail_status: int = 503
    fail_until: float | None = None  # clock reading at which the failure window closes
    rate_limit: float | None = None  # overrides the configured rate when set
    latency_ms: float = 0.0
    retry_after: int | None = None
    reject_ids: frozenset[str] = frozenset()
    refuse_ids: frozenset[str] = frozenset()  # a request holding one of these gets a 400
    queue_size_remaining: int | None = None

    @classmethod
    def from_config(cls, config: SandboxConfig) -> Faults:
        """Return the faults the sandbox starts with."""
        return cls(
            fail_next=config.fail_next,
            fail_status=config.fail_status,
            latency_ms=config.latency_ms,
            retry_after=config.retry_after,
            queue_size_remaining=config.queue_size_remaining,
        )

    def failing(self, now: float) -> bool:
        """Tell whether the next push request must be answered with `fail_status`."""
        return self.fail_next > 0 or (self.fail_until is not None and now < self.fail_until)

    def to_json(self, now: float, configured_rate: float) -> dict[str, object]:
        """Return the faults as `/_sandbox/faults` shows them."""
        window = 0.0 if self.fail_until is None else max(0.0, self.fail_until - now)
        return {
            "fail_next": self.fail_next,
            "fail_status": self.fail_status,
            "fail_for_seconds": round(window, 3),
            "rate_limit": self.rate_limit,
            "effective_rate_limit": self.effective_rate(configured_rate),
            "latency_ms": self.latency_ms,
            "retry_after": self.retry_after,
            "reject_ids": sorted(self.reject_ids),
            "refuse_ids": sorted(self.refuse_ids),
            "queue_size_remaining": self.queue_size_remaining,
        }

    def effective_rate(self, configured_rate: float) -> float:
        """Return the requests-per-second limit in force (0 = off)."""
        return configured_rate if self.rate_limit is None else self.rate_limit

    def updated(self, changes: object, now: float) -> Faults:
        """Return these faults with the fields named in a `/_sandbox/faults` body changed.

        Raises:
            InvalidFaults: the body is not an object, names an unknown field or has a bad value.
        """
        if not isinstance(changes, dict):
            raise InvalidFaults('Send a JSON object such as {"fail_next": 2}')
        unknown = sorted(set(changes) - _FAULT_FIELDS)
        if unknown:
            raise InvalidFaults(
                f"Unknown fault field(s) {', '.join(unknown)}; "
                f"known: {', '.join(sorted(_FAULT_FIELDS))}"
            )
        new = self
        for name, value in changes.items():
            new = _FAULT_SETTERS[name](new, value, now)
        return new


def _whole(name: str, value: object, *, nullable: bool = False) -> int | None:
    if value is None and nullable:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    raise InvalidFaults(f"{name} must be a whole number >= 0{' or null' if nullable else ''}")


def _amount(name: str, value: object, *, nullable: bool = False) -> float | None:
    if value is None and nullable:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        return float(value)
    raise InvalidFaults(f"{name} must be a number >= 0{' or null' if nullable else ''}")


def _set_fail_next(faults: Faults, value: object, now: float) -> Faults:
    return replace(faults, fail_next=_whole("fail_next", value) or 0)


def _set_fail_status(faults: Faults, value: object, now: float) -> Faults:
    status = _whole("fail_status", value)
    if status is None or not 400 <= status <= 599:
        raise InvalidFaults("fail_status must be an HTTP error status, 400..599")
    return replace(faults, fail_status=status)


def _set_fail_for_seconds(faults: Faults, value: object, now: float) -> Faults:
    seconds = _amount("fail_for_seconds", value, nullable=True)
    return replace(faults, fail_until=now + seconds if seconds else None)


def _set_rate_limit(faults: Faults, value: object, now: float) -> Faults:
    return replace(faults, rate_limit=_amount("rate_limit", value, nullable=True))


def _set_latency_ms(faults: Faults, value: object, now: float) -> Faults:
    return replace(faults, latency_ms=_amount("latency_ms", value) or 0.0)


def _set_retry_after(faults: Faults, value: object, now: float) -> Faults:
    return replace(faults, retry_after=_whole("retry_after", value, nullable=True))


def _set_reject_ids(faults: Faults, value: object, now: float) -> Faults:
    if not (isinstance(value, list) and all(isinstance(item, str) for item in value)):
        raise InvalidFaults("reject_ids must be a list of record id strings")
    return replace(faults, reject_ids=frozenset(str(item) for item in value))


def _set_refuse_ids(faults: Faults, value: object, now: float) -> Faults:
    if not (isinstance(value, list) and all(isinstance(item, str) for item in value)):
        raise InvalidFaults("refuse_ids must be a list of record id strings")
    return replace(faults, refuse_ids=frozenset(value))


def _set_queue_size_remaining(faults: Faults, value: object, now: float) -> Faults:
    remaining = _whole("queue_size_remaining", value, nullable=True)
    return replace(faults, queue_size_remaining=remaining)


_FAULT_SETTERS: Final[Mapping[str, Callable[[Faults, object, float], Faults]]] = {
    "fail_next": _set_fail_next,
    "fail_status": _set_fail_status,
    "fail_for_seconds": _set_fail_for_seconds,
    "rate_limit": _set_rate_limit,
    "latency_ms": _set_latency_ms,
    "retry_after": _set_retry_after,
    "reject_ids": _set_reject_ids,
    "refuse_ids": _set_refuse_ids,
    "queue_size_remaining": _set_queue_size_remaining,
}
_FAULT_FIELDS: Final = frozenset(_FAULT_SETTERS)


class SlidingWindowLimiter:
    """Admit at most `rate` requests in any sliding one-second window.

    A rate below 1 admits one request per 1/rate seconds. Only admitted requests are counted,
    so a client that keeps hammering still gets through once the window moves on.
    """

    def __init__(self) -> None:
        self._admitted: deque[float] = deque()

    def admit(self, now: float, rate: float) -> bool:
        """Record and allow a request at `now`, or refuse it; a rate of 0 allows everything."""
        if rate <= 0:
            return True
        capacity, window = (math.floor(rate), 1.0) if rate >= 1 else (1, 1.0 / rate)
        while self._admitted and self._admitted[0] <= now - window:
            self._admitted.popleft()
        if len(self._admitted) >= capacity:
            return False
        self._admitted.append(now)
        return True


@dataclass(frozen=True, slots=True)
class StoredRecord:
    """A record as Ometria would hold it after upserts, and how many times it arrived."""

    fields: Record
    received: int

    def to_json(self) -> Record:
        """Return the stored fields plus the `received` count."""
        return {**self.fields, "received": self.received}


@dataclass(slots=True)
class _Totals:
    requests: int = 0
    by_status: Counter[int] = field(default_factory=Counter)
    records_accepted: int = 0
    records_rejected: int = 0
    max_records_in_a_request: int = 0
    mixed_type_requests: int = 0


@dataclass(frozen=True, slots=True)
class _Incoming:
    """What is known about a push request before it is judged."""

    request_id: str
    raw: bytes | None
    body: object = None
    unreadable: InvalidBatch | None = None  # why the body is not JSON, if it is not
    record_count: int = 0
    record_type: str | None = None
    # Stamped on arrival: judging a large body takes a while, and a rate is about arrivals.
    received_at: datetime = field(default_factory=lambda: datetime.now(UTC))


class SandboxState:
    """Everything one sandbox account holds; owned by the aiohttp app, one per app."""

    def __init__(self, config: SandboxConfig, *, clock: Clock) -> None:
        self._config = config
        self._clock = clock
        self._faults = Faults.from_config(config)
        self._contacts: dict[tuple[str, str], StoredRecord] = {}
        self._events: dict[str, StoredRecord] = {}
        self._errors: deque[dict[str, object]] = deque(maxlen=MAX_ERRORS)
        self._requests: deque[dict[str, object]] = deque(maxlen=MAX_LOGGED_REQUESTS)
        self._limiter = SlidingWindowLimiter()
        self._totals = _Totals()

    # --- Ometria API -------------------------------------------------------------------------

    def push(self, auth: str | None, raw: bytes | None) -> Reply:
        """Answer `POST /v2/push`; `raw` is None when the body was too large to read."""
        incoming = _Incoming(str(uuid4()), raw)
        denied = self._check_auth(auth)
        if denied is not None:
            return self._finish(incoming, denied)
        incoming = self._inspect(incoming)
        now = self._clock()
        faults = self._faults
        if faults.failing(now):
            self._faults = replace(faults, fail_next=max(0, faults.fail_next - 1))
            if faults.fail_status == 429:
                return self._finish(incoming, self._rate_limited())
            message = f"Sandbox fault: answering {faults.fail_status} as told"
            return self._finish(incoming, _error(faults.fail_status, message))
        if not self._limiter.admit(now, faults.effective_rate(self._config.rate_limit)):
            return self._finish(incoming, self._rate_limited())
        if raw is None:
            too_large = (
                f"Request body is too large; send at most {self._config.max_records} records "
                f"of at most {self._config.max_record_bytes} bytes each"
            )
            return self._finish(incoming, _error(413, too_large))
        if incoming.unreadable is not None:
            return self._finish(incoming, _error(400, str(incoming.unreadable)))
        try:
            batch = check_batch(incoming.body, max_records=self._config.max_records)
        except InvalidBatch as exc:
            return self._finish(incoming, _error(400, str(exc)))
        refused = sorted({str(record_id(r)) for r in batch.records} & faults.refuse_ids)
        if refused:
            message = f"Sandbox fault: record {refused[0]} refused as told"
            return self._finish(incoming, _error(400, message))
        accepted, rejected = self._store(batch.records, batch.record_type, incoming.request_id)
        headers: dict[str, str] = {}
        if faults.queue_size_remaining is not None:
            headers["X-QueueSize-Remaining"] = str(faults.queue_size_remaining)
        body = {
            "status": "OK",
            "request_id": incoming.request_id,
            "accepted": accepted,
            "rejected": rejected,
        }
        return self._finish(incoming, Reply(202, body, headers), accepted, rejected)

    def errors(self, auth: str | None) -> Reply:
        """Answer `GET /v2/push/_errors`: the newest record errors, newest first."""
        denied = self._check_auth(auth)
        return denied if denied is not None else Reply(200, list(self._errors))

    # --- inspection and control --------------------------------------------------------------

    def contacts(self, *, listing_id: str | None, collection: str | None) -> list[Record]:
        """Return stored contact listings, optionally only those with this id / collection."""
        return [
            stored.to_json()
            for (stored_collection, stored_id), stored in self._contacts.items()
            if listing_id in (None, stored_id) and collection in (None, stored_collection)
        ]

    def events(self, *, event_id: str | None, event_type: str | None) -> list[Record]:
        """Return stored custom events, optionally only this id / event type."""
        return [
            stored.to_json()
            for stored_id, stored in self._events.items()
            if event_id in (None, stored_id)
            and event_type in (None, stored.fields.get("event_type"))
        ]

    def requests(self) -> list[dict[str, object]]:
        """Return the push request log, oldest first."""
        return list(self._requests)

    def stats(self) -> dict[str, object]:
        """Return counters over every push request since start or the last reset."""
        totals = self._totals
        return {
            "requests": totals.requests,
            "by_status": {str(status): n for status, n in sorted(totals.by_status.items())},
            "contacts": len(self._contacts),
            "events": len(self._events),
            "records_accepted": totals.records_accepted,
            "records_rejected": totals.records_rejected,
            "max_records_in_a_request": totals.max_records_in_a_request,
            "mixed_type_requests": totals.mixed_type_requests,
            "errors": len(self._errors),
        }

    def faults_json(self) -> dict[str, object]:
        """Return the faults in force, as `/_sandbox/faults` shows them."""
        return self._faults.to_json(self._clock(), self._config.rate_limit)

    def change_faults(self, changes: object) -> None:
        """Apply a `/_sandbox/faults` update; see `Faults.updated`."""
        self._faults = self._faults.updated(changes, self._clock())

    def clear_faults(self) -> None:
        """Switch every fault off; the configured rate limit stays in force."""
        self._faults = Faults()

    def reset(self, *, faults: bool) -> None:
        """Forget every record, error, logged request and counter (and faults if asked)."""
        self._contacts = {}
        self._events = {}
        self._errors.clear()
        self._requests.clear()
        self._limiter = SlidingWindowLimiter()
        self._totals = _Totals()
        if faults:
            self.clear_faults()

    # --- internals ---------------------------------------------------------------------------

    def _check_auth(self, auth: str | None) -> Reply | None:
        if auth is None:
            return _error(401, "Missing X-Ometria-Auth header")
        # Constant-time comparison: the sandbox should not teach clients a timing side channel.
        if not hmac.compare_digest(auth.encode(), self._config.api_key.encode()):
            return _error(403, NOT_AUTHORISED)
        return None

    def _rate_limited(self) -> Reply:
        retry_after = self._faults.retry_after
        headers = {} if retry_after is None else {"Retry-After": str(retry_after)}
        return _error(429, RATE_LIMITED, headers)

    def _inspect(self, incoming: _Incoming) -> _Incoming:
        # Size and type facts are recorded even when the request is then refused (faults,
        # 429), so a test can tell whether its client ever sent an oversized or mixed batch.
        if incoming.raw is None:
            return incoming
        try:
            body = parse_body(incoming.raw)
        except InvalidBatch as exc:
            return replace(incoming, unreadable=exc)
        kinds = record_types_in(body)
        count = len(body) if isinstance(body, list) else 0
        totals = self._totals
        totals.max_records_in_a_request = max(totals.max_records_in_a_request, count)
        if len(kinds) > 1:
            totals.mixed_type_requests += 1
        kind = next(iter(kinds)) if len(kinds) == 1 else ("mixed" if kinds else None)
        return replace(incoming, body=body, record_count=count, record_type=kind)

    def _store(
        self, records: list[Record], record_type: RecordType, request_id: str
    ) -> tuple[int, int]:
        accepted = rejected = 0
        for record in records:
            problems = validate_record(
                record, record_type, max_record_bytes=self._config.max_record_bytes
            )
            rid = record_id(record)
            if not problems and rid in self._faults.reject_ids:
                problems = [RecordError(NOT_VALID, "root > id", "rejected by sandbox fault")]
            if problems:
                rejected += 1
                for problem in problems:
                    self._errors.appendleft(
                        {
                            "error_message": problem.message,
                            "error_path": problem.path,
                            "record_id": rid,
                            "request_id": request_id,
                            "hint": problem.hint,
                        }
                    )
                continue
            accepted += 1
            if record_type == "contact":
                self._upsert_contact(record)
            elif record_type == "custom_event":
                self._upsert_event(record)
        return accepted, rejected

    def _upsert_contact(self, record: Record) -> None:
        collection = record.get("@collection", "")
        key = (collection if isinstance(collection, str) else "", str(record["id"]))
        old = self._contacts.get(key)
        if old is None:
            self._contacts[key] = StoredRecord(fields=dict(record), received=1)
            return
        # Ometria merges supplied fields into the listing, and custom fields one by one.
        merged = {**old.fields, **record}
        old_properties = old.fields.get("properties")
        new_properties = record.get("properties")
        if isinstance(old_properties, dict) and isinstance(new_properties, dict):
            merged["properties"] = {**old_properties, **new_properties}
        self._contacts[key] = StoredRecord(fields=merged, received=old.received + 1)

    def _upsert_event(self, record: Record) -> None:
        event_id = str(record["id"])
        old = self._events.get(event_id)
        received = 1 if old is None else old.received + 1
        self._events[event_id] = StoredRecord(fields=dict(record), received=received)

    def _finish(
        self, incoming: _Incoming, reply: Reply, accepted: int = 0, rejected: int = 0
    ) -> Reply:
        totals = self._totals
        totals.requests += 1
        totals.by_status[reply.status] += 1
        totals.records_accepted += accepted
        totals.records_rejected += rejected
        self._requests.append(
            {
                "request_id": incoming.request_id,
                "received_at": incoming.received_at.isoformat(),
                "status": reply.status,
                "type": incoming.record_type,
                "records": incoming.record_count,
                "accepted": accepted,
                "rejected": rejected,
                "bytes": None if incoming.raw is None else len(incoming.raw),
            }
        )
        logger.info(
            "push status=%d type=%s records=%d accepted=%d rejected=%d request_id=%s",
            reply.status,
            incoming.record_type,
            incoming.record_count,
            accepted,
            rejected,
            incoming.request_id,
        )
        return replace(reply, delay_seconds=self._faults.latency_ms / 1000)


def _error(status: int, message: str, headers: Mapping[str, str] | None = None) -> Reply:
    return Reply(status, {"status": "ERROR", "message": message}, headers or {})
