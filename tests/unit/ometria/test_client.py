"""OmetriaClient: one request per push, every answer classified; HTTP faked with MockTransport."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import orjson
import pytest
from pydantic import SecretStr

from stream.ometria.client import BODY_EXCERPT_CHARS, OmetriaClient, PushResult
from stream.ometria.errors import OmetriaError, Permanent, Retryable

API_KEY = "k-SECRET-123"
BASE_URL = "https://ometria.test"
RECORDS = [
    {"@type": "contact", "@collection": "loyalty", "id": "c1", "customer_id": "c1"},
    {"@type": "contact", "@collection": "loyalty", "id": "c2", "customer_id": "c2"},
]

Handler = Callable[[httpx.Request], httpx.Response]


@pytest.fixture
def sent() -> list[httpx.Request]:
    """Every request the fake Ometria received, in order."""
    return []


@pytest.fixture
async def ometria(sent):
    """Build a client whose requests are recorded in `sent` and answered by `handler`."""
    clients: list[OmetriaClient] = []

    def build(handler: Handler, *, base_url: str = BASE_URL) -> OmetriaClient:
        def record(request: httpx.Request) -> httpx.Response:
            sent.append(request)
            return handler(request)

        client = OmetriaClient(base_url, SecretStr(API_KEY), transport=httpx.MockTransport(record))
        clients.append(client)
        return client

    yield build
    for client in clients:
        await client.aclose()


def answer(status: int, body: object = None, **headers: str) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        if body is None:
            return httpx.Response(status, headers=headers)
        if isinstance(body, str):
            return httpx.Response(status, text=body, headers=headers)
        return httpx.Response(status, json=body, headers=headers)

    return handler


def raising(exc_type: type[httpx.TransportError], message: str) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc_type(message, request=request)

    return handler


async def test_push_accepted_body_parsed_into_push_result(ometria):
    client = ometria(
        answer(
            202,
            {"status": "OK", "request_id": "req-7", "accepted": 1, "rejected": 1},
            **{"X-QueueSize-Remaining": "4321"},
        )
    )

    result = await client.push(RECORDS)

    assert result == PushResult(
        status_code=202, request_id="req-7", accepted=1, rejected=1, queue_remaining=4321
    )


async def test_push_accepted_without_counts_assumes_all_accepted(ometria):
    client = ometria(answer(202, "not json"))

    result = await client.push(RECORDS)

    assert (result.accepted, result.rejected, result.request_id) == (2, 0, None)
    assert result.queue_remaining is None


async def test_push_request_carries_auth_json_array_to_v2_push(ometria, sent):
    client = ometria(answer(202, {"accepted": 2, "rejected": 0}))

    await client.push(RECORDS)

    (request,) = sent
    assert request.method == "POST"
    assert str(request.url) == f"{BASE_URL}/v2/push"
    assert request.headers["X-Ometria-Auth"] == API_KEY
    assert request.headers["Content-Type"] == "application/json"
    body = orjson.loads(request.content)
    assert isinstance(body, list)
    assert body == RECORDS


async def test_push_base_url_with_trailing_slash_posts_to_v2_push(ometria, sent):
    client = ometria(answer(202, {}), base_url=f"{BASE_URL}/")

    await client.push(RECORDS)

    assert str(sent[0].url) == f"{BASE_URL}/v2/push"


async def test_push_throttled_numeric_retry_after_raises_retryable_with_delay(ometria):
    client = ometria(answer(429, {"error": "slow down"}, **{"Retry-After": "7"}))

    with pytest.raises(Retryable) as caught:
        await client.push(RECORDS)

    assert caught.value.status_code == 429
    assert caught.value.retry_after == 7.0


async def test_push_throttled_http_date_retry_after_raises_retryable_without_delay(ometria):
    client = ometria(answer(429, None, **{"Retry-After": "Wed, 21 Oct 2026 07:28:00 GMT"}))

    with pytest.raises(Retryable) as caught:
        await client.push(RECORDS)

    assert caught.value.status_code == 429
    assert caught.value.retry_after is None


async def test_push_throttled_without_retry_after_raises_retryable_without_delay(ometria):
    client = ometria(answer(429))

    with pytest.raises(Retryable) as caught:
        await client.push(RECORDS)

    assert caught.value.retry_after is None


@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_push_server_error_raises_retryable_with_status(ometria, status):
    client = ometria(answer(status, "upstream trouble"))

    with pytest.raises(Retryable) as caught:
        await client.push(RECORDS)

    assert caught.value.status_code == status


@pytest.mark.parametrize(
    ("exc_type", "message"),
    [
        (httpx.ReadTimeout, "timed out"),
        (httpx.ConnectTimeout, "timed out"),
        (httpx.ConnectError, "connection refused"),
        (httpx.RemoteProtocolError, "server disconnected"),
    ],
)
async def test_push_transport_failure_raises_retryable_chained(ometria, exc_type, message):
    client = ometria(raising(exc_type, message))

    with pytest.raises(Retryable) as caught:
        await client.push(RECORDS)

    assert caught.value.status_code is None
    assert caught.value.retry_after is None
    assert isinstance(caught.value.__cause__, exc_type)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 413, 422])
async def test_push_client_error_raises_permanent_with_status_and_body(ometria, status):
    client = ometria(answer(status, '{"error": "invalid record"}'))

    with pytest.raises(Permanent) as caught:
        await client.push(RECORDS)

    assert caught.value.status_code == status
    assert caught.value.body == '{"error": "invalid record"}'
    assert not isinstance(caught.value, Retryable)


async def test_push_client_error_long_body_is_truncated(ometria):
    client = ometria(answer(400, "x" * (BODY_EXCERPT_CHARS + 500)))

    with pytest.raises(Permanent) as caught:
        await client.push(RECORDS)

    assert len(caught.value.body) == BODY_EXCERPT_CHARS


async def test_client_repr_names_base_url_not_api_key(ometria):
    shown = repr(ometria(answer(202)))

    assert "ometria.test" in shown
    assert API_KEY not in shown


@pytest.mark.parametrize(
    "handler",
    [
        answer(429, {"error": "slow"}, **{"Retry-After": "3"}),
        answer(503, "down"),
        answer(400, "bad"),
        answer(403, "forbidden"),
        raising(httpx.ReadTimeout, "timed out"),
        raising(httpx.ConnectError, "connection refused"),
    ],
    ids=["429", "503", "400", "403", "timeout", "connect"],
)
async def test_push_any_error_never_shows_api_key(ometria, handler):
    client = ometria(handler)

    with pytest.raises(OmetriaError) as caught:
        await client.push(RECORDS)

    assert API_KEY not in str(caught.value)
    assert API_KEY not in repr(caught.value)
