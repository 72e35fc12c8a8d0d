"""Report the new entries of Ometria's account-wide errors list (a log line and a metric each).

The list is read again and again and keeps its newest 100 entries, so what was reported is
remembered (up to `remember` entries) to report each entry once.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from stream import metrics
from stream.ometria.errors import OmetriaError

logger = logging.getLogger(__name__)

LOGGED_ERROR_CHARS = 200

ReadErrors = Callable[[], Awaitable[list[dict[str, Any]]]]
"""Reads Ometria's errors list once (`Delivery.errors`: in one of the pacer's request slots)."""


class ErrorsWatch:
    """Remembers which entries of Ometria's errors list were already reported."""

    def __init__(self, remember: int = 1000) -> None:
        self._seen: deque[bytes] = deque(maxlen=remember)

    def new(self, entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
        fresh = []
        for entry in entries:
            fingerprint = orjson.dumps(entry, option=orjson.OPT_SORT_KEYS)
            if fingerprint not in self._seen:
                self._seen.append(fingerprint)
                fresh.append(entry)
        return fresh

    async def poll(self, read: ReadErrors) -> None:
        """Read the list once and report its new entries; a failed read is logged and skipped."""
        try:
            entries = await read()
        except OmetriaError as exc:
            logger.warning("could not read Ometria's errors list: %s", exc)
            return
        for entry in self.new(entries):
            metrics.ERRORS_REPORTED.inc()
            logger.warning(
                "Ometria reports a record error: %s at %s",
                str(entry.get("error_message"))[:LOGGED_ERROR_CHARS],
                str(entry.get("error_path"))[:LOGGED_ERROR_CHARS],
            )
