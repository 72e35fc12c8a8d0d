"""The worker's Ometria side besides folding: the pusher running inside the worker, and the
poller that reports new entries of Ometria's account-wide errors list.

Registered with the app on import, like the agents (stream.runtime.agents).
"""

from __future__ import annotations

import logging
from collections import deque
from typing import Any

import orjson

from stream import metrics
from stream.ometria.client import OmetriaClient
from stream.ometria.errors import OmetriaError
from stream.runtime.app import app
from stream.runtime.push_service import PusherService
from stream.settings import get_settings

logger = logging.getLogger(__name__)
settings = get_settings()


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


errors_watch = ErrorsWatch()


async def report_ometria_errors() -> None:
    """Poll Ometria's account-wide record errors and report the new ones (log + metric)."""
    conf = settings.ometria
    try:
        async with OmetriaClient.from_settings(conf) as client:
            entries = await client.errors()
    except OmetriaError as exc:
        logger.warning("could not read Ometria's errors list: %s", exc)
        return
    for entry in errors_watch.new(entries):
        metrics.ERRORS_REPORTED.inc()
        logger.warning(
            "Ometria reports a record error: %s at %s",
            str(entry.get("error_message"))[:200],
            str(entry.get("error_path"))[:200],
        )


# Paused (STREAM_OMETRIA__ENABLED=false): nothing consumes the outbox, so it holds the backlog
# and re-enabling drains it from the committed offset.
pusher_service: PusherService | None = None
metrics.PAUSED.set(0 if settings.ometria.enabled else 1)
if settings.ometria.enabled:
    if settings.ometria.push_in_worker:
        # A dependency, not an `app.service`: those start only after table recovery, and the
        # outbox backlog need not wait for it.
        pusher_service = PusherService(settings, loop=app.loop)
        app.add_dependency(pusher_service)
    poll_every = settings.ometria.errors_poll_interval.total_seconds()
    if poll_every > 0:
        # One worker is enough: the list is account-wide.
        app.timer(poll_every, on_leader=True)(report_ometria_errors)
