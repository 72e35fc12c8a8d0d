"""HTTP views on the Faust web server: the worker's readiness and metrics (served as the probes
of stream.ops.probes) and profile look-ups."""

from __future__ import annotations

import asyncio
import hmac
import logging
import time

import httpx
import orjson
from faust.web import Request, Response, View
from yarl import URL

from stream import metrics
from stream.ops import probes
from stream.ops.peer_auth import PEER_SIGNATURE_HEADER, sign, verify
from stream.runtime.app import app
from stream.runtime.faust_internals.context import get_in_partition
from stream.runtime.faust_internals.recovery_status import RecoveryStatus, recovery_status
from stream.runtime.ometria_jobs import pusher_service
from stream.runtime.schema_registry import schema_registry
from stream.runtime.tables import customer_to_profile
from stream.settings import get_settings

logger = logging.getLogger(__name__)
FORWARD_TIMEOUT = 10.0


def _readiness() -> dict[str, object]:
    recovery = recovery_status(app)
    recovered = recovery.finished
    delivery = _delivery_problem()
    registry = schema_registry.problem if schema_registry is not None else None
    ready = (
        recovered
        and not app.rebalancing
        and not app.in_recovery
        and delivery is None
        and registry is None
    )
    return {
        "ready": probes.observed(ready),
        "recovered": recovered,
        "rebalancing": bool(app.rebalancing),
        "delivery": delivery or "ok",
        "schema_registry": registry or ("ok" if schema_registry is not None else "not used"),
        "recovery": _recovery_progress(recovery),
    }


def _recovery_progress(recovery: RecoveryStatus) -> dict[str, object]:
    """How far the table recovery is: changelog records still to apply on this worker's active
    partitions, those the bulk reader applied and at what rate, and the records this worker's
    standby copies lack of what their changelog held when they were assigned (counts only)."""
    remaining = recovery.active_remaining if recovery.running else 0
    body: dict[str, object] = {"in_progress": recovery.running, "remaining": remaining}
    progress = recovery.bulk
    if progress is not None:
        body["applied"] = progress.applied
        body["per_second"] = round(progress.rate(time.monotonic()))
    body["standby_remaining"] = recovery.standby_remaining
    return body


def _delivery_problem() -> str | None:
    if pusher_service is None:
        return None
    pusher = pusher_service.pusher
    return "the pusher has not started" if pusher is None else pusher.not_ready()


def _measure_lag() -> None:
    # Faust's monitor keeps the end and committed offsets of the partitions this worker owns.
    monitor = app.monitor
    ends = monitor.tp_end_offsets or {}
    committed = monitor.tp_committed_offsets or {}
    metrics.CONSUMER_LAG.clear()
    for tp in app.consumer.assignment():
        if tp.topic.endswith("-changelog") or "__assignor" in tp.topic:
            continue
        lag = max(0, ends.get(tp, 0) - committed.get(tp, 0))
        metrics.CONSUMER_LAG.labels(tp.topic, str(tp.partition)).set(lag)
    if pusher_service is not None and pusher_service.pusher is not None:
        pusher_service.pusher.measure()


probes.serve_worker_probes(app, _readiness, _measure_lag)


def _authorised(request: Request, token: str) -> bool:
    given = request.headers.get("Authorization", "")
    return hmac.compare_digest(given.encode(), f"Bearer {token}".encode())


@app.page("/profiles/{customer_id}")
async def profile(self: View, request: Request, customer_id: str) -> Response:
    """A customer's profile and the last contact sent, from the worker that holds it.

    The caller's token is checked here, before any routing. A customer's profile is in the
    partition its events came from, which the producer's partitioner chose (librdkafka's CRC32
    and Kafka's murmur2 disagree for most keys), so no hash of the id names its worker: this
    worker looks in its own partitions, then asks every other worker. A request sent on is
    signed for a short time instead of carrying the token (stream.ops.peer_auth), so the token
    never travels between pods; a worker serves a signed request from its own partitions and
    never sends it on again.
    """
    secret = get_settings().profile_api_token
    if secret is None:
        disabled = {"error": "the profiles API is off: set STREAM_PROFILE_API_TOKEN"}
        return self.json(disabled, status=404)
    token = secret.get_secret_value()
    # The raw (still percent-encoded) path, so the signature matches on both sides.
    path = request.rel_url.raw_path
    signature = request.headers.get(PEER_SIGNATURE_HEADER)
    if signature is not None:
        if not verify(token, request.method, path, signature, now=time.time()):
            return self.json({"error": "invalid or expired peer signature"}, status=401)
        return _local_profile(self, customer_id)
    if not _authorised(request, token):
        return self.json({"error": "send Authorization: Bearer <token>"}, status=401)
    if _local(customer_id) is not None:
        return _local_profile(self, customer_id)
    peers = _other_workers()
    if peers is None:
        return self.json({"error": "partition owners unknown (rebalancing); retry"}, status=503)
    answers = await asyncio.gather(*(_forward(peer, path, token, request.method) for peer in peers))
    for answer in answers:
        if answer is not None and answer.status_code == 200:
            return self.bytes(
                answer.content,
                status=200,
                content_type=answer.headers.get("Content-Type", "application/json").split(";")[0],
            )
    if any(answer is None for answer in answers):
        return self.json(
            {"error": "a worker that may hold this customer did not answer"}, status=502
        )
    return _not_found(self, customer_id)


def _mine() -> list[int]:
    """The events partitions this worker folds (a standby copy may lag: never read)."""
    topic = get_settings().topics.events
    return sorted(tp.partition for tp in app.consumer.assignment() if tp.topic == topic)


def _local(customer_id: str) -> bytes | None:
    for partition in _mine():
        raw = get_in_partition(customer_to_profile, customer_id, partition)
        if raw is not None:
            return bytes(raw)
    return None


def _other_workers() -> list[URL] | None:
    """Every other worker that folds events partitions; None while owners are unknown."""
    hosts = app.router.external_topics_metadata()
    topic = get_settings().topics.events
    owners = [URL(host) for host, topics in hosts.items() if topics.get(topic)]
    if not owners:
        return None
    me = app.conf.canonical_url
    return [owner for owner in owners if (owner.host, owner.port) != (me.host, me.port)]


def _local_profile(view: View, customer_id: str) -> Response:
    raw = _local(customer_id)
    if raw is None:
        return _not_found(view, customer_id)
    stored = orjson.loads(raw)
    body = {
        "customer_id": customer_id,
        "profile": stored,
        "last_contact": stored.get("last_contact"),
    }
    return view.json(body)


def _not_found(view: View, customer_id: str) -> Response:
    return view.json({"error": f"no profile for customer {customer_id}"}, status=404)


async def _forward(owner: URL, path: str, token: str, method: str) -> httpx.Response | None:
    """The worker's answer to a signed request; None when it did not answer."""
    url = str(owner.with_path(path, encoded=True))
    headers = {PEER_SIGNATURE_HEADER: sign(token, method, path, now=time.time())}
    try:
        async with httpx.AsyncClient(timeout=FORWARD_TIMEOUT) as http:
            return await http.request(method, url, headers=headers)
    except httpx.HTTPError as exc:
        logger.warning("profile request to worker %s failed: %r", owner, exc)
        return None
