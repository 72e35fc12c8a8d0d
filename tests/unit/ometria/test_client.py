"""OmetriaClient: one request per push, every answer classified; HTTP faked with MockTransport."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import httpx
import orjson
import pytest
from pydantic import SecretStr

from stream.ometria.client import (
    BODY_EXCERPT_CHARS,
    KEY_FILE_CHECK_SECONDS,
    ApiKeyFile,
    OmetriaClient,
    PushResult,
)
from stream.ometria.errors import (
    Misconfigured,
    Misdirected,
    OmetriaError,
    Permanent,
    Retryable,
    Unauthorized,
)
from stream.ometria.pacing import MAX_RETRY_AFTER
from stream.settings import SettingsError, load_settings

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

    def build(
        handler: Handler, *, base_url: str = BASE_URL, key: object = SecretStr(API_KEY)
    ) -> OmetriaClient:
        def record(request: httpx.Request) -> httpx.Response:
            sent.append(request)
            return handler(request)

        client = OmetriaClient(base_url, key, transport=httpx.MockTransport(record))
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


@pytest.mark.parametrize("status", [400, 410, 413, 422])
async def test_push_client_error_raises_permanent_with_status_and_body(ometria, status):
    client = ometria(answer(status, '{"error": "invalid record"}'))

    with pytest.raises(Permanent) as caught:
        await client.push(RECORDS)

    assert caught.value.status_code == status
    assert caught.value.body == '{"error": "invalid record"}'
    assert not isinstance(caught.value, Retryable)


@pytest.mark.parametrize(
    "value",
    ["inf", "Infinity", "1e400", "86400", str(MAX_RETRY_AFTER + 1)],
    ids=["inf", "infinity", "overflow", "a-day", "just-over"],
)
async def test_push_throttled_retry_after_beyond_the_maximum_is_capped(ometria, value):
    client = ometria(answer(429, None, **{"Retry-After": value}))

    with pytest.raises(Retryable) as caught:
        await client.push(RECORDS)

    assert caught.value.retry_after == MAX_RETRY_AFTER


@pytest.mark.parametrize(
    ("value", "expected"), [("nan", None), ("-5", 0.0), ("2.5", 2.5)], ids=["nan", "neg", "frac"]
)
async def test_push_throttled_retry_after_not_a_usable_delay_is_ignored_or_floored(
    ometria, value, expected
):
    client = ometria(answer(429, None, **{"Retry-After": value}))

    with pytest.raises(Retryable) as caught:
        await client.push(RECORDS)

    assert caught.value.retry_after == expected


@pytest.mark.parametrize("status", [408, 409])
async def test_push_request_timeout_or_conflict_raises_retryable_honouring_retry_after(
    ometria, status
):
    client = ometria(answer(status, "try again", **{"Retry-After": "4"}))

    with pytest.raises(Retryable) as caught:
        await client.push(RECORDS)

    assert caught.value.status_code == status
    assert caught.value.retry_after == 4.0


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308, 404, 405])
async def test_push_wrong_endpoint_raises_misdirected_naming_the_base_url_setting(ometria, status):
    client = ometria(answer(status, "<html>not here</html>"), base_url=f"{BASE_URL}/v1")

    with pytest.raises(Misdirected) as caught:
        await client.push(RECORDS)

    assert caught.value.status_code == status
    assert caught.value.body == "<html>not here</html>"
    assert isinstance(caught.value, Misconfigured)
    assert not isinstance(caught.value, Permanent | Retryable | Unauthorized)
    assert "STREAM_OMETRIA__BASE_URL" in str(caught.value)
    assert f"{BASE_URL}/v1/v2/push" in str(caught.value), "says where the request went"


async def test_push_redirect_says_where_it_points(ometria):
    moved = "https://api.ometria.example/v2/push"
    client = ometria(answer(301, None, Location=moved))

    with pytest.raises(Misdirected) as caught:
        await client.push(RECORDS)

    assert moved in str(caught.value)


async def test_push_base_url_credentials_never_shown_in_a_misdirected_error(ometria):
    client = ometria(answer(404, "not found"), base_url="https://user:pw-SECRET@ometria.test")

    with pytest.raises(Misdirected) as caught:
        await client.push(RECORDS)

    assert "pw-SECRET" not in str(caught.value)
    assert "https://ometria.test/v2/push" in str(caught.value)


async def test_push_proxy_wanting_credentials_raises_misdirected_naming_the_proxy_settings(
    ometria,
):
    client = ometria(answer(407, "Proxy Authentication Required"))

    with pytest.raises(Misdirected) as caught:
        await client.push(RECORDS)

    assert caught.value.status_code == 407
    assert "HTTPS_PROXY" in str(caught.value)


@pytest.mark.parametrize("status", [302, 404, 405, 407])
async def test_errors_list_wrong_endpoint_raises_misdirected(ometria, status):
    client = ometria(answer(status, "not here"))

    with pytest.raises(Misdirected):
        await client.errors()


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
        answer(401, "unauthorised"),
        raising(httpx.ReadTimeout, "timed out"),
        raising(httpx.ConnectError, "connection refused"),
    ],
    ids=["429", "503", "400", "403", "401", "timeout", "connect"],
)
async def test_push_any_error_never_shows_api_key(ometria, handler):
    client = ometria(handler)

    with pytest.raises(OmetriaError) as caught:
        await client.push(RECORDS)

    assert API_KEY not in str(caught.value)
    assert API_KEY not in repr(caught.value)


@pytest.mark.parametrize("status", [401, 403])
async def test_push_refused_key_raises_unauthorized_not_permanent(ometria, status):
    client = ometria(answer(status, '{"error": "API key is not authorised"}'))

    with pytest.raises(Unauthorized) as caught:
        await client.push(RECORDS)

    assert caught.value.status_code == status
    assert caught.value.body == '{"error": "API key is not authorised"}'
    assert not isinstance(caught.value, Permanent | Retryable)
    assert "STREAM_OMETRIA__API_KEY" in str(caught.value)


@pytest.mark.parametrize("status", [401, 403])
async def test_errors_list_refused_key_raises_unauthorized(ometria, status):
    client = ometria(answer(status, "forbidden"))

    with pytest.raises(Unauthorized):
        await client.errors()


# --- private keys ---------------------------------------------------------------------------


async def test_push_record_version_is_not_sent_and_the_callers_records_are_unchanged(ometria, sent):
    client = ometria(answer(202, {"accepted": 2, "rejected": 0}))
    records = [{**RECORDS[0], "@version": 41}, {**RECORDS[1], "@version": 7}]
    before = orjson.dumps(records)

    await client.push(records)

    assert orjson.loads(sent[0].content) == RECORDS
    assert orjson.dumps(records) == before


# --- 2xx answers ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        {"status": "OK", "request_id": "req-1", "accepted": None, "rejected": 0},
        {"status": "OK", "request_id": "req-1", "accepted": "2", "rejected": 0},
        {"status": "OK", "request_id": "req-1", "accepted": 2.5, "rejected": 0},
        {"status": "OK", "request_id": "req-1", "accepted": True, "rejected": 0},
        {"status": "OK", "request_id": "req-1", "accepted": -1, "rejected": 0},
        {"status": "OK", "request_id": "req-1", "rejected": 1},
        {"status": "OK", "request_id": "req-1", "accepted": 1, "rejected": None},
        ["c1", "c2"],
        "OK",
        "not json",
    ],
    ids=[
        "accepted-null",
        "accepted-string",
        "accepted-float",
        "accepted-bool",
        "accepted-negative",
        "accepted-missing",
        "rejected-null",
        "list",
        "json-string",
        "not-json",
    ],
)
async def test_push_undocumented_2xx_body_counts_all_accepted_and_logs_once(ometria, caplog, body):
    client = ometria(lambda request: httpx.Response(202, content=orjson.dumps(body)))
    if body == "not json":
        client = ometria(answer(202, "not json"))

    with caplog.at_level(logging.DEBUG, logger="stream.ometria.client"):
        result = await client.push(RECORDS)

    assert (result.accepted, result.rejected) == (2, 0)
    assert result.unexpected_body is not None
    (warning,) = [r for r in caplog.records if r.name == "stream.ometria.client"]
    assert warning.levelno == logging.WARNING
    message = warning.getMessage()
    assert "undocumented" in message
    assert "c1" not in message, "no record contents in the log"


async def test_push_documented_2xx_body_is_not_logged(ometria, caplog):
    client = ometria(
        answer(202, {"status": "OK", "request_id": "req-1", "accepted": 2, "rejected": 0})
    )

    with caplog.at_level(logging.DEBUG, logger="stream.ometria.client"):
        result = await client.push(RECORDS)

    assert result.unexpected_body is None
    assert [r for r in caplog.records if r.name == "stream.ometria.client"] == []


# --- key sources ----------------------------------------------------------------------------


async def test_push_key_callable_is_asked_before_every_request(ometria, sent):
    keys = iter([SecretStr("k-one"), SecretStr("k-two")])
    client = ometria(answer(202, {"accepted": 2, "rejected": 0}), key=lambda: next(keys))

    await client.push(RECORDS)
    await client.push(RECORDS)

    assert [request.headers["X-Ometria-Auth"] for request in sent] == ["k-one", "k-two"]


class Ticks:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def key_file(tmp_path) -> Path:
    path = tmp_path / "api-key"
    path.write_text(f"{API_KEY}\n", encoding="utf-8")
    return path


def rotate(path: Path, key: str) -> None:
    """Replace the file the way a Kubernetes Secret update does: a new file moved in place."""
    fresh = path.with_name("api-key.new")
    fresh.write_text(f"{key}\n", encoding="utf-8")
    fresh.replace(path)


def test_api_key_file_rotated_file_read_after_the_check_interval(key_file):
    ticks = Ticks()
    source = ApiKeyFile(key_file, clock=ticks)
    rotate(key_file, "k-rotated")

    assert source().get_secret_value() == API_KEY, "not looked at again yet"
    ticks.now += KEY_FILE_CHECK_SECONDS
    assert source().get_secret_value() == "k-rotated"


def test_api_key_file_reload_reads_a_rotated_file_at_once(key_file):
    source = ApiKeyFile(key_file, clock=Ticks())
    rotate(key_file, "k-rotated")

    source.reload()

    assert source().get_secret_value() == "k-rotated"


@pytest.mark.parametrize("damage", ["empty", "missing"])
def test_api_key_file_empty_or_missing_keeps_the_last_key_and_warns_once(key_file, caplog, damage):
    ticks = Ticks()
    source = ApiKeyFile(key_file, clock=ticks)
    if damage == "empty":
        key_file.write_text("\n", encoding="utf-8")
    else:
        key_file.unlink()

    with caplog.at_level(logging.DEBUG, logger="stream.ometria.client"):
        for _ in range(3):
            ticks.now += KEY_FILE_CHECK_SECONDS
            assert source().get_secret_value() == API_KEY

    (warning,) = caplog.records
    assert str(key_file) in warning.getMessage()
    assert API_KEY not in caplog.text


def test_api_key_file_missing_at_start_raises_settings_error_naming_the_variable(tmp_path):
    with pytest.raises(SettingsError, match="STREAM_OMETRIA__API_KEY_FILE"):
        ApiKeyFile(tmp_path / "missing")


def test_api_key_file_repr_and_change_log_never_show_the_key(key_file, caplog):
    source = ApiKeyFile(key_file, clock=Ticks())
    rotate(key_file, "k-rotated-SECRET")

    with caplog.at_level(logging.DEBUG):
        source.reload()
        source()

    assert API_KEY not in repr(source)
    assert "k-rotated-SECRET" not in caplog.text
    assert "changed" in caplog.text


async def test_push_after_refused_key_sends_the_rotated_key_from_the_file(ometria, sent, key_file):
    def only_new_key(request: httpx.Request) -> httpx.Response:
        if request.headers["X-Ometria-Auth"] != "k-rotated":
            return httpx.Response(403, text="forbidden")
        return httpx.Response(202, json={"accepted": 2, "rejected": 0})

    client = ometria(only_new_key, key=ApiKeyFile(key_file))
    with pytest.raises(Unauthorized):
        await client.push(RECORDS)
    rotate(key_file, "k-rotated")

    result = await client.push(RECORDS)

    assert result.accepted == 2
    assert [r.headers["X-Ometria-Auth"] for r in sent] == [API_KEY, "k-rotated"]


async def test_client_from_settings_key_file_follows_rotation(monkeypatch, key_file, sent):
    monkeypatch.setenv("STREAM_OMETRIA__API_KEY_FILE", str(key_file))
    monkeypatch.setenv("STREAM_OMETRIA__BASE_URL", BASE_URL)
    valid = [API_KEY]

    def record(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        if request.headers["X-Ometria-Auth"] not in valid:
            return httpx.Response(401, text="unauthorised")
        return httpx.Response(202, json={"accepted": 2, "rejected": 0})

    async with OmetriaClient.from_settings(
        load_settings().ometria, transport=httpx.MockTransport(record)
    ) as client:
        await client.push(RECORDS)
        rotate(key_file, "k-rotated")
        valid[:] = ["k-rotated"]  # the old key is revoked
        with pytest.raises(Unauthorized):
            await client.push(RECORDS)
        await client.push(RECORDS)

    assert [r.headers["X-Ometria-Auth"] for r in sent] == [API_KEY, API_KEY, "k-rotated"]
    assert str(sent[0].url) == f"{BASE_URL}/v2/push"


async def test_client_from_settings_key_set_directly_is_used_as_is(monkeypatch, sent):
    monkeypatch.setenv("STREAM_OMETRIA__API_KEY", API_KEY)

    def record(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(202, json={"accepted": 2, "rejected": 0})

    async with OmetriaClient.from_settings(
        load_settings().ometria, transport=httpx.MockTransport(record)
    ) as client:
        await client.push(RECORDS)

    assert sent[0].headers["X-Ometria-Auth"] == API_KEY
