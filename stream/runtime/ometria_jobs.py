"""The worker's Ometria side besides folding: the pusher running inside the worker (which also
reports Ometria's errors list: see stream.runtime.pusher).

Registered with the app on import, like the agents (stream.runtime.agents).
"""

from __future__ import annotations

from stream import metrics
from stream.runtime.app import app
from stream.runtime.push_service import PusherService
from stream.settings import get_settings

settings = get_settings()


# Paused (STREAM_OMETRIA__ENABLED=false): nothing consumes the outbox, so it holds the backlog
# and re-enabling drains it from the committed offset.
pusher_service: PusherService | None = None
metrics.PAUSED.set(0 if settings.ometria.enabled else 1)
if settings.ometria.enabled and settings.ometria.push_in_worker:
    # A dependency, not an `app.service`: those start only after table recovery, and the
    # outbox backlog need not wait for it.
    pusher_service = PusherService(settings, loop=app.loop)
    app.add_dependency(pusher_service)
