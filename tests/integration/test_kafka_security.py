"""Kafka security: the worker and the aiokafka clients over the broker's SASL_PLAINTEXT listener.

`deploy/local/kafka.sh up` always starts the local broker with a SASL_PLAINTEXT listener
(KAFKA_SASL_PORT, default 9094) for PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512, and one user
(KAFKA_SASL_USER / KAFKA_SASL_PASSWORD, default loyalty / loyalty-secret). The password
rotation tests make a SCRAM user of their own, so that the shared user's password stays.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialDeletion,
    UserScramCredentialUpsertion,
)

from stream.runtime.kafka_auth import client_options
from stream.settings import Settings, load_settings
from tests.support.kafka import BOOTSTRAP, envelope
from tests.support.processes import READY, READY_LINES, web_get
from tests.support.waiting import poll, sandbox_get

SASL_HOST = BOOTSTRAP.split(",")[0].strip().rsplit(":", 1)[0]
SASL_PORT = int(os.environ.get("KAFKA_SASL_PORT", "9094"))
SASL_BOOTSTRAP = f"{SASL_HOST}:{SASL_PORT}"
SASL_USER = os.environ.get("KAFKA_SASL_USER", "loyalty")
SASL_PASSWORD = os.environ.get("KAFKA_SASL_PASSWORD", "loyalty-secret")
WRONG_PASSWORD = "not-the-password-3c9e"


@pytest.fixture
def sasl_listener() -> str:
    """The SASL listener's address; fails (never skips) when nothing listens there."""
    try:
        socket.create_connection((SASL_HOST, SASL_PORT), timeout=3).close()
    except OSError as exc:
        pytest.fail(
            f"no SASL_PLAINTEXT listener on {SASL_BOOTSTRAP} ({exc}): start the broker with "
            "'bash deploy/local/kafka.sh up' ('kafka.sh down && kafka.sh up' if it was started "
            "by an older kafka.sh), or set KAFKA_SASL_PORT"
        )
    return SASL_BOOTSTRAP


def sasl_env(mechanism: str, password: str, password_file: Path | None = None) -> dict[str, str]:
    """The worker's Kafka settings for the SASL listener only."""
    env = {
        "STREAM_KAFKA__BOOTSTRAP_SERVERS": SASL_BOOTSTRAP,
        "STREAM_KAFKA__SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "STREAM_KAFKA__SASL_MECHANISM": mechanism,
        "STREAM_KAFKA__SASL_USERNAME": SASL_USER,
    }
    if password_file is None:
        env["STREAM_KAFKA__SASL_PASSWORD"] = password
    else:
        password_file.write_text(password + "\n", encoding="utf-8")
        env["STREAM_KAFKA__SASL_PASSWORD_FILE"] = str(password_file)
    return env


def settings_from(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The settings the worker reads from `env`, read the same way in this process."""
    with monkeypatch.context() as patch:
        for name in [name for name in os.environ if name.startswith("STREAM_")]:
            patch.delenv(name)
        for name, value in env.items():
            patch.setenv(name, value)
        return load_settings()


def _event(event_id: str, event_type: str, customer: dict, data: dict, at: datetime) -> bytes:
    return orjson.dumps(envelope(event_id, event_type, customer, data, at))


@pytest.mark.parametrize(
    ("mechanism", "password_in_file"),
    [("SCRAM-SHA-256", False), ("SCRAM-SHA-512", True), ("PLAIN", False)],
)
async def test_worker_over_sasl_delivers_contacts(
    names, sandbox, worker, tmp_path, monkeypatch, sasl_listener, mechanism, password_in_file
):
    password_file = tmp_path / "kafka-password" if password_in_file else None
    env = sasl_env(mechanism, SASL_PASSWORD, password_file)
    worker.env.update(env)
    settings = settings_from(env, monkeypatch)
    options = client_options(settings.kafka)
    assert options["bootstrap_servers"] == sasl_listener
    assert options["security_protocol"] == "SASL_PLAINTEXT"
    assert options["sasl_mechanism"] == mechanism
    assert options["sasl_plain_password"] == SASL_PASSWORD

    # Authenticates before the worker starts: a broken listener fails here, and clearly.
    producer = AIOKafkaProducer(**options, acks="all")
    await producer.start()
    try:
        worker.start()
        await worker.wait_ready()
        cid, points = "770001", 137
        at = datetime.now(UTC) - timedelta(minutes=5)
        customer = {"id": cid, "first_name": "Sasl", "email": "sasl.customer@example.com"}
        enrolled = _event(
            f"{cid}-enrol", "customer.enrolled", customer, {"loyalty_status": "member"}, at
        )
        later = at + timedelta(seconds=1)
        earned = _event(f"{cid}-earn", "points.earned", {"id": cid}, {"points": points}, later)
        await producer.send_and_wait(names.events, key=cid.encode(), value=enrolled)
        await producer.send_and_wait(names.events, key=cid.encode(), value=earned)
    finally:
        await producer.stop()

    def arrived(body):
        return any(
            c["id"] == cid and c["properties"].get("rivoPointsBalance") == points
            for c in body["contacts"]
        )

    contacts = await poll(lambda: sandbox_get(sandbox, "/_sandbox/contacts"), arrived)
    assert arrived(contacts), f"no contact {cid} with {points} points: {contacts}"
    contact = next(c for c in contacts["contacts"] if c["id"] == cid)
    assert contact["email"] == "sasl.customer@example.com"

    assert worker.process.poll() is None, f"worker died:\n{worker.text()[-3000:]}"
    # Stop it here, off the event loop: the sandbox answers on this loop, and a push still in
    # flight at SIGTERM would otherwise wait for it (the fixture's teardown blocks the loop).
    await asyncio.to_thread(worker.stop)
    log = worker.text()
    # aiokafka logs each SASL login of the worker's Faust consumer and producer.
    assert f"Authenticated as {SASL_USER} via {mechanism}" in log, log[-3000:]
    assert SASL_PASSWORD not in log, "the SASL password must never be logged"


async def test_worker_with_a_wrong_password_exits_with_an_authentication_error(
    worker, monkeypatch, sasl_listener
):
    env = sasl_env("SCRAM-SHA-512", WRONG_PASSWORD)
    worker.env.update(env)
    assert settings_from(env, monkeypatch).kafka.bootstrap_servers == sasl_listener
    worker.start()

    async def returncode():
        return worker.process.poll()

    code = await poll(returncode, lambda rc: rc is not None, timeout=60)
    log = worker.text()
    assert code is not None, f"worker still running after 60s with a wrong password:\n{log[-3000:]}"
    assert code != 0
    assert "SaslAuthenticationFailed" in log, log[-3000:]
    assert READY not in log
    assert WRONG_PASSWORD not in log, "the SASL password must never be logged"


def _set_scram_password(admin: AdminClient, user: str, password: str) -> None:
    info = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 4096)
    upsert = UserScramCredentialUpsertion(user, info, password.encode())
    for future in admin.alter_user_scram_credentials([upsert]).values():
        future.result(timeout=30)


def _replace_file(path: Path, text: str) -> None:
    """Write as the kubelet updates a mounted Secret: a new file swapped in at once."""
    fresh = path.with_name(path.name + ".new")
    fresh.write_text(text, encoding="utf-8")
    fresh.replace(path)


@pytest.fixture
def own_user(names):
    """A SCRAM-SHA-512 user of the test's own, allowed everything on the test's topics and
    groups (all named after its run), removed afterwards."""
    admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
    user = f"it-{names.run}"
    principal = f"User:{user}"
    _set_scram_password(admin, user, secrets.token_urlsafe(18))
    prefix = f"it-{names.run}"
    grants = [
        AclBinding(
            kind,
            prefix,
            ResourcePatternType.PREFIXED,
            principal,
            "*",
            AclOperation.ALL,
            AclPermissionType.ALLOW,
        )
        for kind in (ResourceType.TOPIC, ResourceType.GROUP)
    ]
    for future in admin.create_acls(grants).values():
        future.result(timeout=30)
    try:
        yield admin, user
    finally:
        mine = AclBindingFilter(
            ResourceType.ANY,
            None,
            ResourcePatternType.ANY,
            principal,
            None,
            AclOperation.ANY,
            AclPermissionType.ANY,
        )
        for future in admin.delete_acls([mine]).values():
            future.result(timeout=30)
        gone = UserScramCredentialDeletion(user, ScramMechanism.SCRAM_SHA_512)
        for future in admin.alter_user_scram_credentials([gone]).values():
            future.result(timeout=30)


@pytest.mark.parametrize("command", ["worker", "push"])
async def test_process_stops_cleanly_when_its_password_file_changes_and_restarts_with_the_new_one(
    worker, own_user, tmp_path, sasl_listener, command
):
    admin, user = own_user
    old, new = secrets.token_urlsafe(18), secrets.token_urlsafe(18)
    _set_scram_password(admin, user, old)
    password_file = tmp_path / "kafka-password"
    env = sasl_env("SCRAM-SHA-512", old, password_file)
    env["STREAM_KAFKA__SASL_USERNAME"] = user
    env["STREAM_OMETRIA__PUSH_IN_WORKER"] = "false" if command == "push" else "true"
    worker.env.update(env)
    worker.command, worker.ready_line = command, READY_LINES[command]
    worker.start()
    await worker.wait_ready()
    # Settled: every client the process keeps is connected. A connection opened between the
    # broker's change and the file's (up to a minute with a kubelet) fails to log in anyway.
    ready = await poll(lambda: web_get(worker, "/readyz"), lambda r: r.status_code == 200)
    assert ready.status_code == 200, ready.text

    # Strimzi's rotation: the broker takes the new password, then the mounted Secret shows it.
    _set_scram_password(admin, user, new)
    _replace_file(password_file, new + "\n")

    async def returncode():
        return worker.process.poll()

    code = await poll(returncode, lambda rc: rc is not None, timeout=60)
    log = worker.text()
    assert code is not None, f"{command} still running after its password changed:\n{log[-3000:]}"
    assert code == 0, f"{command} did not stop cleanly (exit {code}):\n{log[-3000:]}"
    assert "the Kafka password file" in log, log[-3000:]

    # Started again (what Kubernetes does), it logs in with the new password.
    worker.start()
    await worker.wait_ready()
    log = worker.text()
    assert old not in log
    assert new not in log, "the SASL password must never be logged"
