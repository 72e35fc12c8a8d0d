"""Delivery: retries, bisection and dead-lettering over a real client and a scripted Ometria."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import httpx
import orjson
import pytest
from pydantic import SecretStr

from stream import metrics
from stream.domain.dlq import DeadLetter
from stream.domain.records import MAX_RECORD_BYTES, encode
from stream.ometria.client import ApiKeyFile, OmetriaClient
from stream.ometria.delivery import PAUSE_LOG_INTERVAL, Delivery
from stream.ometria.pacing import MAX_RETRY_AFTER, RATE_MARGIN, Pacer
from tests.support.records import contact

API_KEY = "k-SECRET-123"

Reply = Callable[[list[dict[str, Any]]], httpx.Response]


def _counter_values() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in metrics.REGISTRY.collect()
        for sample in family.samples
        if sample.name.endswith("_total")
    }


@pytest.fixture
def counted() -> Callable[..., float]:
    """How much a counter grew since the test began, summed over the labels not given: read
    from the metrics registry, which is what operators see."""
    before = _counter_values()

    def grown(name: str, **labels: str) -> float:
        def total(values: dict[tuple[str, tuple[tuple[str, str], ...]], float]) -> float:
            return sum(
                value
                for (sample, sample_labels), value in values.items()
                if sample == f"{name}_total" and labels.items() <= dict(sample_labels).items()
            )

        return total(_counter_values()) - total(before)

    return grown


def accepted(records: list[dict[str, Any]]) -> httpx.Response:
    return httpx.Response(
        202, json={"status": "OK", "request_id": "req-1", "accepted": len(records), "rejected": 0}
    )


def status(code: int, **headers: str) -> Reply:
    return lambda records: httpx.Response(code, json={"error": f"status {code}"}, headers=headers)


class FakeOmetria:
    """A scripted Ometria: answers from `script` in turn, then `default`; keeps what it got.

    `errors` is what `GET /v2/push/_errors` answers (a list, or a status code).
    """

    def __init__(self) -> None:
        self.script: list[Reply] = []
        self.default: Reply = accepted
        self.bodies: list[list[dict[str, Any]]] = []
        self.accepted: list[dict[str, Any]] = []
        self.errors: list[dict[str, Any]] | int = []
        self.errors_read = 0

    def handle(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v2/push/_errors":
            self.errors_read += 1
            if isinstance(self.errors, int):
                return httpx.Response(self.errors, text="unavailable")
            return httpx.Response(200, json=self.errors)
        records = orjson.loads(request.content)
        self.bodies.append(records)
        reply = self.script.pop(0) if self.script else self.default
        response = reply(records)
        if response.status_code < 300:
            self.accepted.extend(records)
        return response


@pytest.fixture
def ometria() -> FakeOmetria:
    return FakeOmetria()


@pytest.fixture
async def client(ometria):
    async with OmetriaClient(
        "https://ometria.test", SecretStr(API_KEY), transport=httpx.MockTransport(ometria.handle)
    ) as client:
        yield client


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def dead_letters() -> list[DeadLetter]:
    return []


class FakeClock:
    """Time that moves only when the pacer sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.waits: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, delay: float) -> None:
        self.waits.append(delay)
        self.now += delay


@pytest.fixture
def pacer_clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def delivery(client, sleeps, dead_letters, pacer_clock) -> Delivery:
    async def sleep(delay: float) -> None:
        sleeps.append(delay)
        pacer_clock.now += delay  # the backoff passes the same time the pacer sees

    async def dead_letter(letter: DeadLetter) -> None:
        dead_letters.append(letter)

    pacer = Pacer(4, clock=pacer_clock, sleep=pacer_clock.sleep)
    return Delivery(
        client,
        max_requests_per_second=4,
        dead_letter=dead_letter,
        sleep=sleep,
        clock=pacer_clock,
        pacer=pacer,
    )


async def test_deliver_accepted_batch_sends_one_request_without_retries(
    counted, delivery, ometria, sleeps, dead_letters
):
    records = [contact("c1"), contact("c2")]

    await delivery.deliver(records)

    assert ometria.bodies == [records]
    assert counted("ometria_records_pushed") == 2
    assert (counted("ometria_push_requests"), counted("ometria_push_retries")) == (1, 0)
    assert sleeps == []
    assert dead_letters == []


async def test_deliver_transient_503_three_times_then_accepted_retries_and_delivers(
    counted, delivery, ometria, sleeps, dead_letters
):
    ometria.script = [status(503)] * 3
    records = [contact("c1"), contact("c2")]

    await delivery.deliver(records)

    assert ometria.bodies == [records] * 4
    assert ometria.accepted == records
    assert counted("ometria_push_retries") == 3
    assert counted("ometria_push_requests") == 4
    assert counted("ometria_records_pushed") == 2
    assert dead_letters == []
    assert len(sleeps) == 3
    assert all(0 <= delay <= 60 for delay in sleeps)


async def test_deliver_transport_error_retried_until_accepted(
    counted, delivery, ometria, sleeps, dead_letters
):
    def refuse(records: list[dict[str, Any]]) -> httpx.Response:
        raise httpx.ConnectError("connection refused")

    ometria.script = [refuse, refuse]

    await delivery.deliver([contact("c1")])

    assert ometria.accepted == [contact("c1")]
    assert counted("ometria_push_retries") == 2
    assert len(sleeps) == 2
    assert dead_letters == []


async def test_deliver_throttled_with_retry_after_waits_at_least_that_long(
    counted, delivery, ometria, sleeps, dead_letters
):
    ometria.script = [status(429, **{"Retry-After": "7"})]

    await delivery.deliver([contact("c1")])

    assert sleeps[0] >= 7
    assert len(sleeps) == 1
    assert counted("ometria_push_throttled") == 1
    assert ometria.accepted == [contact("c1")]
    assert dead_letters == []


@pytest.mark.parametrize("value", ["inf", "1e400", "99999999"])
async def test_deliver_throttled_with_a_huge_retry_after_waits_at_most_the_maximum(
    delivery, ometria, sleeps, pacer_clock, dead_letters, value
):
    ometria.script = [status(429, **{"Retry-After": value})]

    await delivery.deliver([contact("c1")])

    assert ometria.accepted == [contact("c1")]
    assert sleeps == [MAX_RETRY_AFTER], "waited the longest Retry-After honoured"
    assert pacer_clock.now <= MAX_RETRY_AFTER * 2, "neither the backoff nor the pacer stalls"
    assert dead_letters == []


@pytest.mark.parametrize("code", [408, 409])
async def test_deliver_request_timeout_or_conflict_retried_until_accepted(
    counted, delivery, ometria, sleeps, dead_letters, code
):
    ometria.script = [status(code)] * 2
    records = [contact("c1"), contact("c2")]

    await delivery.deliver(records)

    assert ometria.bodies == [records] * 3, "the same request again, never split"
    assert ometria.accepted == records
    assert dead_letters == []
    assert counted("ometria_push_retries") == 2
    assert len(sleeps) == 2


async def test_deliver_permanent_error_bisects_and_dead_letters_only_the_bad_record(
    counted, delivery, ometria, sleeps, dead_letters
):
    def refuse_bad(records: list[dict[str, Any]]) -> httpx.Response:
        if any(record["id"] == "bad" for record in records):
            return httpx.Response(400, text='{"error": "invalid email for bad"}')
        return accepted(records)

    ometria.default = refuse_bad
    records = [contact("a"), contact("b"), contact("bad"), contact("d")]

    await delivery.deliver(records)

    assert sorted(record["id"] for record in ometria.accepted) == ["a", "b", "d"]
    assert counted("ometria_records_pushed") == 3
    (letter,) = dead_letters
    assert letter.value == encode(contact("bad"))
    assert letter.stage == "push"
    assert letter.error_class == "Permanent"
    assert dict(letter.details) == {"status": "400", "body": '{"error": "invalid email for bad"}'}
    assert "400" in letter.reason
    assert sleeps == []


def rejecting(accepted_count: int, rejected_count: int, request_id: str = "req-9") -> Reply:
    return lambda records: httpx.Response(
        202,
        json={
            "status": "OK",
            "request_id": request_id,
            "accepted": accepted_count,
            "rejected": rejected_count,
        },
    )


def error_entry(record_id: str, request_id: str = "req-9", path: str = "root > email") -> dict:
    return {
        "error_message": "not a valid value",
        "error_path": path,
        "record_id": record_id,
        "request_id": request_id,
    }


async def test_deliver_accepted_with_rejections_dead_letters_only_records_the_errors_list_names(
    counted, delivery, ometria, dead_letters, caplog
):
    ometria.script = [rejecting(2, 1)]
    ometria.errors = [
        error_entry("c2"),
        error_entry("c1", request_id="req-other"),  # another request's error
        error_entry("c9"),  # not in this batch
    ]
    records = [contact("c1"), contact("c2"), contact("c3")]

    with caplog.at_level(logging.WARNING, logger="stream.ometria.delivery"):
        await delivery.deliver(records)

    (letter,) = dead_letters
    assert letter.value == encode(contact("c2"))
    assert letter.error_class == "Rejected"
    assert letter.reason == "Ometria rejected the record: not a valid value at root > email"
    assert dict(letter.details) == {"status": "202", "request_id": "req-9"}
    assert ometria.errors_read == 1
    assert counted("ometria_records_rejected") == 1
    assert counted("ometria_records_pushed") == 2
    assert "req-9" in caplog.text
    assert "1 of its 3 records rejected" in caplog.text


async def test_deliver_rejections_errors_list_unreadable_dead_letters_nothing_and_warns(
    counted, delivery, ometria, dead_letters, caplog
):
    ometria.script = [rejecting(1, 2)]
    ometria.errors = 503

    with caplog.at_level(logging.WARNING, logger="stream.ometria.delivery"):
        await delivery.deliver([contact("c1"), contact("c2"), contact("c3")])

    assert dead_letters == []
    assert ometria.errors_read == 1, "read once, not retried"
    assert "could not read Ometria's errors list for request req-9" in caplog.text
    assert counted("ometria_records_rejected") == 2


async def test_deliver_rejections_not_named_in_errors_list_stay_accepted(
    delivery, ometria, dead_letters, caplog
):
    ometria.script = [rejecting(1, 1)]
    ometria.errors = [{"error_message": "not a valid value", "error_path": "root > lastname"}]

    with caplog.at_level(logging.WARNING, logger="stream.ometria.delivery"):
        await delivery.deliver([contact("c1"), contact("c2")])

    assert dead_letters == []
    assert "not named in Ometria's errors list" in caplog.text


async def test_deliver_record_with_two_errors_dead_lettered_once_with_both_reasons(
    delivery, ometria, dead_letters
):
    ometria.script = [rejecting(0, 1)]
    ometria.errors = [error_entry("c1", path="root > email"), error_entry("c1", path="root > id")]

    await delivery.deliver([contact("c1")])

    (letter,) = dead_letters
    assert "root > email" in letter.reason
    assert "root > id" in letter.reason


@pytest.mark.parametrize(
    "body",
    [
        {"status": "OK", "request_id": "req-1", "accepted": None, "rejected": 2},
        {"status": "OK", "request_id": "req-1", "accepted": 0, "rejected": "2"},
        [],
    ],
    ids=["accepted-null", "rejected-string", "list"],
)
async def test_deliver_undocumented_2xx_body_counts_all_accepted_dead_letters_nothing(
    counted, delivery, ometria, dead_letters, body
):
    ometria.script = [lambda records: httpx.Response(202, content=orjson.dumps(body))]

    await delivery.deliver([contact("c1"), contact("c2")])

    assert dead_letters == []
    assert ometria.errors_read == 0
    assert counted("ometria_records_pushed") == 2


async def test_errors_read_after_a_push_waits_for_the_next_request_slot(
    delivery, ometria, pacer_clock
):
    ometria.errors = [error_entry("c9")]
    await delivery.deliver([contact("c1")])
    assert pacer_clock.waits == [], "the push went out at once"

    entries = await delivery.errors()

    assert entries == [error_entry("c9")]
    assert pacer_clock.waits == [pytest.approx(RATE_MARGIN / 4)], "spaced like a push"


# --- refused key (401/403) ------------------------------------------------------------------


def unauthorized_gauge() -> float | None:
    return metrics.REGISTRY.get_sample_value("ometria_unauthorized")


async def test_deliver_refused_key_pauses_and_resends_the_same_request_until_accepted(
    counted, delivery, ometria, sleeps, dead_letters
):
    seen: list[tuple[object, float | None]] = []

    def refuse(code: int) -> Reply:
        def reply(records: list[dict[str, Any]]) -> httpx.Response:
            seen.append((delivery.blocked, unauthorized_gauge()))
            return httpx.Response(code, text="API key is not authorised")

        return reply

    ometria.script = [refuse(401), refuse(403), refuse(403)]
    records = [contact(f"c{n}") for n in range(5)]

    await delivery.deliver(records)

    assert ometria.bodies == [records] * 4, "never split"
    assert ometria.accepted == records
    assert dead_letters == []
    assert sleeps == [15.0, 15.0, 15.0]
    first, *later = [pause for pause, _ in seen[1:]]
    assert first.status_code == 401
    assert later[-1].status_code == 403
    assert later[-1].since == first.since
    assert "Ometria refused the API key (403), since" in later[-1].reason
    assert [gauge for _, gauge in seen] == [0.0, 1.0, 1.0]
    assert delivery.blocked is None
    assert unauthorized_gauge() == 0.0
    assert (
        counted("ometria_push_requests", status="401")
        + counted("ometria_push_requests", status="403")
        == 3
    )


async def test_deliver_refused_key_retries_at_the_configured_interval(
    client, ometria, dead_letters, pacer_clock
):
    waits: list[float] = []

    async def sleep(delay: float) -> None:
        waits.append(delay)
        pacer_clock.now += delay

    async def dead_letter(letter: DeadLetter) -> None:
        dead_letters.append(letter)

    delivery = Delivery(
        client,
        max_requests_per_second=4,
        dead_letter=dead_letter,
        auth_retry_interval=2.5,
        sleep=sleep,
        clock=pacer_clock,
        pacer=Pacer(4, clock=pacer_clock, sleep=pacer_clock.sleep),
    )
    ometria.script = [status(403)] * 2

    await delivery.deliver([contact("c1")])

    assert waits == [2.5, 2.5]
    assert dead_letters == []


async def test_deliver_refused_key_warns_once_a_minute_not_per_attempt_and_never_the_key(
    delivery, ometria, caplog
):
    attempts = 20  # 15 s apart: five minutes of refusals
    ometria.script = [status(403)] * attempts

    with caplog.at_level(logging.DEBUG):
        await delivery.deliver([contact("c1")])

    paused = [r for r in caplog.records if "delivery paused" in r.getMessage()]
    assert len(paused) == attempts * 15 // PAUSE_LOG_INTERVAL
    assert all(r.levelno == logging.WARNING for r in paused)
    assert "delivery resumes" in caplog.text
    assert API_KEY not in caplog.text


async def test_deliver_refused_key_while_splitting_other_refusals_pauses_not_dead_letters(
    delivery, ometria, dead_letters
):
    answers = iter([400, 403, 403])

    def reply(records: list[dict[str, Any]]) -> httpx.Response:
        code = next(answers, 202)
        if code == 202:
            return accepted(records)
        return httpx.Response(code, text="refused")

    ometria.default = reply
    records = [contact("a"), contact("b")]

    await delivery.deliver(records)

    assert dead_letters == []
    assert sorted(r["id"] for r in ometria.accepted) == ["a", "b"]


async def test_deliver_key_file_rotated_during_pause_resumes_with_the_new_key(
    tmp_path, sleeps, dead_letters, pacer_clock
):
    key_file = tmp_path / "api-key"
    key_file.write_text("k-revoked", encoding="utf-8")
    sent_keys: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        sent_keys.append(request.headers["X-Ometria-Auth"])
        if request.headers["X-Ometria-Auth"] != API_KEY:
            return httpx.Response(403, text="forbidden")
        return accepted(orjson.loads(request.content))

    async def sleep(delay: float) -> None:
        sleeps.append(delay)
        pacer_clock.now += delay
        if len(sleeps) == 2:
            rotated = tmp_path / "api-key.new"
            rotated.write_text(API_KEY, encoding="utf-8")
            rotated.replace(key_file)

    async def dead_letter(letter: DeadLetter) -> None:
        dead_letters.append(letter)

    async with OmetriaClient(
        "https://ometria.test", ApiKeyFile(key_file), transport=httpx.MockTransport(handle)
    ) as client:
        delivery = Delivery(
            client,
            max_requests_per_second=4,
            dead_letter=dead_letter,
            sleep=sleep,
            clock=pacer_clock,
            pacer=Pacer(4, clock=pacer_clock, sleep=pacer_clock.sleep),
        )
        await delivery.deliver([contact("c1")])

    assert sent_keys == ["k-revoked", "k-revoked", API_KEY]
    assert dead_letters == []
    assert delivery.blocked is None


# --- wrong endpoint (3xx, 404, 405, 407) ----------------------------------------------------


def misdirected_gauge() -> float | None:
    return metrics.REGISTRY.get_sample_value("ometria_misdirected")


@pytest.mark.parametrize(
    ("code", "setting"),
    [
        (301, "STREAM_OMETRIA__BASE_URL"),
        (307, "STREAM_OMETRIA__BASE_URL"),
        (404, "STREAM_OMETRIA__BASE_URL"),
        (405, "STREAM_OMETRIA__BASE_URL"),
        (407, "HTTPS_PROXY"),
    ],
)
async def test_deliver_wrong_endpoint_pauses_resends_and_dead_letters_nothing(
    delivery, ometria, sleeps, dead_letters, code, setting
):
    seen: list[tuple[object, float | None, float | None]] = []

    def astray(records: list[dict[str, Any]]) -> httpx.Response:
        seen.append((delivery.blocked, misdirected_gauge(), unauthorized_gauge()))
        return httpx.Response(code, text="<html>Not Found</html>")

    ometria.script = [astray, astray, astray]
    records = [contact(f"c{n}") for n in range(5)]

    await delivery.deliver(records)

    assert ometria.bodies == [records] * 4, "never split"
    assert ometria.accepted == records
    assert dead_letters == []
    assert sleeps == [15.0, 15.0, 15.0]
    blocked = [pause for pause, _, _ in seen[1:]]
    assert all(pause is not None and pause.status_code == code for pause in blocked)
    assert setting in blocked[-1].reason
    assert [(gauge, key) for _, gauge, key in seen[1:]] == [(1.0, 0.0)] * 2
    assert delivery.blocked is None
    assert misdirected_gauge() == 0.0


async def test_deliver_wrong_endpoint_then_refused_key_moves_the_pause_and_its_gauges(
    delivery, ometria, dead_letters
):
    seen: list[tuple[float | None, float | None]] = []

    def answer(code: int) -> Reply:
        def reply(records: list[dict[str, Any]]) -> httpx.Response:
            seen.append((misdirected_gauge(), unauthorized_gauge()))
            return httpx.Response(code, text="no")

        return reply

    # The base URL is fixed first; then the key turns out to be wrong too.
    ometria.script = [answer(404), answer(401), answer(202)]
    ometria.default = accepted

    await delivery.deliver([contact("c1")])

    assert seen == [(0.0, 0.0), (1.0, 0.0), (0.0, 1.0)]
    assert dead_letters == []
    assert (misdirected_gauge(), unauthorized_gauge()) == (0.0, 0.0)


async def test_deliver_wrong_endpoint_warns_once_a_minute_naming_the_setting(
    delivery, ometria, caplog
):
    attempts = 8  # 15 s apart: two minutes
    ometria.script = [status(404)] * attempts

    with caplog.at_level(logging.WARNING, logger="stream.ometria.delivery"):
        await delivery.deliver([contact("c1")])

    paused = [r.getMessage() for r in caplog.records if "delivery paused" in r.getMessage()]
    assert len(paused) == attempts * 15 // PAUSE_LOG_INTERVAL
    assert "STREAM_OMETRIA__BASE_URL" in paused[0]
    assert "https://ometria.test/v2/push" in paused[0]
    assert "delivery resumes" in caplog.text


# --- private record keys --------------------------------------------------------------------


async def test_deliver_versioned_records_sent_without_version_dead_letters_keep_it(
    delivery, ometria, dead_letters
):
    def refuse_bad(records: list[dict[str, Any]]) -> httpx.Response:
        if any(record["id"] == "bad" for record in records):
            return httpx.Response(400, text="invalid")
        return accepted(records)

    ometria.default = refuse_bad
    good = {**contact("good"), "@version": 12}
    bad = {**contact("bad"), "@version": 13}

    await delivery.deliver([good, bad])

    assert ometria.accepted == [contact("good")]
    assert all("@version" not in record for body in ometria.bodies for record in body)
    (letter,) = dead_letters
    assert orjson.loads(letter.value) == bad


async def test_deliver_oversized_record_dead_lettered_others_sent(delivery, ometria, dead_letters):
    big = contact("big", note="x" * (MAX_RECORD_BYTES + 1))
    records = [contact("c1"), big, contact("c2")]

    await delivery.deliver(records)

    assert ometria.bodies == [[contact("c1"), contact("c2")]]
    (letter,) = dead_letters
    assert letter.error_class == "RecordTooLarge"
    assert letter.stage == "push"
    assert letter.value == encode(big)
    assert str(MAX_RECORD_BYTES) in letter.reason


async def test_deliver_coalesces_contact_versions_before_sending(delivery, ometria):
    await delivery.deliver([contact("c1", v=1), contact("c1", v=2)])

    assert ometria.bodies == [[contact("c1", v=2)]]


async def test_deliver_dead_letters_carry_record_json_and_never_the_api_key(
    delivery, ometria, dead_letters, caplog
):
    def refuse_bad(records: list[dict[str, Any]]) -> httpx.Response:
        if any(record["id"] == "bad" for record in records):
            return httpx.Response(400, text="invalid")
        return httpx.Response(
            202, json={"request_id": "req-1", "accepted": len(records) - 1, "rejected": 1}
        )

    ometria.script = [status(503), status(403), status(429, **{"Retry-After": "1"})]
    ometria.default = refuse_bad
    ometria.errors = [error_entry("good", request_id="req-1")]
    big = contact("big", note="x" * (MAX_RECORD_BYTES + 1))
    records = [contact("good"), contact("bad"), big]

    with caplog.at_level(logging.DEBUG):
        await delivery.deliver(records)

    assert {letter.error_class for letter in dead_letters} == {
        "RecordTooLarge",
        "Permanent",
        "Rejected",
    }
    for letter in dead_letters:
        assert orjson.loads(letter.value) in records
        assert letter.key == orjson.loads(letter.value)["id"].encode()
        assert API_KEY.encode() not in letter.value
        assert all(API_KEY.encode() not in value for _, value in letter.headers())
    assert API_KEY not in caplog.text
