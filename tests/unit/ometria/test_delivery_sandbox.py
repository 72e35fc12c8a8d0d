"""Delivery against the Ometria stand-in, in-process: the shapes it answers are the real test."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
from pydantic import SecretStr

from stream.domain.dlq import DeadLetter
from stream.ometria.client import ApiKeyFile, OmetriaClient
from stream.ometria.delivery import Delivery
from stream.ometria.pacing import Pacer
from stream.ops.sandbox import SandboxConfig, running_sandbox
from tests.support.records import contact

KEY = "k-sandbox-SECRET"


@pytest.fixture
async def sandbox() -> AsyncIterator[str]:
    # Rate limit off: the pacer below runs far faster than any account's limit.
    async with running_sandbox(SandboxConfig(port=0, api_key=KEY, rate_limit=0)) as base_url:
        yield base_url


async def put_faults(base_url: str, **faults: Any) -> None:
    async with httpx.AsyncClient(base_url=base_url) as http:
        (await http.put("/_sandbox/faults", json=faults)).raise_for_status()


async def stored_contacts(base_url: str) -> dict[str, dict[str, Any]]:
    async with httpx.AsyncClient(base_url=base_url) as http:
        body = (await http.get("/_sandbox/contacts")).json()
    return {stored["id"]: stored for stored in body["contacts"]}


class Harness:
    """A Delivery over a real client; sleeps are recorded (and run `during_sleep`), not slept."""

    def __init__(self, client: OmetriaClient) -> None:
        self.dead_letters: list[DeadLetter] = []
        self.sleeps: list[float] = []
        self.during_sleep: list[Any] = []
        self.delivery = Delivery(
            client,
            max_requests_per_second=1000,
            dead_letter=self._dead_letter,
            sleep=self._sleep,
            pacer=Pacer(1000),
        )

    async def _dead_letter(self, letter: DeadLetter) -> None:
        self.dead_letters.append(letter)

    async def _sleep(self, delay: float) -> None:
        self.sleeps.append(delay)
        if self.during_sleep:
            self.during_sleep.pop(0)()


async def test_delivery_wrong_key_pauses_then_the_rotated_key_file_delivers_everything(
    sandbox, tmp_path
):
    key_file = tmp_path / "api-key"
    key_file.write_text("k-wrong\n", encoding="utf-8")

    def rotate() -> None:
        fresh = tmp_path / "api-key.new"
        fresh.write_text(f"{KEY}\n", encoding="utf-8")
        fresh.replace(key_file)

    records = [contact(f"c{n}", points=n) for n in range(10)]
    async with OmetriaClient(sandbox, ApiKeyFile(key_file)) as client:
        harness = Harness(client)
        harness.during_sleep = [lambda: None, rotate]

        await harness.delivery.deliver(records)

    assert harness.sleeps == [15.0, 15.0]
    assert harness.dead_letters == []
    assert harness.delivery.blocked is None
    assert sorted(await stored_contacts(sandbox)) == sorted(r["id"] for r in records)


class Stop(Exception):
    """Ends a pause that would otherwise last until someone fixes the setting."""


async def test_delivery_mistyped_base_url_pauses_naming_the_setting_and_dead_letters_nothing(
    sandbox,
):
    records = [contact(f"c{n}") for n in range(10)]
    seen = []

    def look_then_stop() -> None:
        seen.append(harness.delivery.blocked)
        raise Stop

    # The stand-in serves /v2/push, not /v1/v2/push: its web server answers 404 there.
    async with OmetriaClient(f"{sandbox}/v1", SecretStr(KEY)) as client:
        harness = Harness(client)
        harness.during_sleep = [lambda: None, look_then_stop]

        with pytest.raises(Stop):
            await harness.delivery.deliver(records)

    assert harness.dead_letters == []
    assert harness.sleeps == [15.0, 15.0], "paused and tried the same request again"
    (blocked,) = seen
    assert blocked.status_code == 404
    assert "STREAM_OMETRIA__BASE_URL" in blocked.reason
    assert f"{sandbox}/v1/v2/push" in blocked.reason
    assert await stored_contacts(sandbox) == {}


async def test_delivery_sandbox_rejected_record_only_it_is_dead_lettered(sandbox):
    await put_faults(sandbox, reject_ids=["c2"])
    records = [contact("c1"), contact("c2"), contact("c3")]

    async with OmetriaClient(sandbox, SecretStr(KEY)) as client:
        harness = Harness(client)
        await harness.delivery.deliver(records)

    (letter,) = harness.dead_letters
    assert orjson.loads(letter.value) == contact("c2")
    assert letter.error_class == "Rejected"
    assert "root > id" in letter.reason
    assert letter.details["request_id"]
    assert sorted(await stored_contacts(sandbox)) == ["c1", "c3"]


async def test_delivery_sandbox_versioned_contacts_stored_without_the_version(sandbox):
    records = [{**contact("c1", points=5), "@version": 3}]

    async with OmetriaClient(sandbox, SecretStr(KEY)) as client:
        harness = Harness(client)
        await harness.delivery.deliver(records)

    assert harness.dead_letters == []
    stored = (await stored_contacts(sandbox))["c1"]
    assert "@version" not in orjson.dumps(stored).decode()
    assert records[0]["@version"] == 3
