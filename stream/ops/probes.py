"""The probes every process serves, /healthz, /readyz and /metrics, for the worker (as views on
its Faust web server) and for `python -m stream push` (its own aiohttp server)."""

from __future__ import annotations

from collections.abc import Callable

import faust
from aiohttp import web
from faust.web import Request, Response, View
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from stream import metrics
from stream.metrics import REGISTRY
from stream.runtime.pusher import Pusher

HEALTHY = {"status": "ok"}


def observed(ready: bool) -> bool:
    """`ready`, kept in the gauge Prometheus scrapes."""
    # Prometheus scrapes /metrics, not /readyz: the gauge lets an alert see what the probe sees.
    metrics.READY.set(1 if ready else 0)
    return ready


def status(ready: bool) -> int:
    return 200 if ready else 503


def exposition() -> tuple[bytes, dict[str, str]]:
    """The Prometheus exposition of every metric, and its headers."""
    # aiohttp refuses a content_type with parameters; Prometheus' has version and charset.
    return generate_latest(REGISTRY), {"Content-Type": CONTENT_TYPE_LATEST}


def serve_worker_probes(
    app: faust.App, readiness: Callable[[], dict[str, object]], measure: Callable[[], None]
) -> None:
    """Serve the probes on the worker's Faust web server.

    Args:
        readiness: the worker's readiness body, with a boolean "ready" (observed).
        measure: brings the metrics that are read on demand up to date.
    """

    @app.page("/healthz")
    async def healthz(self: View, request: Request) -> Response:
        """Alive: the process answers."""
        return self.json(HEALTHY)

    @app.page("/readyz")
    async def readyz(self: View, request: Request) -> Response:
        """Ready once the tables are recovered, the group is not rebalancing, the Schema
        Registry (when set) answers, and the pusher (when it runs in this worker) delivers: a
        refused API key makes the worker not ready."""
        body = readiness()
        return self.json(body, status=status(bool(body["ready"])))

    @app.page("/metrics")
    async def metrics_view(self: View, request: Request) -> Response:
        """Prometheus exposition of the worker's metrics."""
        measure()
        readiness()
        body, headers = exposition()
        return self.bytes(body, headers=headers)


def pusher_probes(pusher: Pusher) -> web.Application:
    """The probes of `python -m stream push`, as an aiohttp app."""

    def readiness() -> str | None:
        why = pusher.not_ready()
        observed(why is None)
        return why

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response(HEALTHY)

    async def readyz(request: web.Request) -> web.Response:
        why = readiness()
        body = {"ready": why is None, "reason": why}
        return web.json_response(body, status=status(why is None))

    async def metrics_view(request: web.Request) -> web.Response:
        pusher.measure()
        readiness()
        body, headers = exposition()
        response = web.Response(body=body)
        response.headers.update(headers)
        return response

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_view)
    return app
