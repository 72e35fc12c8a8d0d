"""First run and exposure: a worker from a fresh clone, and what its web port answers to whom."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from datetime import UTC, datetime

import httpx
import orjson

from stream.ops.peer_auth import PEER_SIGNATURE_HEADER, sign
from tests.support.kafka import BOOTSTRAP, envelope
from tests.support.paths import REPO
from tests.support.processes import Worker, free_port, second_worker
from tests.support.waiting import poll, sandbox_get

# Faust's built-in views (tables, router, stats, graph, performance, index): none checks a
# token, and /table/... answers a customer's whole profile. Every one must be gone.
FAUST_VIEWS = [
    "/",
    "/table/",
    "/table/customer_to_profile/",
    "/table/customer_to_profile/{cid}/",
    "/router/",
    "/router/topics",
    "/router/customer_to_profile/",
    "/router/customer_to_profile/{cid}/",
    "/stats/",
    "/assignment/",
    "/graph/",
    "/performance/",
]
TOKEN = "it-profile-token-51c2"


async def _send(producer, topic: str, customers: list[str]) -> None:
    now = datetime.now(UTC)
    for cid in customers:
        customer = {"id": cid, "email": f"first-run-{cid}@example.com"}
        enrolled = envelope(f"{cid}-enrol", "customer.enrolled", customer, {}, now)
        earned = envelope(f"{cid}-earn", "points.earned", {"id": cid}, {"points": 42}, now)
        for event in (enrolled, earned):
            await producer.send(topic, key=cid.encode(), value=orjson.dumps(event))
    await producer.flush()


async def _contacts_arrive(sandbox: str, customers: list[str]) -> None:
    def complete(body):
        got = {c["id"]: c for c in body["contacts"]}
        return all(
            got.get(cid, {}).get("properties", {}).get("rivoPointsBalance") == 42
            for cid in customers
        )

    body = await poll(lambda: sandbox_get(sandbox, "/_sandbox/contacts"), complete)
    assert complete(body), f"contacts of {customers} did not reach the stand-in"


async def test_fresh_clone_worker_starts_with_only_broker_and_ometria_settings(
    names, sandbox, producer, tmp_path
):
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
    assert not (clone / ".run").exists()
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAM_")}
    env.update(
        {
            "STREAM_KAFKA__BOOTSTRAP_SERVERS": BOOTSTRAP,
            "STREAM_OMETRIA__BASE_URL": sandbox,
            "STREAM_OMETRIA__API_KEY": "it-secret-key-7f3a",
            # Only so that this run shares no group or port with others on the same machine;
            # the topics, data directory and everything else are the defaults.
            "STREAM_APP_ID": names.app_id,
            "STREAM_WEB_PORT": str(free_port()),
            "PYTHONPATH": str(clone),
        }
    )
    worker = Worker(env, tmp_path / "worker.log")
    worker.cwd = clone
    worker.start()
    try:
        await worker.wait_ready()
        assert (clone / ".run" / "data").is_dir(), "the default data directory, with parents"
        customers = [f"fr-{names.run}-{n}" for n in range(3)]
        await _send(producer, "loyalty.events", customers)
        await _contacts_arrive(sandbox, customers)
        # The README's demo (`make run`): send-sample waits for what the stand-in received.
        # Asynchronously: the stand-in answers from this test's event loop.
        demo = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "stream", "send-sample", "--show-sandbox", sandbox),
            cwd=clone,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        shown = (await asyncio.wait_for(demo.communicate(), timeout=120))[0].decode()
        assert demo.returncode == 0, shown[-3000:]
        assert "Custom events received" in shown
        assert "still missing" not in shown
    finally:
        assert await worker.stop_async() == 0, worker.text()[-3000:]


def test_worker_with_an_unusable_data_dir_names_the_setting(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAM_")}
    env.update(
        {
            "STREAM_DATA_DIR": str(blocker / "data"),
            "STREAM_OMETRIA__ENABLED": "false",
            "PYTHONPATH": str(REPO),
        }
    )
    done = subprocess.run(
        [sys.executable, "-m", "stream", "worker"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "STREAM_DATA_DIR" in done.stderr
    assert "Traceback" not in done.stderr


async def test_web_port_serves_health_and_metrics_but_no_data_without_the_token(
    names, sandbox, worker, producer, tmp_path
):
    worker.env["STREAM_PROFILE_API_TOKEN"] = TOKEN
    worker.env["STREAM_WEB_HOST"] = "127.0.0.1"
    second = second_worker(worker.env, tmp_path)
    worker.start()
    await worker.wait_ready()
    customers = [f"web-{names.run}-{n}" for n in range(12)]
    await _send(producer, names.events, customers)
    await _contacts_arrive(sandbox, customers)
    second.start()
    try:
        await second.wait_ready()
        await _exposure_checks(worker, second, customers)
    finally:
        await second.stop_async()


async def _exposure_checks(first: Worker, second: Worker, customers: list[str]) -> None:
    urls = [f"http://127.0.0.1:{w.env['STREAM_WEB_PORT']}" for w in (first, second)]
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(timeout=15) as http:
        for url in urls:
            # The first worker rebalances when the second joins: wait for both to settle.
            async def ready(url=url):
                return (await http.get(url + "/readyz")).status_code

            await poll(ready, lambda status: status == 200, timeout=60)
            for path in ("/healthz", "/readyz", "/metrics"):
                assert (await http.get(url + path)).status_code == 200, path
            for view in FAUST_VIEWS:
                answer = await http.get(url + view.format(cid=customers[0]))
                assert answer.status_code == 404, (view, answer.text[:200])
                assert customers[0] not in answer.text

        async def all_profiles_served():
            return [
                await http.get(f"{urls[0]}/profiles/{cid}", headers=bearer) for cid in customers
            ]

        # Right after the second worker joins, the group may still be settling: poll until
        # every customer is served, half of them by routing to the other worker.
        answers = await poll(
            all_profiles_served, lambda got: all(a.status_code == 200 for a in got), timeout=60
        )
        for cid, answer in zip(customers, answers, strict=True):
            assert answer.status_code == 200, (cid, answer.text[:300])
            assert answer.json()["profile"]["points"]["balance"] == 42
        # The second worker recovered only the partitions it owns; asked with a peer signature
        # it answers from its own table, so these customers were routed to it.
        on_second = []
        for cid in customers:
            path = f"/profiles/{cid}"
            signed = {PEER_SIGNATURE_HEADER: sign(TOKEN, "GET", path, now=time.time())}
            if (await http.get(urls[1] + path, headers=signed)).status_code == 200:
                on_second.append(cid)
        assert 0 < len(on_second) < len(customers), "both workers own some of the customers"
        for cid in customers:
            # The token is checked before routing: no customer, wherever it lives, without it.
            for headers in ({}, {"Authorization": "Bearer wrong"}):
                denied = await http.get(f"{urls[0]}/profiles/{cid}", headers=headers)
                assert denied.status_code == 401
                assert "example.com" not in denied.text
            forged = {PEER_SIGNATURE_HEADER: f"{int(time.time())}:" + "0" * 64}
            assert (await http.get(f"{urls[1]}/profiles/{cid}", headers=forged)).status_code == 401
    for worker in (first, second):
        assert TOKEN not in worker.text()
