"""HTTP views on the Faust web server: liveness, readiness, metrics and profile look-ups."""

from __future__ import annotations

import hmac
from typing import Any

from faust.web import Request, Response, View
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from stream import metrics
from stream.app import app
from stream.metrics import REGISTRY
from stream.settings import get_settings
from stream.tables import customer_to_profile


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
async def metrics_view(self: View, request: Request) -> Response:
    """Prometheus exposition of the worker's metrics."""
    _measure_lag()
    # aiohttp refuses a content_type with parameters; Prometheus' has version and charset.
    return self.bytes(generate_latest(REGISTRY), headers={"Content-Type": CONTENT_TYPE_LATEST})


def _measure_lag() -> None:
    # Faust's monitor keeps the end and committed offsets of the partitions this worker owns.
    monitor = app.monitor
    ends = monitor.tp_end_offsets or {}
    committed = monitor.tp_committed_offsets or {}
    outbox = get_settings().topics.outbox
    backlog = 0
    metrics.CONSUMER_LAG.clear()
    for tp in app.consumer.assignment():
        if tp.topic.endswith("-changelog") or "__assignor" in tp.topic:
            continue
        lag = max(0, ends.get(tp, 0) - committed.get(tp, 0))
        metrics.CONSUMER_LAG.labels(tp.topic, str(tp.partition)).set(lag)
        if tp.topic == outbox:
            backlog += lag
    metrics.OUTBOX_BACKLOG.set(backlog)


def _authorised(request: Request) -> bool:
    token = get_settings().profile_api_token
    if token is None:
        return False
    given = request.headers.get("Authorization", "")
    expected = f"Bearer {token.get_secret_value()}"
    return hmac.compare_digest(given.encode(), expected.encode())


@app.page("/profiles/{customer_id}")
@app.table_route(table=customer_to_profile, match_info="customer_id")
async def profile(self: View, request: Request, *args: Any, **kwargs: Any) -> Response:
    """A customer's profile and the last contact sent, from the worker that owns the key."""
    if get_settings().profile_api_token is None:
        disabled = {"error": "the profiles API is off: set STREAM_PROFILE_API_TOKEN"}
        return self.json(disabled, status=404)
    if not _authorised(request):
        return self.json({"error": "send Authorization: Bearer <token>"}, status=401)
    customer_id = str(kwargs["customer_id"])
    stored = customer_to_profile.get(customer_id)
    if stored is None:
        return self.json({"error": f"no profile for customer {customer_id}"}, status=404)
    body = {
        "customer_id": customer_id,
        "profile": stored,
        "last_contact": stored.get("last_contact"),
    }
    return self.json(body)
