"""The Schema Registry client: the writer schemas of framed records, fetched once per id.

Speaks Confluent's REST API (`GET /schemas/ids/{id}`), which Apicurio serves at
/apis/ccompat/v7. A schema id names one schema for good, so an answer is kept for the process's
life; an id the registry does not know (404, error 40403) is answered per call, never kept (the
producer may register it a moment later, and redrive asks again).

A registry that cannot be reached, refuses the credentials or answers as if it were something
else never costs a record: `resolve` waits and asks again (exponential backoff), and while it
waits `problem` says why (readiness, /metrics). Only an answer about the schema itself (unknown
id, unreadable schema) makes records dead letters (stream.domain.intake).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

import httpx
import orjson
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    wait_exponential,
)
from tenacity.wait import WaitBaseT

from stream import metrics
from stream.domain.wire import WriterSchema, schema_ids
from stream.errors import LoyaltyStreamError
from stream.settings import RegistrySettings, get_settings

logger = logging.getLogger(__name__)

SCHEMA_NOT_FOUND = 40403  # Confluent's error_code for an unknown schema id
_ACCEPT = "application/vnd.schemaregistry.v1+json, application/json"


class RegistryUnavailable(LoyaltyStreamError):
    """The registry gave no answer about the schema; `reason` is a metrics label."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class SchemaRegistry:
    """Writer schemas by id, from one registry."""

    def __init__(
        self,
        settings: RegistrySettings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        wait: WaitBaseT | None = None,
    ) -> None:
        if settings.url is None:
            raise ValueError("SchemaRegistry needs STREAM_REGISTRY__URL")
        url = settings.url
        self._root = str(url).rstrip("/")
        # Named in messages and logs without any user or password the URL may hold.
        port = f":{url.port}" if url.port is not None else ""
        self.where = f"{url.scheme}://{url.host}{port}{(url.path or '').rstrip('/')}"
        auth = None
        if settings.username is not None and settings.password is not None:
            auth = httpx.BasicAuth(settings.username, settings.password.get_secret_value())
        self._client = httpx.AsyncClient(
            auth=auth,
            timeout=settings.timeout.total_seconds(),
            transport=transport,
            headers={"Accept": _ACCEPT},
        )
        self._wait = wait or wait_exponential(multiplier=0.5, max=30)
        self._known: dict[int, WriterSchema] = {}
        self.problem: str | None = None

    async def aclose(self) -> None:
        await self._client.aclose()

    async def resolve(self, ids: Iterable[int]) -> Mapping[int, WriterSchema]:
        """The writer schema of each id (and of every id known before); waits while the
        registry gives no answer, however long."""
        missing = sorted(i for i in ids if i not in self._known)
        if not missing:
            return self._known
        found = dict(self._known)
        for schema_id in missing:
            schema = await self._answer(schema_id)
            found[schema_id] = schema
            if schema.kind is not None:
                self._known[schema_id] = schema
        return found

    async def _answer(self, schema_id: int) -> WriterSchema:
        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type(RegistryUnavailable),
            wait=self._wait,
            before_sleep=self._waiting,
        ):
            with attempt:
                schema = await self._fetch(schema_id)
        if self.problem is not None:
            logger.info("the Schema Registry at %s answers again", self.where)
        self.problem = None
        metrics.REGISTRY_WAITING.set(0)
        return schema

    def _waiting(self, state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome is not None else None
        if not isinstance(error, RegistryUnavailable):  # pragma: no cover - retry_if says so
            return
        self.problem = error.message
        metrics.REGISTRY_WAITING.set(1)
        metrics.REGISTRY_FAILURES.labels(error.reason).inc()
        logger.warning(
            "%s; the fold waits (attempt %d, nothing is lost)", error.message, state.attempt_number
        )

    async def _fetch(self, schema_id: int) -> WriterSchema:
        try:
            response = await self._client.get(f"{self._root}/schemas/ids/{schema_id}")
        except httpx.HTTPError as exc:
            raise RegistryUnavailable(
                "unreachable",
                f"cannot reach the Schema Registry at {self.where} ({type(exc).__name__})",
            ) from exc
        status = response.status_code
        body = _json(response)
        if status == 200 and isinstance(body.get("schema"), str):
            return WriterSchema.of(schema_id, str(body.get("schemaType") or "AVRO"), body["schema"])
        if status == 404 and body.get("error_code") == SCHEMA_NOT_FOUND:
            return WriterSchema.unknown(schema_id)
        if status in (401, 403):
            raise RegistryUnavailable(
                "refused",
                f"the Schema Registry at {self.where} refuses the credentials ({status}): fix "
                "STREAM_REGISTRY__USERNAME and STREAM_REGISTRY__PASSWORD(_FILE)",
            )
        if status >= 500 or status == 429:
            raise RegistryUnavailable(
                "server_error", f"the Schema Registry at {self.where} answers {status}"
            )
        raise RegistryUnavailable(
            "misdirected",
            f"{self.where}/schemas/ids/{schema_id} answers {status} without a schema: "
            "STREAM_REGISTRY__URL must be the root of Confluent's registry API (Apicurio: "
            "https://host/apis/ccompat/v7)",
        )


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return {}
    return body if isinstance(body, dict) else {}


def from_settings() -> SchemaRegistry | None:
    """The registry the process's settings name, if any."""
    registry = get_settings().registry
    return SchemaRegistry(registry) if registry.url is not None else None


# The worker's one client (the fold resolves through it; readiness and /metrics read `problem`).
schema_registry = from_settings()


async def writer_schemas(values: Iterable[bytes | None]) -> Mapping[int, WriterSchema]:
    """The writer schemas of the framed values among `values`: one look-up per unknown id, and
    a wait for as long as the registry does not answer."""
    if schema_registry is None:
        return {}
    ids = schema_ids(values)
    return await schema_registry.resolve(ids) if ids else {}
