"""Ometria failures, classified at the edge: retry, wait for a working key, or decide.

OmetriaError       (under stream.errors.LoyaltyStreamError)
├── Retryable      transport error, timeout, 5xx, 429: retry with backoff
├── Unauthorized   401, 403: the key is wrong or revoked; pause until Ometria accepts it
└── Permanent      any other 4xx: this request can never succeed as it is
"""

from __future__ import annotations

from stream.errors import LoyaltyStreamError


class OmetriaError(LoyaltyStreamError):
    """Root of every error the Ometria client raises."""


class Retryable(OmetriaError):
    """Worth retrying: a transport error, a timeout, a 5xx or a 429."""

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


class Unauthorized(OmetriaError):
    """Ometria refused the API key (401 or 403); nothing is wrong with the records.

    Fix the key (STREAM_OMETRIA__API_KEY, or the file STREAM_OMETRIA__API_KEY_FILE names); a
    key file is re-read without a restart.
    """

    def __init__(self, message: str, *, status_code: int, body: str) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.body = body


class Permanent(OmetriaError):
    """Ometria refused the request (a 4xx other than 401, 403, 429): resending cannot help."""

    def __init__(self, message: str, *, status_code: int, body: str) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.body = body
