"""OmetriaClient: one push request over httpx, its answer classified; no retries here."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import orjson
from pydantic import SecretStr

from stream.domain.records import PRIVATE_KEYS
from stream.ometria.errors import (
    Misdirected,
    OmetriaError,
    Permanent,
    Retryable,
    Unauthorized,
)
from stream.ometria.pacing import bounded_retry_after
from stream.settings import OmetriaSettings, SettingsError, read_secret_file

BODY_EXCERPT_CHARS = 2000
# Answers about the request, not its records: the same request may succeed when sent again.
TRANSIENT_STATUSES = frozenset({408, 409, 429})
# Answers that no Ometria push API gives: the request reached something else.
MISDIRECTED_STATUSES = frozenset({404, 405, 407})
LOCATION_CHARS = 200
# How often a key file is looked at (one stat) for a rotated key; a 401/403 looks at once.
KEY_FILE_CHECK_SECONDS = 5.0

logger = logging.getLogger(__name__)

KeySource = Callable[[], SecretStr]
"""Returns the API key to send now; called before every request, so it must be cheap."""


@dataclass(frozen=True, slots=True)
class PushResult:
    """Ometria's answer to an accepted request (records are queued, validated later).

    `unexpected_body` says what was wrong with a 2xx body that is not the documented
    `{status, request_id, accepted, rejected}`; such an answer counts every record as accepted.
    """

    status_code: int
    request_id: str | None
    accepted: int
    rejected: int
    queue_remaining: int | None
    unexpected_body: str | None = None


class ApiKeyFile:
    """The API key in a file (a mounted Kubernetes Secret), re-read when the file changes.

    Rotating the Secret then needs no restart: the file is looked at every few seconds, and
    at once when Ometria refuses the key (`reload`). A file that cannot be read or is empty
    keeps the last good key; the key itself never appears in a repr or a log line.
    """

    def __init__(
        self,
        path: Path,
        *,
        check_every: float = KEY_FILE_CHECK_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._path = path
        self._check_every = check_every
        self._clock = clock
        self._checked_at = clock()
        self._stamp: tuple[int, int, int] | None = None
        self._problem: str | None = None
        key = self._read()
        if key is None:
            raise SettingsError(
                f"the Ometria API key file {path} {self._problem}: mount the Secret or fix "
                "STREAM_OMETRIA__API_KEY_FILE"
            )
        self._key = key

    def __repr__(self) -> str:
        return f"ApiKeyFile({str(self._path)!r})"

    def __call__(self) -> SecretStr:
        if self._clock() - self._checked_at >= self._check_every:
            self._refresh()
        return self._key

    def reload(self) -> None:
        """Look at the file on the next call however recently it was looked at."""
        self._checked_at = float("-inf")

    def _refresh(self) -> None:
        self._checked_at = self._clock()
        known_problem = self._problem
        key = self._read()
        if key is None:
            # Logged once per new problem: the file is looked at every few seconds.
            if self._problem is not None and self._problem != known_problem:
                logger.warning(
                    "the Ometria API key file %s %s; keeping the key read before",
                    self._path,
                    self._problem,
                )
            return
        if key.get_secret_value() != self._key.get_secret_value():
            self._key = key
            logger.warning("the Ometria API key file %s changed; sending the new key", self._path)

    def _read(self) -> SecretStr | None:
        """The key in the file; None if the file is unchanged since the last read, or bad."""
        try:
            info = self._path.stat()
            stamp = (info.st_mtime_ns, info.st_size, info.st_ino)
            if stamp == self._stamp:
                return None
            key = read_secret_file(self._path)
        except OSError as exc:
            self._unusable(f"cannot be read ({type(exc).__name__})")
            return None
        if not key.get_secret_value():
            self._unusable("is empty")
            return None
        self._stamp, self._problem = stamp, None
        return key

    def _unusable(self, problem: str) -> None:
        self._problem = problem
        # Read it again next time even if it looks unchanged: it may have been half written.
        self._stamp = None


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return bounded_retry_after(float(value)) if value is not None else None
    except ValueError:
        return None  # an HTTP-date; the backoff policy decides instead


def _int_header(response: httpx.Response, name: str) -> int | None:
    value = response.headers.get(name)
    return int(value) if value is not None and value.isdigit() else None


def _count(answer: dict[str, Any], name: str) -> tuple[int, str | None]:
    value = answer.get(name)
    # bool is an int in Python, but `true` is no count
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value, None
    if name not in answer:
        return 0, f"no `{name}`"
    return 0, f"`{name}` is {'null' if value is None else 'not a count'}"


def _misdirected(response: httpx.Response, what: str, body: str) -> Misdirected:
    status = response.status_code
    # Credentials in the base URL stay out of the message; the rest says where it went.
    sent_to = response.request.url.copy_with(userinfo=b"", query=None)
    if status == 407:
        return Misdirected(
            f"a proxy asked for credentials (407) when {what} was sent to {sent_to}",
            "fix the proxy settings (HTTPS_PROXY, HTTP_PROXY, NO_PROXY in the environment, "
            "with the proxy's credentials) or STREAM_OMETRIA__BASE_URL",
            status_code=status,
            body=body,
        )
    if 300 <= status < 400:
        location = response.headers.get("Location", "nowhere named")[:LOCATION_CHARS]
        answered = f"{sent_to} redirects {what} ({status}) to {location}"
    else:
        answered = f"{sent_to} answered {status} to {what}: no Ometria push API there"
    return Misdirected(
        answered,
        "set STREAM_OMETRIA__BASE_URL to Ometria's API root (https://api.ometria.com)",
        status_code=status,
        body=body,
    )


def _without_private_keys(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {key: value for key, value in record.items() if key not in PRIVATE_KEYS}
        if not PRIVATE_KEYS.isdisjoint(record)
        else record
        for record in records
    ]


class OmetriaClient:
    """Pushes records to `{base_url}/v2/push` with the account's key.

    The key is asked of its source for every request and goes only into that request's
    header: never into a repr, a log line or an error. After a 401/403 an `ApiKeyFile` is
    re-read at once, so the next attempt carries a rotated key.
    """

    def __init__(
        self,
        base_url: str,
        api_key: SecretStr | KeySource,
        *,
        timeout: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._key: KeySource = (lambda: api_key) if isinstance(api_key, SecretStr) else api_key
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            headers={
                "Content-Type": "application/json",
                "Accept": "application/json",
                "User-Agent": "loyalty-stream",
            },
            timeout=timeout,
            transport=transport,
        )

    @classmethod
    def from_settings(
        cls, settings: OmetriaSettings, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> OmetriaClient:
        """A client for the configured account; a key from a file follows the file.

        Raises:
            SettingsError: no API key is configured.
        """
        key = settings.require_api_key()
        path = settings.api_key_path
        return cls(
            str(settings.base_url),
            ApiKeyFile(path) if path is not None else key,
            timeout=settings.timeout.total_seconds(),
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

    def _auth(self) -> dict[str, str]:
        return {"X-Ometria-Auth": self._key().get_secret_value()}

    def _failure(self, response: httpx.Response, what: str) -> OmetriaError | None:
        """The error a non-2xx answer stands for (None for a 2xx)."""
        status = response.status_code
        if 200 <= status < 300:
            return None
        if status in TRANSIENT_STATUSES or status >= 500:
            return Retryable(
                f"Ometria answered {status} to {what}",
                status_code=status,
                retry_after=_retry_after(response),
            )
        body = response.text[:BODY_EXCERPT_CHARS]
        if status in (401, 403):
            if isinstance(self._key, ApiKeyFile):
                self._key.reload()
            return Unauthorized(
                f"Ometria refused the API key ({status})",
                "set a working key in STREAM_OMETRIA__API_KEY or the file "
                "STREAM_OMETRIA__API_KEY_FILE names",
                status_code=status,
                body=body,
            )
        if 300 <= status < 400 or status in MISDIRECTED_STATUSES:
            return _misdirected(response, what, body)
        return Permanent(f"Ometria refused {what}: {status}", status_code=status, body=body)

    async def errors(self) -> list[dict[str, Any]]:
        """Ometria's newest record errors (`GET /v2/push/_errors`, at most 100, account-wide).

        Raises:
            Retryable: transport failure, timeout, 5xx, 408, 409 or 429.
            Unauthorized: 401 or 403.
            Misdirected: 3xx, 404, 405 or 407.
            Permanent: any other non-2xx answer.
        """
        try:
            response = await self._http.get("/v2/push/_errors", headers=self._auth())
        except httpx.HTTPError as exc:
            raise Retryable(f"errors list failed: {type(exc).__name__}: {exc}") from exc
        failure = self._failure(response, "the errors list")
        if failure is not None:
            raise failure
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
        """POST one request of records of one type (private keys such as `@version` left out).

        Raises:
            Retryable: transport failure, timeout, 5xx, 408, 409 or 429.
            Unauthorized: 401 or 403.
            Misdirected: 3xx, 404, 405 or 407.
            Permanent: any other non-2xx answer.
        """
        body = orjson.dumps(_without_private_keys(records))
        try:
            response = await self._http.post("/v2/push", content=body, headers=self._auth())
        except httpx.TimeoutException as exc:
            raise Retryable(f"push timed out: {type(exc).__name__}") from exc
        except httpx.TransportError as exc:
            raise Retryable(f"push failed: {type(exc).__name__}: {exc}") from exc
        failure = self._failure(response, "the request")
        if failure is not None:
            raise failure
        return self._accepted(response, len(records))

    def _accepted(self, response: httpx.Response, sent: int) -> PushResult:
        request_id, problem = None, None
        try:
            answer = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            answer, problem = None, "not JSON"
        if isinstance(answer, dict):
            raw_id = answer.get("request_id")
            request_id = raw_id if isinstance(raw_id, str) and raw_id else None
            accepted, accepted_problem = _count(answer, "accepted")
            rejected, rejected_problem = _count(answer, "rejected")
            problem = accepted_problem or rejected_problem
        elif problem is None:
            problem = "not an object"
        if problem is not None:
            # Ometria queued the request (2xx); an odd body is no reason to re-send or drop it.
            logger.warning(
                "Ometria answered %d with an undocumented body (%s; request %s); counting all %d "
                "records as accepted",
                response.status_code,
                problem,
                request_id or "without id",
                sent,
            )
            accepted, rejected = sent, 0
        return PushResult(
            status_code=response.status_code,
            request_id=request_id,
            accepted=accepted,
            rejected=rejected,
            queue_remaining=_int_header(response, "X-QueueSize-Remaining"),
            unexpected_body=problem,
        )
