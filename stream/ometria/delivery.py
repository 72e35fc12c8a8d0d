"""The push policy: rate limit, retry with backoff, split and dead-letter; the only retry loop.

Contract: `deliver(records)` returns once every record is either accepted by Ometria or
dead-lettered. Transient failures (transport, timeout, 5xx, 408, 409, 429) are retried for as
long as it takes, with exponential backoff and full jitter, honouring `Retry-After` (up to
`MAX_RETRY_AFTER`); meanwhile the outbox offset is not committed, so the outbox holds the
backlog and a crash re-sends the batch. That makes delivery at-least-once; records carry
stable ids, so a re-send is an upsert. See docs/architecture.md#delivery, and
docs/ometria-contract.md#responses-and-how-each-is-handled for each answer.

A refused key (401/403) or a wrong endpoint (3xx, 404, 405, 407: the base URL or a proxy) says
nothing about the records: delivery pauses, re-sending the same request every
`auth_retry_interval` until it gets through, and `blocked` says why and which setting to fix
meanwhile; nothing is split or dead-lettered. A request Ometria refuses for its content (other
4xx) is split in halves until the bad records are alone; those go to the outbox dead-letter
topic with the answer, and the rest goes on. A 2xx reporting `rejected > 0` dead-letters only
the records Ometria's errors list names for that request; the others were accepted.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Protocol

from prometheus_client import Gauge
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_never,
    wait_random_exponential,
)

from stream import metrics
from stream.domain.batching import plan_requests
from stream.domain.dlq import DeadLetter
from stream.domain.records import MAX_RECORD_BYTES, encode
from stream.ometria.client import OmetriaClient, PushResult
from stream.ometria.errors import (
    Misconfigured,
    OmetriaError,
    Permanent,
    Retryable,
    Unauthorized,
)
from stream.ometria.pacing import Pacer

logger = logging.getLogger(__name__)

# While delivery is blocked, a reminder this often is enough; every attempt would flood the log.
PAUSE_LOG_INTERVAL = 60.0
LOGGED_ERROR_CHARS = 200


class DeadLetterSink(Protocol):
    async def __call__(self, letter: DeadLetter) -> None: ...


@dataclass(frozen=True, slots=True)
class Blocked:
    """Why delivery is paused: no request can succeed until a setting is fixed."""

    cause: type[Misconfigured]
    status_code: int
    since: datetime
    problem: str
    fix: str

    @property
    def reason(self) -> str:
        return (
            f"{self.problem}, since {self.since.isoformat(timespec='seconds')}; delivery "
            f"resumes by itself once this is fixed: {self.fix}"
        )


def _gauge(cause: type[Misconfigured]) -> Gauge:
    return metrics.UNAUTHORIZED if issubclass(cause, Unauthorized) else metrics.MISDIRECTED


class Delivery:
    """Sends outbox records to Ometria under the account's rate limit."""

    def __init__(
        self,
        client: OmetriaClient,
        *,
        max_requests_per_second: float,
        dead_letter: DeadLetterSink,
        backoff_max: float = 60.0,
        auth_retry_interval: float = 15.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        pacer: Pacer | None = None,
    ) -> None:
        self._client = client
        self.pacer = pacer or Pacer(max_requests_per_second)
        self._dead_letter = dead_letter
        self._backoff = wait_random_exponential(multiplier=0.5, max=backoff_max)
        self._auth_retry_interval = auth_retry_interval
        self._sleep = sleep
        self._clock = clock
        self._blocked: Blocked | None = None
        self._blocked_logged_at = float("-inf")

    @property
    def blocked(self) -> Blocked | None:
        """Set while a refused key or a wrong endpoint pauses delivery until it is fixed."""
        return self._blocked

    async def deliver(self, records: list[dict[str, Any]]) -> None:
        """Deliver a batch of outbox records (see the module contract)."""
        plan = plan_requests(records)
        for record in plan.too_large:
            await self._bury(
                [record],
                "RecordTooLarge",
                f"the record is {len(encode(record))} bytes; Ometria accepts at most "
                f"{MAX_RECORD_BYTES} per record",
            )
        for request in plan.requests:
            await self._send(request)

    async def _send(self, records: list[dict[str, Any]]) -> None:
        try:
            result = await self._push_until_unblocked(records)
        except Permanent as exc:
            if len(records) > 1:
                middle = len(records) // 2
                await self._send(records[:middle])
                await self._send(records[middle:])
                return
            await self._bury(
                records,
                "Permanent",
                f"Ometria refused the record with {exc.status_code}",
                {"status": str(exc.status_code), "body": exc.body},
            )
            return
        if result.rejected:
            await self._rejected(records, result)

    async def errors(self) -> list[dict[str, Any]]:
        """Read Ometria's errors list once, in a request slot like a push (no retries).

        Raises:
            OmetriaError: as `OmetriaClient.errors`.
        """
        await self.pacer.wait()
        return await self._client.errors()

    async def _rejected(self, records: list[dict[str, Any]], result: PushResult) -> None:
        """Dead-letter the records Ometria's errors list names for this request; no others."""
        metrics.RECORDS_REJECTED.inc(result.rejected)
        logger.warning(
            "Ometria accepted request %s but reports %d of its %d records rejected "
            "(accepted %d); looking for them in GET /v2/push/_errors",
            result.request_id,
            result.rejected,
            len(records),
            result.accepted,
        )
        named = await self._named_in_errors(records, result.request_id)
        for record, entries in named:
            await self._bury(
                [record],
                "Rejected",
                "Ometria rejected the record: "
                + "; ".join(
                    f"{str(entry.get('error_message'))[:LOGGED_ERROR_CHARS]} at "
                    f"{str(entry.get('error_path'))[:LOGGED_ERROR_CHARS]}"
                    for entry in entries
                ),
                {"status": str(result.status_code), "request_id": str(result.request_id)},
            )
        if len(named) < result.rejected:
            logger.warning(
                "%d of the %d records rejected in request %s are not named in Ometria's errors "
                "list; they stay counted as accepted, nothing else is dead-lettered",
                result.rejected - len(named),
                result.rejected,
                result.request_id,
            )

    async def _named_in_errors(
        self, records: list[dict[str, Any]], request_id: str | None
    ) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
        if request_id is None:
            return []
        # The errors list is read once: a rejection is rare and never worth a retry loop.
        try:
            entries = await self.errors()
        except OmetriaError as exc:
            logger.warning(
                "could not read Ometria's errors list for request %s: %s", request_id, exc
            )
            return []
        by_record: dict[str, list[dict[str, Any]]] = {}
        for entry in entries:
            record_id = entry.get("record_id")
            if entry.get("request_id") == request_id and record_id is not None:
                by_record.setdefault(str(record_id), []).append(entry)
        return [
            (record, by_record[str(record.get("id"))])
            for record in records
            if str(record.get("id")) in by_record
        ]

    def _wait(self, state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        delay = self._backoff(state)
        if isinstance(error, Retryable) and error.retry_after is not None:
            delay = max(delay, error.retry_after)
        return delay

    def _before_sleep(self, state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        metrics.PUSH_RETRIES.inc()
        if isinstance(error, Retryable) and error.status_code == 429:
            metrics.PUSH_THROTTLED.inc()
        delay = state.next_action.sleep if state.next_action else 0.0
        logger.warning(
            "push attempt %d failed (%s); retrying in %.1fs", state.attempt_number, error, delay
        )

    async def _push_until_unblocked(self, records: list[dict[str, Any]]) -> PushResult:
        """Push with retries; while a setting blocks every request, try the same one slowly."""
        while True:
            try:
                result = await self._push_with_retries(records)
            except Misconfigured as exc:
                self._paused(exc)
                await self._sleep(self._auth_retry_interval)
                continue
            self._resumed()
            return result

    def _paused(self, error: Misconfigured) -> None:
        blocked, cause = self._blocked, type(error)
        if blocked is None or blocked.cause is not cause:
            if blocked is not None:
                _gauge(blocked.cause).set(0)
            # A new cause is news: logged at once, whenever the last reminder was.
            self._blocked_logged_at = float("-inf")
            blocked = Blocked(cause, error.status_code, datetime.now(UTC), error.problem, error.fix)
            _gauge(cause).set(1)
        elif blocked.problem != error.problem:
            blocked = replace(blocked, status_code=error.status_code, problem=error.problem)
        self._blocked = blocked
        now = self._clock()
        if now - self._blocked_logged_at >= PAUSE_LOG_INTERVAL:
            self._blocked_logged_at = now
            logger.warning(
                "delivery paused: %s; trying again every %gs",
                blocked.reason,
                self._auth_retry_interval,
            )

    def _resumed(self) -> None:
        blocked = self._blocked
        if blocked is None:
            return
        logger.warning(
            "requests get through again (blocked by a %d since %s); delivery resumes",
            blocked.status_code,
            blocked.since.isoformat(timespec="seconds"),
        )
        self._blocked = None
        self._blocked_logged_at = float("-inf")
        _gauge(blocked.cause).set(0)

    async def _push_with_retries(self, records: list[dict[str, Any]]) -> PushResult:
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(Retryable),
            wait=self._wait,
            stop=stop_never,
            sleep=self._sleep,
            before_sleep=self._before_sleep,
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                await self.pacer.wait()
                metrics.BATCH_RECORDS.observe(len(records))
                try:
                    result = await self._client.push(records)
                except (Retryable, Misconfigured, Permanent) as exc:
                    metrics.PUSH_REQUESTS.labels(str(exc.status_code or "error")).inc()
                    if isinstance(exc, Retryable) and exc.status_code == 429:
                        self.pacer.throttled(exc.retry_after)
                    metrics.PUSH_RATE.set(self.pacer.rate)
                    raise
                metrics.PUSH_REQUESTS.labels(str(result.status_code)).inc()
                metrics.RECORDS_PUSHED.labels(str(records[0].get("@type"))).inc(result.accepted)
                self.pacer.accepted(result.queue_remaining)
                metrics.PUSH_RATE.set(self.pacer.rate)
                return result
        raise AssertionError("unreachable: stop_never retries until success")  # pragma: no cover

    async def _bury(
        self,
        records: list[dict[str, Any]],
        error_class: str,
        reason: str,
        details: dict[str, str] | None = None,
    ) -> None:
        for record in records:
            metrics.DEAD_LETTERS.labels("push", error_class).inc()
            await self._dead_letter(
                DeadLetter.of_ometria_record(
                    record,
                    error_class=error_class,
                    reason=reason,
                    failed_at=datetime.now(UTC),
                    details=details,
                )
            )
