"""The documented ACLs, on a broker that enforces them: enough for every process, each needed.

`deploy/local/kafka.sh up` starts the local broker with Kafka's StandardAuthorizer (nothing is
allowed without an ACL; the PLAINTEXT principal and the local SASL user are super users, so the
other tests are unaffected). This file makes a SCRAM-SHA-512 user of its own, grants it exactly
the ACLs of the KafkaUser in deploy/k8s/components/strimzi/kafkauser.yaml (which
tests/deploy/test_strimzi.py holds equal to the README's table), renamed from the deployment's
topics and groups to this run's, and runs the worker, the pusher and the commands as that user
over the SASL listener. Then, for each ACL, it removes that one and shows the cheapest
operation that needs it failing with an authorization error, and working again once restored.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
import yaml
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import NewTopic
from aiokafka.client import AIOKafkaClient
from aiokafka.errors import (
    GroupAuthorizationFailedError,
    SecurityDisabled,
    TopicAlreadyExistsError,
    TopicAuthorizationFailedError,
    for_code,
)
from aiokafka.protocol.admin import DescribeAclsRequest
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
from confluent_kafka.admin import NewTopic as AdminNewTopic

from stream.domain.dlq import DeadLetter
from stream.runtime.kafka_admin import admin_client
from stream.runtime.kafka_auth import client_options
from stream.runtime.topic_configs import topic_retention
from stream.runtime.topology import topic_specs
from stream.settings import Settings, load_settings
from tests.support.kafka import BOOTSTRAP, Names, envelope, names_settings
from tests.support.paths import REPO
from tests.support.processes import Worker, command_env, free_port, run_cli
from tests.support.waiting import poll, sandbox_get

KAFKA_USER = REPO / "deploy" / "k8s" / "components" / "strimzi" / "kafkauser.yaml"
BASE_CONFIG = REPO / "deploy" / "k8s" / "base" / "config.env"
SASL_HOST = BOOTSTRAP.split(",")[0].strip().rsplit(":", 1)[0]
SASL_BOOTSTRAP = f"{SASL_HOST}:{int(os.environ.get('KAFKA_SASL_PORT', '9094'))}"
PARTITIONS = 3
AUTHORIZATION_ERRORS = (TopicAuthorizationFailedError, GroupAuthorizationFailedError)

RESOURCE_TYPES = {"topic": ResourceType.TOPIC, "group": ResourceType.GROUP}
OPERATIONS = {
    "Read": AclOperation.READ,
    "Write": AclOperation.WRITE,
    "Create": AclOperation.CREATE,
    "Delete": AclOperation.DELETE,
    "DescribeConfigs": AclOperation.DESCRIBE_CONFIGS,
}


@dataclass(frozen=True)
class Acl:
    """One allowed operation on one literal resource, as the KafkaUser names it."""

    kind: str
    name: str
    operation: str

    def __str__(self) -> str:
        return f"{self.kind}:{self.name}:{self.operation}"


def documented_acls() -> list[Acl]:
    """The KafkaUser's ACLs, one per operation."""
    user = yaml.safe_load(KAFKA_USER.read_text(encoding="utf-8"))
    found = []
    for rule in user["spec"]["authorization"]["acls"]:
        resource = rule["resource"]
        assert resource.get("patternType", "literal") == "literal", rule
        assert rule.get("type", "allow") == "allow", rule
        assert rule.get("host", "*") == "*", rule
        found += [Acl(resource["type"], resource["name"], op) for op in rule["operations"]]
    return found


def deployment_settings() -> Settings:
    """The settings of the deployment the KafkaUser is written for (the base ConfigMap)."""
    values = dict(
        line.split("=", 1)
        for line in BASE_CONFIG.read_text(encoding="utf-8").splitlines()
        if line.startswith(("STREAM_APP_ID=", "STREAM_TOPICS__"))
    )
    topics = {
        name.removeprefix("STREAM_TOPICS__").lower(): value
        for name, value in values.items()
        if name.startswith("STREAM_TOPICS__")
    }
    return load_settings(app_id=values["STREAM_APP_ID"], topics=topics)


def faust_topics(settings: Settings) -> tuple[str, str]:
    """The table's changelog and the leader topic, as Faust names them after the app id."""
    app_id = settings.app_id
    return f"{app_id}-customer_to_profile-changelog", f"{app_id}-__assignor-__leader"


def resource_names(settings: Settings) -> dict[tuple[str, str], str]:
    """(kind, role) → name: every topic and group a deployment with `settings` uses."""
    changelog, leader = faust_topics(settings)
    named = {("topic", role): name for role, name in settings.topics.model_dump().items()}
    named = {key: value for key, value in named.items() if isinstance(value, str)}
    named |= {("topic", "changelog"): changelog, ("topic", "leader"): leader}
    return named | {
        ("group", "workers"): settings.app_id,
        ("group", "pushers"): settings.pusher_group,
    }


def renamed(acls: list[Acl], run: Settings) -> list[Acl]:
    """The ACLs with the deployment's names replaced by this run's."""
    roles = {
        (kind, name): role for (kind, role), name in resource_names(deployment_settings()).items()
    }
    ours = resource_names(run)
    out = []
    for acl in acls:
        role = roles.get((acl.kind, acl.name))
        assert role is not None, f"{acl}: not a topic or group of the deployment"
        out.append(Acl(acl.kind, ours[(acl.kind, role)], acl.operation))
    return out


def binding(acl: Acl, principal: str) -> AclBinding:
    return AclBinding(
        RESOURCE_TYPES[acl.kind],
        acl.name,
        ResourcePatternType.LITERAL,
        principal,
        "*",
        OPERATIONS[acl.operation],
        AclPermissionType.ALLOW,
    )


def wait_all(futures: dict) -> None:
    for future in futures.values():
        future.result(timeout=30)


@dataclass
class AclRun:
    """One run's topics, its own Kafka user and that user's ACLs (named like this run's)."""

    names: Names
    settings: Settings  # as the super user, over PLAINTEXT
    user: str
    password: str
    acls: list[Acl]
    admin: AdminClient

    @property
    def principal(self) -> str:
        return f"User:{self.user}"

    def env(self) -> dict[str, str]:
        """A command's environment as this user, over the SASL listener."""
        env = command_env(self.names)
        env.update(
            {
                "STREAM_KAFKA__BOOTSTRAP_SERVERS": SASL_BOOTSTRAP,
                "STREAM_KAFKA__SECURITY_PROTOCOL": "SASL_PLAINTEXT",
                "STREAM_KAFKA__SASL_MECHANISM": "SCRAM-SHA-512",
                "STREAM_KAFKA__SASL_USERNAME": self.user,
                "STREAM_KAFKA__SASL_PASSWORD": self.password,
                "STREAM_TOPICS__PARTITIONS": str(PARTITIONS),
            }
        )
        return env

    def user_settings(self) -> Settings:
        return load_settings(
            kafka={
                "bootstrap_servers": SASL_BOOTSTRAP,
                "security_protocol": "SASL_PLAINTEXT",
                "sasl_mechanism": "SCRAM-SHA-512",
                "sasl_username": self.user,
                "sasl_password": self.password,
            },
            app_id=self.settings.app_id,
            topics=self.settings.topics.model_dump(),
        )

    def grant(self, acls: list[Acl]) -> None:
        wait_all(self.admin.create_acls([binding(acl, self.principal) for acl in acls]))
        for acl in acls:
            self._wait_until_listed(acl, listed=True)

    def revoke(self, acl: Acl) -> None:
        exact = binding(acl, self.principal)
        wait_all(self.admin.delete_acls([AclBindingFilter(*exact_fields(exact))]))
        self._wait_until_listed(acl, listed=False)

    def _wait_until_listed(self, acl: Acl, listed: bool) -> None:
        """Until the broker's authorizer has the change: ACLs reach it through the metadata
        log a moment after the call returns, and it answers DescribeAcls from what it has."""
        exact = AclBindingFilter(*exact_fields(binding(acl, self.principal)))
        deadline = time.monotonic() + 20
        while bool(self.admin.describe_acls(exact).result(timeout=20)) != listed:
            assert time.monotonic() < deadline, f"{acl} still {'not ' if listed else ''}listed"
            time.sleep(0.1)

    def create_topics(self) -> None:
        """The run's topics as Strimzi's Topic Operator makes them (the user may create only
        Faust's two, and does not need to)."""
        single = {self.settings.topics.control, self.settings.topics.redriven}
        single.add(self.settings.topics.erasures)
        changelog, leader = faust_topics(self.settings)
        new = [
            AdminNewTopic(
                spec.name, 1 if spec.name in single else PARTITIONS, 1, config=spec.configs
            )
            for spec in topic_specs(self.settings, PARTITIONS)
        ]
        new.append(AdminNewTopic(changelog, PARTITIONS, 1, config={"cleanup.policy": "compact"}))
        new.append(AdminNewTopic(leader, 1, 1))
        wait_all(self.admin.create_topics(new, operation_timeout=30))


def exact_fields(acl: AclBinding) -> tuple:
    return (
        acl.restype,
        acl.name,
        acl.resource_pattern_type,
        acl.principal,
        acl.host,
        acl.operation,
        acl.permission_type,
    )


async def authorizer_on() -> bool:
    """Whether the broker has an authorizer: without one it answers DescribeAcls with
    SECURITY_DISABLED (which confluent-kafka's describe_acls reports as no ACLs)."""
    client = AIOKafkaClient(bootstrap_servers=BOOTSTRAP)
    await client.bootstrap()
    try:
        any_ = 1
        request = DescribeAclsRequest(any_, None, any_, None, None, any_, any_)
        response = await client.send(client.get_random_node(), request)
    finally:
        await client.close()
    return response.error_code != SecurityDisabled.errno


@pytest.fixture(scope="module")
def acl_run() -> Iterator[AclRun]:
    names = Names(uuid.uuid4().hex[:10])
    admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
    settings = names_settings(names, partitions=PARTITIONS)
    run = AclRun(
        names=names,
        settings=settings,
        user=f"acl-{names.run}",
        password=secrets.token_urlsafe(18),
        acls=renamed(documented_acls(), settings),
        admin=admin,
    )
    anything = AclBindingFilter(
        ResourceType.ANY,
        None,
        ResourcePatternType.ANY,
        run.principal,
        None,
        AclOperation.ANY,
        AclPermissionType.ANY,
    )
    if not asyncio.run(authorizer_on()):
        pytest.fail(
            f"the broker at {BOOTSTRAP} enforces no ACLs (started by an older kafka.sh?); "
            "restart it: 'bash deploy/local/kafka.sh down && bash deploy/local/kafka.sh up'"
        )
    info = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 4096)
    wait_all(
        admin.alter_user_scram_credentials(
            [UserScramCredentialUpsertion(run.user, info, run.password.encode())]
        )
    )
    run.create_topics()
    run.grant(run.acls)
    try:
        yield run
    finally:
        wait_all(admin.delete_acls([anything]))
        deletion = UserScramCredentialDeletion(run.user, ScramMechanism.SCRAM_SHA_512)
        wait_all(admin.alter_user_scram_credentials([deletion]))
        topics = [*resource_names(settings).values()]
        existing = set(admin.list_topics(timeout=30).topics)
        doomed = [name for name in topics if name in existing]
        if doomed:
            for future in admin.delete_topics(doomed, operation_timeout=30).values():
                future.exception(timeout=30)


def _event(cid: str, event_id: str, kind: str, data: dict, at: datetime) -> bytes:
    customer: dict[str, object] = {"id": cid, "email": f"{cid}@example.com"}
    return orjson.dumps(envelope(event_id, kind, customer, data, at))


def _process(env: dict[str, str], tmp_path: Path, command: str) -> Worker:
    own = dict(env)
    own["STREAM_WEB_PORT"] = str(free_port())
    own["STREAM_DATA_DIR"] = str(tmp_path / f"data-{command}")
    return Worker(own, tmp_path / f"{command}.log", command)


async def test_worker_pusher_and_commands_run_with_only_the_documented_acls(
    acl_run, sandbox, producer, tmp_path
):
    run = acl_run
    env = run.env()
    env.update(
        {
            "STREAM_KAFKA__SESSION_TIMEOUT": "10s",
            "STREAM_OMETRIA__BASE_URL": sandbox,
            "STREAM_OMETRIA__API_KEY": "it-secret-key-7f3a",
            "STREAM_OMETRIA__FLUSH_INTERVAL": "0.2s",
            "STREAM_OMETRIA__MAX_REQUESTS_PER_SECOND": "20",
            "STREAM_OMETRIA__PUSH_IN_WORKER": "false",
        }
    )
    worker = _process(env, tmp_path, "worker")
    pusher = _process(env, tmp_path, "push")
    try:
        worker.start()
        pusher.start()
        await worker.wait_ready()
        await pusher.wait_ready()

        cid, at = "880001", datetime.now(UTC) - timedelta(minutes=5)
        enrolled = _event(
            cid, f"{cid}-enrol", "customer.enrolled", {"loyalty_status": "member"}, at
        )
        earned = _event(
            cid, f"{cid}-earn", "points.earned", {"points": 42}, at + timedelta(seconds=1)
        )
        # The retailer's producer is not this user: it writes as the super user.
        for value in (enrolled, earned):
            await producer.send_and_wait(run.names.events, key=cid.encode(), value=value)
        letter = DeadLetter(
            stage="parse",
            error_class="InternalError",
            reason="internal error: fixed since",
            key=b"880002",
            value=_event("880002", "880002-enrol", "customer.enrolled", {}, at),
            failed_at=datetime.now(UTC),
            source_topic=run.names.events,
            source_partition=0,
            source_offset=0,
        )
        await producer.send_and_wait(
            run.names.dead_letter, key=letter.key, value=letter.value, headers=letter.headers()
        )

        def delivered(body) -> bool:
            return {c["id"] for c in body["contacts"]} >= {cid, "880002"}

        async def contacts():
            return await sandbox_get(sandbox, "/_sandbox/contacts")

        commands = [
            ("pause",),
            ("status",),
            ("resume",),
            ("redrive", "events"),
            ("redrive", "outbox"),
            ("forget", "--customer", "880003"),
        ]
        for command in commands:
            code, out = await run_cli(env, *command)
            assert code == 0, f"{' '.join(command)} as {run.user}: exit {code}\n{out[-3000:]}"
        body = await poll(contacts, delivered, timeout=60)
        assert delivered(body), body
        code, out = await run_cli(env, "backfill", "--force")
        assert code == 0, f"backfill as {run.user}: exit {code}\n{out[-3000:]}"

        assert await worker.stop_async() == 0, worker.text()[-3000:]
        code, out = await run_cli(env, "replay", "--from", "earliest", "--reset-state")
        assert code == 0, f"replay as {run.user}: exit {code}\n{out[-3000:]}"
        # The restarted worker's Faust makes the changelog the replay deleted, and rebuilds it.
        worker.start()
        await worker.wait_ready()
        for process in (worker, pusher):
            assert process.process.poll() is None, process.text()[-3000:]
            assert "AuthorizationFailed" not in process.text(), process.text()[-3000:]
    finally:
        await worker.stop_async()
        await pusher.stop_async()


# --- each ACL is needed ----------------------------------------------------------------------


async def _read(settings: Settings, acl: Acl) -> None:
    # A consumer assigned a topic it may not describe waits for its metadata for ever (and
    # logs); a fetch without Read is refused. Ask for the metadata first, as the fetch would.
    async with admin_client(settings) as admin:
        (topic,) = await admin.describe_topics([acl.name])
    if topic["error_code"]:
        raise for_code(topic["error_code"])(f"describe {acl.name}")
    consumer = AIOKafkaConsumer(**client_options(settings.kafka), enable_auto_commit=False)
    await consumer.start()
    try:
        partition = TopicPartition(acl.name, 0)
        consumer.assign([partition])
        await consumer.seek_to_beginning(partition)
        await consumer.getmany(partition, timeout_ms=1000)
    finally:
        await consumer.stop()


async def _write(settings: Settings, acl: Acl) -> None:
    producer = AIOKafkaProducer(**client_options(settings.kafka), acks="all")
    await producer.start()
    try:
        # A tombstone under a key no process uses: nothing reads this topic any more.
        await producer.send_and_wait(acl.name, key=b"acl-check", value=None, partition=0)
    finally:
        await producer.stop()


async def _describe_configs(settings: Settings, acl: Acl) -> None:
    async with admin_client(settings) as admin:
        await topic_retention(admin, acl.name)


async def _create(settings: Settings, acl: Acl) -> None:
    async with admin_client(settings) as admin:
        response = await admin.create_topics([NewTopic(acl.name, PARTITIONS, 1)])
    ((_, code, *_),) = response.topic_errors
    if code not in (0, TopicAlreadyExistsError.errno):
        raise for_code(code)(f"create {acl.name}")


async def _delete(settings: Settings, acl: Acl) -> None:
    async with admin_client(settings) as admin:
        response = await admin.delete_topics([acl.name])
    ((_, code, *_),) = response.topic_error_codes
    if code:
        raise for_code(code)(f"delete {acl.name}")


async def _read_group(settings: Settings, acl: Acl) -> None:
    async with admin_client(settings) as admin:
        await admin.list_consumer_group_offsets(acl.name)


PROBES: dict[tuple[str, str], Callable[[Settings, Acl], Awaitable[None]]] = {
    ("topic", "Read"): _read,
    ("topic", "Write"): _write,
    ("topic", "DescribeConfigs"): _describe_configs,
    ("topic", "Create"): _create,
    ("topic", "Delete"): _delete,
    ("group", "Read"): _read_group,
}


async def _outcome(probe, settings: Settings, acl: Acl) -> BaseException | None:
    try:
        await asyncio.wait_for(probe(settings, acl), 20)
    except AUTHORIZATION_ERRORS as exc:
        return exc
    return None


@pytest.mark.parametrize("documented", documented_acls(), ids=str)
async def test_removing_one_documented_acl_makes_what_needs_it_fail(acl_run, documented):
    run = acl_run
    (acl,) = renamed([documented], run.settings)
    probe = PROBES[(acl.kind, acl.operation)]
    settings = run.user_settings()
    run.revoke(acl)
    try:
        refused = await _outcome(probe, settings, acl)
        assert refused is not None, f"{documented} removed, yet its operation still works"
    finally:
        run.grant([acl])
    allowed = await _outcome(probe, settings, acl)
    assert allowed is None, f"{documented} restored, yet its operation fails: {allowed!r}"
    if acl.operation == "Delete":
        # The probe deleted the changelog: make it again, as the Topic Operator would.
        changelog, _ = faust_topics(run.settings)
        config = {"cleanup.policy": "compact"}
        new = AdminNewTopic(changelog, PARTITIONS, 1, config=config)
        deadline = time.monotonic() + 30
        while True:
            try:
                wait_all(run.admin.create_topics([new], operation_timeout=30))
                break
            except Exception:
                # Still being deleted.
                assert time.monotonic() < deadline, "the changelog was not made again"
                await asyncio.sleep(0.5)
