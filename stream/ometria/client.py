"""OmetriaClient: one push request over httpx, its answer classified; no retries here."""

from __future__ import annotations

from dataclasses import dataclass
from types import TracebackType
from typing import Any

import httpx
import orjson
from pydantic import SecretStr

from stream.ometria.errors import Permanent, Retryable
from stream.ometria.records import without_version

BODY_EXCERPT_CHARS = 2000


@dataclass(frozen=True, slots=True)
class PushResult:
    """Ometria's answer to an accepted request (records are queued, validated later)."""

    status_code: int
    request_id: str | None
    accepted: int
    rejected: int
    queue_remaining: int | None


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None  # an HTTP-date; the backoff policy decides instead


def _int_header(response: httpx.Response, name: str) -> int | None:
    value = response.headers.get(name)
    return int(value) if value is not None and value.isdigit() else None


class OmetriaClient:
    """Pushes records to `{base_url}/v2/push` with the account's key.

    The key lives only in the client's default headers: never in a repr, log or error.
    """

    def __init__(
        self,
        base_url: str,
        api_key: SecretStr,
        *,
        timeout: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            headers={
                "X-Ometria-Auth": api_key.get_secret_value(),
                "Content-Type": "application/json",
                "Accept": "application/json",
                "User-Agent": "loyalty-stream",
            },
            timeout=timeout,
            transport=transport,
        )

    def __repr__(self) -> str:
        return f"OmetriaClient(base_url={str(self._http.base_url)!r})"

    async def __aenter__(self) -> OmetriaClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def errors(self) -> list[dict[str, Any]]:
        """Ometria's newest record errors (`GET /v2/push/_errors`, at most 100, account-wide).

        Raises:
            Retryable: transport failure, timeout, 5xx or 429.
            Permanent: any other non-2xx answer.
        """
        try:
            response = await self._http.get("/v2/push/_errors")
        except httpx.HTTPError as exc:
            raise Retryable(f"errors list failed: {type(exc).__name__}: {exc}") from exc
        if response.status_code == 429 or response.status_code >= 500:
            raise Retryable(
                f"Ometria answered {response.status_code}", status_code=response.status_code
            )
        if not 200 <= response.status_code < 300:
            raise Permanent(
                f"Ometria refused the errors list: {response.status_code}",
                status_code=response.status_code,
                body=response.text[:BODY_EXCERPT_CHARS],
            )
        try:
            entries = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            return []
        return (
            [entry for entry in entries if isinstance(entry, dict)]
            if isinstance(entries, list)
            else []
        )

    async def push(self, records: list[dict[str, Any]]) -> PushResult:
        """POST one request of records of one type.

        Raises:
            Retryable: transport failure, timeout, 5xx or 429.
            Permanent: any other non-2xx answer.
        """
        body = orjson.dumps([without_version(record) for record in records])
        try:
            response = await self._http.post("/v2/push", content=body)
        except httpx.TimeoutException as exc:
            raise Retryable(f"push timed out: {type(exc).__name__}") from exc
        except httpx.TransportError as exc:
            raise Retryable(f"push failed: {type(exc).__name__}: {exc}") from exc
        status = response.status_code
        if status == 429 or status >= 500:
            raise Retryable(
                f"Ometria answered {status}",
                status_code=status,
                retry_after=_retry_after(response),
            )
        if not 200 <= status < 300:
            text = response.text[:BODY_EXCERPT_CHARS]
            raise Permanent(f"Ometria refused the request: {status}", status_code=status, body=text)
        try:
            answer = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            answer = {}
        if not isinstance(answer, dict):
            answer = {}
        return PushResult(
            status_code=status,
            request_id=answer.get("request_id"),
            accepted=int(answer.get("accepted", len(records))),
            rejected=int(answer.get("rejected", 0)),
            queue_remaining=_int_header(response, "X-QueueSize-Remaining"),
        )
