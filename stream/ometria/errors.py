"""Ometria failures, classified at the edge: retry (transient) or decide (permanent)."""

from __future__ import annotations


class OmetriaError(Exception):
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


class Permanent(OmetriaError):
    """Ometria refused the request (a 4xx other than 429): resending it cannot help."""

    def __init__(self, message: str, *, status_code: int, body: str) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.body = body
