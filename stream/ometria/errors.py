"""Ometria failures, classified at the edge: retry, pause until a setting is fixed, or decide.

OmetriaError       (under stream.errors.LoyaltyStreamError)
├── Retryable      transport error, timeout, 5xx, 408, 409, 429: retry with backoff
├── Misconfigured  no request can succeed until a setting is fixed: pause, nothing dead-lettered
│   ├── Unauthorized   401, 403: the key is wrong or revoked
│   └── Misdirected    3xx, 404, 405, 407: the base URL or a proxy sends requests astray
└── Permanent      any other 4xx: Ometria refuses this request's records
"""

from __future__ import annotations

from stream.errors import LoyaltyStreamError


class OmetriaError(LoyaltyStreamError):
    """Root of every error the Ometria client raises."""


class Retryable(OmetriaError):
    """Worth retrying: a transport error, a timeout, a 5xx, a 408, a 409 or a 429."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.retry_after = retry_after


class Misconfigured(OmetriaError):
    """No request can succeed until a setting is fixed; nothing is wrong with the records.

    `problem` says what was answered and `fix` which setting to change; the message is both.
    """

    def __init__(self, problem: str, fix: str, *, status_code: int, body: str) -> None:
        super().__init__(f"{problem}: {fix}")
        self.problem = problem
        self.fix = fix
        self.status_code = status_code
        self.body = body


class Unauthorized(Misconfigured):
    """Ometria refused the API key (401 or 403).

    Fix the key (STREAM_OMETRIA__API_KEY, or the file STREAM_OMETRIA__API_KEY_FILE names); a
    key file is re-read without a restart.
    """


class Misdirected(Misconfigured):
    """The answer came from somewhere that is not Ometria's push API: a redirect (3xx), no
    such endpoint (404, 405), or a proxy asking for credentials (407).

    Fix STREAM_OMETRIA__BASE_URL, or the proxy settings (HTTPS_PROXY, HTTP_PROXY, NO_PROXY).
    """


class Permanent(OmetriaError):
    """Ometria refused the request for its content (a 4xx not listed above): resending it
    unchanged cannot help, so delivery splits it to find the refused records."""

    def __init__(self, message: str, *, status_code: int, body: str) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.body = body
