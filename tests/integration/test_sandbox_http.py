"""The Ometria sandbox over real HTTP: Ometria's rules, inspection, faults and the command."""

from __future__ import annotations

import asyncio
import re
import signal
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from stream.ops.sandbox import SandboxConfig, running_sandbox

KEY = "test-key-5b1d"
AUTH = {"X-Ometria-Auth": KEY}
REPO_ROOT = Path(__file__).resolve().parents[2]


class FakeClock:
    """A monotonic clock that moves only when the test says so."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def sandbox(clock: FakeClock) -> AsyncIterator[str]:
    # Rate limit off by default: with a frozen clock every request lands in the same second.
    config = SandboxConfig(port=0, api_key=KEY, rate_limit=0)
    async with running_sandbox(config, clock=clock) as base_url:
        yield base_url


@pytest.fixture
async def client(sandbox: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=sandbox) as client:
        yield client


def contact(listing_id: str = "cust-1", **fields: Any) -> dict[str, Any]:
    return {"@type": "contact", "@collection": "loyalty", "id": listing_id, **fields}


def custom_event(event_id: str = "evt-1", **fields: Any) -> dict[str, Any]:
    return {
        "@type": "custom_event",
        "id": event_id,
        "timestamp": "2026-11-21T10:00:00+00:00",
        "event_type": "loyalty_points_earned",
        "identity_account_id": "cust-1",
        **fields,
    }


async def push(client: httpx.AsyncClient, records: object) -> httpx.Response:
    return await client.post("/v2/push", json=records, headers=AUTH)


async def set_faults(client: httpx.AsyncClient, **faults: Any) -> dict[str, Any]:
    response = await client.put("/_sandbox/faults", json=faults)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def stored_contacts(client: httpx.AsyncClient, **query: str) -> list[dict[str, Any]]:
    response = await client.get("/_sandbox/contacts", params=query)
    contacts: list[dict[str, Any]] = response.json()["contacts"]
    return contacts


async def logged_statuses(client: httpx.AsyncClient) -> list[int]:
    requests = (await client.get("/_sandbox/requests")).json()["requests"]
    return [entry["status"] for entry in requests]


# --- auth ------------------------------------------------------------------------------------


async def test_push_without_key_returns_401(client: httpx.AsyncClient) -> None:
    response = await client.post("/v2/push", json=[contact()])

    assert response.status_code == 401
    assert response.json()["status"] == "ERROR"


async def test_push_wrong_key_returns_403_with_ometria_message(client: httpx.AsyncClient) -> None:
    response = await client.post("/v2/push", json=[contact()], headers={"X-Ometria-Auth": "wrong"})

    assert response.status_code == 403
    assert response.json() == {
        "status": "ERROR",
        "message": "API key is not authorised to access this resource",
    }
    assert await stored_contacts(client) == []


async def test_errors_without_key_returns_401(client: httpx.AsyncClient) -> None:
    assert (await client.get("/v2/push/_errors")).status_code == 401


# --- request-level rules ---------------------------------------------------------------------


async def test_push_101_records_returns_400(client: httpx.AsyncClient) -> None:
    records = [contact(f"cust-{n}") for n in range(101)]

    response = await push(client, records)

    assert response.status_code == 400
    assert "1 to 100 records" in response.json()["message"]
    assert await stored_contacts(client) == []


async def test_push_mixed_types_returns_400_and_counts_mixed_request(
    client: httpx.AsyncClient,
) -> None:
    response = await push(client, [contact(), custom_event()])

    assert response.status_code == 400
    assert "one @type per request" in response.json()["message"]
    assert (await client.get("/_sandbox/stats")).json()["mixed_type_requests"] == 1


@pytest.mark.parametrize(
    "body",
    [b'{"@type": "contact", "id": "1"}', b"[]", b"[{", b'[{"id": "\xff"}]', b'[{"@type": "x"}]'],
    ids=["object", "empty-array", "broken-json", "not-utf8", "unknown-type"],
)
async def test_push_malformed_body_returns_400(client: httpx.AsyncClient, body: bytes) -> None:
    response = await client.post("/v2/push", content=body, headers=AUTH)

    assert response.status_code == 400
    assert response.json()["status"] == "ERROR"


async def test_push_body_beyond_size_limit_returns_413() -> None:
    config = SandboxConfig(port=0, api_key=KEY, max_records=1, max_record_bytes=10)
    async with running_sandbox(config) as base_url, httpx.AsyncClient(base_url=base_url) as client:
        response = await push(client, [contact(properties={"blob": "x" * 2_000_000})])

        assert response.status_code == 413
        assert await logged_statuses(client) == [413]


# --- accepting and storing -------------------------------------------------------------------


async def test_push_good_batch_returns_202_with_counts(client: httpx.AsyncClient) -> None:
    response = await push(client, [contact("cust-1"), contact("cust-2")])

    assert response.status_code == 202
    body = response.json()
    assert body == {
        "status": "OK",
        "request_id": body["request_id"],
        "accepted": 2,
        "rejected": 0,
    }
    assert uuid.UUID(body["request_id"]).version == 4
    assert "X-QueueSize-Remaining" not in response.headers


async def test_push_good_contact_visible_at_sandbox_contacts(client: httpx.AsyncClient) -> None:
    await push(client, [contact(email="sarah@example.com", properties={"rivoPointsBalance": 5})])

    [stored] = await stored_contacts(client)

    assert stored == contact(
        email="sarah@example.com", properties={"rivoPointsBalance": 5}, received=1
    )


async def test_push_partial_contact_merges_fields_and_properties(
    client: httpx.AsyncClient,
) -> None:
    await push(client, [contact(firstname="Sarah", properties={"points": 5, "tier": "Gold"})])
    await push(client, [contact(properties={"points": 9, "referral_url": "https://r.example"})])

    [stored] = await stored_contacts(client)

    assert stored["firstname"] == "Sarah"
    assert stored["properties"] == {
        "points": 9,
        "tier": "Gold",
        "referral_url": "https://r.example",
    }
    assert stored["received"] == 2


async def test_push_same_id_in_two_collections_keeps_two_listings(
    client: httpx.AsyncClient,
) -> None:
    await push(client, [contact("cust-1"), {"@type": "contact", "id": "cust-1"}])

    assert len(await stored_contacts(client, id="cust-1")) == 2
    assert len(await stored_contacts(client, collection="loyalty")) == 1


async def test_contacts_filtered_by_id_returns_only_that_listing(
    client: httpx.AsyncClient,
) -> None:
    await push(client, [contact("cust-1"), contact("cust-2")])

    assert [stored["id"] for stored in await stored_contacts(client, id="cust-2")] == ["cust-2"]


async def test_push_same_event_twice_stores_one_event_received_twice(
    client: httpx.AsyncClient,
) -> None:
    await push(client, [custom_event("evt-1"), custom_event("evt-2", event_type="other")])
    await push(client, [custom_event("evt-1")])

    response = await client.get("/_sandbox/events", params={"event_type": "loyalty_points_earned"})

    [stored] = response.json()["events"]
    assert (stored["id"], stored["received"]) == ("evt-1", 2)


async def test_push_bad_record_rejects_only_it_and_lists_error(client: httpx.AsyncClient) -> None:
    records = [contact("cust-1"), contact("cust-2", loyalty_tier="Gold"), contact("cust-3")]

    response = await push(client, records)

    assert response.status_code == 202
    body = response.json()
    assert (body["accepted"], body["rejected"]) == (2, 1)
    errors = (await client.get("/v2/push/_errors", headers=AUTH)).json()
    assert errors == [
        {
            "error_message": "not a valid value",
            "error_path": "root > loyalty_tier",
            "record_id": "cust-2",
            "request_id": body["request_id"],
            "hint": errors[0]["hint"],
        }
    ]
    assert [stored["id"] for stored in await stored_contacts(client)] == ["cust-1", "cust-3"]


async def test_errors_keeps_newest_100_newest_first(client: httpx.AsyncClient) -> None:
    await push(client, [contact(f"old-{n}", bogus=1) for n in range(100)])
    await push(client, [contact("newest", bogus=1)])

    errors = (await client.get("/v2/push/_errors", headers=AUTH)).json()

    assert len(errors) == 100
    assert errors[0]["record_id"] == "newest"
    assert "old-0" not in {error["record_id"] for error in errors}


async def test_push_oversize_record_rejected_as_too_large(client: httpx.AsyncClient) -> None:
    response = await push(client, [contact(properties={"blob": "x" * 61_440})])

    assert response.json()["rejected"] == 1
    [error] = (await client.get("/v2/push/_errors", headers=AUTH)).json()
    assert error["error_message"] == "Payload invalid: Record is too large."


# --- rate limit ------------------------------------------------------------------------------


async def test_push_over_rate_limit_in_one_second_returns_429(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    await set_faults(client, rate_limit=2)

    responses = await asyncio.gather(*(push(client, [contact()]) for _ in range(6)))

    statuses = sorted(response.status_code for response in responses)
    assert statuses == [202, 202, 429, 429, 429, 429]
    refused = next(response for response in responses if response.status_code == 429)
    assert refused.json() == {"status": "ERROR", "message": "Rate limit exceeded"}
    assert "Retry-After" not in refused.headers
    assert sorted(await logged_statuses(client)) == statuses


async def test_push_after_window_moves_on_is_accepted_again(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    await set_faults(client, rate_limit=1)
    assert (await push(client, [contact()])).status_code == 202
    assert (await push(client, [contact()])).status_code == 429

    clock.advance(1.0)

    assert (await push(client, [contact()])).status_code == 202


async def test_push_rate_limited_with_retry_after_configured_sends_header(
    client: httpx.AsyncClient,
) -> None:
    await set_faults(client, rate_limit=1, retry_after=2)

    await push(client, [contact()])
    refused = await push(client, [contact()])

    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "2"


async def test_push_unauthenticated_requests_do_not_use_rate_budget(
    client: httpx.AsyncClient,
) -> None:
    await set_faults(client, rate_limit=1)

    await client.post("/v2/push", json=[contact()], headers={"X-Ometria-Auth": "wrong"})

    assert (await push(client, [contact()])).status_code == 202


async def test_push_burst_on_real_clock_gets_429() -> None:
    config = SandboxConfig(port=0, api_key=KEY, rate_limit=1)
    async with running_sandbox(config) as base_url, httpx.AsyncClient(base_url=base_url) as client:
        responses = await asyncio.gather(*(push(client, [contact()]) for _ in range(6)))

    # Six admissions at 1 request/s would need the burst to span five seconds.
    assert sum(response.status_code == 429 for response in responses) >= 1


# --- faults ----------------------------------------------------------------------------------


async def test_faults_fail_next_two_answers_two_503_then_202(client: httpx.AsyncClient) -> None:
    await set_faults(client, fail_next=2)

    statuses = [(await push(client, [contact()])).status_code for _ in range(3)]

    assert statuses == [503, 503, 202]
    assert await logged_statuses(client) == [503, 503, 202]
    assert (await stored_contacts(client))[0]["received"] == 1


async def test_faults_fail_next_stores_nothing(client: httpx.AsyncClient) -> None:
    await set_faults(client, fail_next=1, fail_status=500)

    response = await push(client, [contact()])

    assert response.status_code == 500
    assert await stored_contacts(client) == []


async def test_faults_fail_status_429_answers_rate_limit_body(client: httpx.AsyncClient) -> None:
    await set_faults(client, fail_next=1, fail_status=429, retry_after=7)

    response = await push(client, [contact()])

    assert response.status_code == 429
    assert response.json()["message"] == "Rate limit exceeded"
    assert response.headers["Retry-After"] == "7"


async def test_faults_fail_for_seconds_fails_until_window_ends(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    faults = await set_faults(client, fail_for_seconds=30)
    assert faults["fail_for_seconds"] == 30

    assert (await push(client, [contact()])).status_code == 503
    clock.advance(29.9)
    assert (await push(client, [contact()])).status_code == 503
    clock.advance(0.1)
    assert (await push(client, [contact()])).status_code == 202


async def test_faults_latency_delays_push_response(client: httpx.AsyncClient) -> None:
    await set_faults(client, latency_ms=200)

    started = time.perf_counter()
    response = await push(client, [contact()])
    elapsed = time.perf_counter() - started

    assert response.status_code == 202
    assert elapsed >= 0.19


async def test_faults_reject_ids_rejects_listed_records(client: httpx.AsyncClient) -> None:
    await set_faults(client, reject_ids=["cust-2"])

    response = await push(client, [contact("cust-1"), contact("cust-2")])

    assert (response.json()["accepted"], response.json()["rejected"]) == (1, 1)
    [error] = (await client.get("/v2/push/_errors", headers=AUTH)).json()
    assert (error["record_id"], error["error_message"]) == ("cust-2", "not a valid value")


async def test_faults_queue_size_remaining_sets_header(client: httpx.AsyncClient) -> None:
    await set_faults(client, queue_size_remaining=9_000)

    response = await push(client, [contact()])

    assert response.headers["X-QueueSize-Remaining"] == "9000"


@pytest.mark.parametrize(
    "faults",
    [{"fail_nxt": 1}, {"fail_next": -1}, {"fail_status": 200}, {"reject_ids": "cust-1"}, []],
    ids=["unknown-field", "negative", "not-an-error", "not-a-list", "not-an-object"],
)
async def test_faults_put_invalid_body_returns_400(client: httpx.AsyncClient, faults: Any) -> None:
    response = await client.put("/_sandbox/faults", json=faults)

    assert response.status_code == 400
    assert response.json()["status"] == "ERROR"


async def test_faults_delete_clears_every_fault(client: httpx.AsyncClient) -> None:
    await set_faults(client, fail_next=3, latency_ms=50, reject_ids=["a"], rate_limit=1)

    cleared = (await client.delete("/_sandbox/faults")).json()

    assert cleared == (await client.get("/_sandbox/faults")).json()
    assert (cleared["fail_next"], cleared["latency_ms"], cleared["reject_ids"]) == (0, 0.0, [])
    assert (cleared["rate_limit"], cleared["effective_rate_limit"]) == (None, 0)
    assert (await push(client, [contact()])).status_code == 202


# --- inspection and control ------------------------------------------------------------------


async def test_reset_clears_records_and_logs_but_keeps_faults(client: httpx.AsyncClient) -> None:
    await push(client, [contact(bogus=1), contact("cust-2")])
    await set_faults(client, fail_next=1)

    await client.post("/_sandbox/reset")

    assert await stored_contacts(client) == []
    assert await logged_statuses(client) == []
    assert (await client.get("/v2/push/_errors", headers=AUTH)).json() == []
    assert (await push(client, [contact()])).status_code == 503


async def test_reset_with_faults_flag_clears_faults(client: httpx.AsyncClient) -> None:
    await set_faults(client, fail_next=1)

    await client.post("/_sandbox/reset", params={"faults": "1"})

    assert (await push(client, [contact()])).status_code == 202


async def test_stats_counts_requests_records_and_batch_shapes(client: httpx.AsyncClient) -> None:
    await push(client, [contact("cust-1"), contact("cust-2", bogus=1)])
    await push(client, [custom_event()])
    await push(client, [contact(f"c{n}") for n in range(101)])

    stats = (await client.get("/_sandbox/stats")).json()

    assert stats == {
        "requests": 3,
        "by_status": {"202": 2, "400": 1},
        "contacts": 1,
        "events": 1,
        "records_accepted": 2,
        "records_rejected": 1,
        "max_records_in_a_request": 101,
        "mixed_type_requests": 0,
        "errors": 1,
    }


async def test_requests_log_describes_each_push_without_the_key(
    client: httpx.AsyncClient,
) -> None:
    response = await push(client, [custom_event()])

    log_text = (await client.get("/_sandbox/requests")).text
    [entry] = (await client.get("/_sandbox/requests")).json()["requests"]

    assert KEY not in log_text
    assert entry == {
        "request_id": response.json()["request_id"],
        "received_at": entry["received_at"],
        "status": 202,
        "type": "custom_event",
        "records": 1,
        "accepted": 1,
        "rejected": 0,
        "bytes": len(response.request.content),
    }


async def test_healthz_returns_ok(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")

    assert (response.status_code, response.text) == (200, "ok")


# --- the command -----------------------------------------------------------------------------


async def test_main_serves_until_sigterm_and_never_prints_the_key() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "import sys; from stream.ops.sandbox import main; sys.exit(main(sys.argv[1:]))",
        "--port=0",
        f"--api-key={KEY}",
        cwd=REPO_ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    try:
        banner = (await asyncio.wait_for(process.stdout.readline(), timeout=30)).decode()
        match = re.fullmatch(
            r"sandbox: Ometria stand-in on (http://127\.0\.0\.1:\d+) \(inspect: "
            r"/_sandbox/contacts, /_sandbox/events, /_sandbox/requests\)\n",
            banner,
        )
        assert match, banner
        async with httpx.AsyncClient(base_url=match[1]) as client:
            accepted = await push(client, [contact(email="sarah@example.com")])
        process.send_signal(signal.SIGTERM)
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=30)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()

    assert accepted.status_code == 202
    assert process.returncode == 0
    output = banner + stdout.decode() + stderr.decode()
    assert "push status=202 type=contact" in output
    assert KEY not in output
    assert "sarah@example.com" not in output
