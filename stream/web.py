"""HTTP views on the Faust web server: liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from faust.web import Request, Response, View
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from stream.app import app
from stream.metrics import REGISTRY


@app.page("/healthz")
async def healthz(self: View, request: Request) -> Response:
    """Alive: the process answers."""
    return self.json({"status": "ok"})


@app.page("/readyz")
async def readyz(self: View, request: Request) -> Response:
    """Ready once the tables are recovered and the consumer group is not rebalancing."""
    # TableManagerT does not declare the recovery service the TableManager has.
    recovered = app.tables.recovery.completed.is_set()  # type: ignore[attr-defined]
    ready = recovered and not app.rebalancing and not app.in_recovery
    body = {"ready": ready, "recovered": recovered, "rebalancing": bool(app.rebalancing)}
    return self.json(body, status=200 if ready else 503)


@app.page("/metrics")
async def metrics(self: View, request: Request) -> Response:
    """Prometheus exposition of the worker's metrics."""
    # aiohttp refuses a content_type with parameters; Prometheus' has version and charset.
    return self.bytes(generate_latest(REGISTRY), headers={"Content-Type": CONTENT_TYPE_LATEST})
