"""The Strimzi component (deploy/k8s/components/strimzi): topics, the Kafka user and its Secret.

Rendered through overlays/example-strimzi (and its Jobs) with `kubectl kustomize`, validated
against Strimzi's own CRDs (tests/deploy/crds/strimzi-*.yaml, with their version and how they
were made). The topics are checked against what the worker would create itself
(stream.runtime.topology.topic_specs) and Faust's own topics; the ACLs against the table in
deploy/k8s/README.md. Whether those ACLs are enough and all needed is for a broker to say (the
issue's ACL test), not for this file.
"""

from __future__ import annotations

import copy
import os
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from crd_schemas import validate_custom_resource
from kustomize import find, render

from stream.runtime.tables import customer_to_profile
from stream.runtime.topology import topic_specs
from stream.settings import ENV_PREFIX, Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
OVERLAY = K8S / "overlays" / "example-strimzi"
JOBS = K8S / "overlays" / "example-strimzi-jobs"
KEDA = K8S / "components" / "keda" / "scaledobject.yaml"
README = K8S / "README.md"
STRIMZI_API = "kafka.strimzi.io/v1"
# The one broker setting the topics add to what the worker would create: with acks=all
# producers, a write is acknowledged once two replicas hold it.
ADDED_CONFIG = {"min.insync.replicas": "2"}

Obj = dict[str, Any]


def topic_name(topic: Obj) -> str:
    """The Kafka topic a KafkaTopic makes: spec.topicName, else its own name."""
    return str(topic["spec"].get("topicName", topic["metadata"]["name"]))


RENDERED = render(OVERLAY)
JOBS_RENDERED = render(JOBS)
TOPICS = [o for o in RENDERED if o["kind"] == "KafkaTopic"]
(USER,) = [o for o in RENDERED if o["kind"] == "KafkaUser"]
STATEFULSET = find(RENDERED, "StatefulSet")


def pod_containers(objects: list[Obj]) -> list[tuple[Obj, Obj, Obj]]:
    return [
        (obj, obj["spec"]["template"]["spec"], container)
        for obj in objects
        if obj["kind"] in {"StatefulSet", "Deployment", "Job"}
        for container in obj["spec"]["template"]["spec"]["containers"]
    ]


def environment(objects: list[Obj], container: Obj) -> dict[str, str]:
    env: dict[str, str] = {}
    for source in container["envFrom"]:
        env.update(find(objects, "ConfigMap", source["configMapRef"]["name"])["data"])
    env.update({e["name"]: e["value"] for e in container["env"] if "value" in e})
    return env


((_, _, WORKER),) = pod_containers([STATEFULSET])
WORKER_ENV = environment(RENDERED, WORKER)


EVENTS_PARTITIONS = next(
    t["spec"]["partitions"] for t in TOPICS if topic_name(t) == WORKER_ENV["STREAM_TOPICS__EVENTS"]
)


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """The settings the rendered worker loads, its mounted files stood in for."""
    directory = tmp_path_factory.mktemp("mounted")
    with pytest.MonkeyPatch.context() as patch:
        for name in [name for name in os.environ if name.startswith(ENV_PREFIX)]:
            patch.delenv(name)
        for name, value in WORKER_ENV.items():
            if name.endswith(("_FILE", "_CAFILE")):
                stand_in = directory / Path(value).name
                stand_in.write_text("placeholder\n", encoding="utf-8")
                value = str(stand_in)
            patch.setenv(name, value)
        return load_settings()


def expected_topics(settings: Settings) -> dict[str, tuple[int, dict[str, str]]]:
    """Topic name → (partitions, configs): the worker's own topics and Faust's."""
    single = {settings.topics.control, settings.topics.redriven, settings.topics.erasures}
    expected = {
        spec.name: (1 if spec.name in single else EVENTS_PARTITIONS, spec.configs)
        for spec in topic_specs(settings, EVENTS_PARTITIONS)
    }
    # The table's changelog, named by Faust after the app id (the tests' app id is the
    # deployment's): compacted, partitioned like the events.
    changelog = customer_to_profile.changelog_topic.get_topic_name()
    assert changelog.startswith(f"{settings.app_id}-")
    expected[changelog] = (EVENTS_PARTITIONS, {"cleanup.policy": "compact"})
    # Faust's leader-election topic (faust/assignor/leader_assignor.py names it so): one
    # partition, no configuration of Faust's own.
    expected[f"{settings.app_id}-__assignor-__leader"] = (1, {})
    return expected


def test_strimzi_objects_are_valid_for_strimzis_crds():
    kinds = set()
    for obj in RENDERED:
        if obj["apiVersion"].startswith("kafka.strimzi.io/"):
            assert obj["apiVersion"] == STRIMZI_API
            validate_custom_resource(obj)
            kinds.add(obj["kind"])
    assert kinds == {"KafkaTopic", "KafkaUser"}
    # The CRD's CEL rules on authentication concern TLS users only.
    assert USER["spec"]["authentication"] == {"type": "scram-sha-512"}


def test_strimzi_crd_check_refuses_a_misplaced_field():
    broken = copy.deepcopy(USER)
    broken["spec"]["authorization"]["acls"][0]["operation"] = "Read"
    with pytest.raises(jsonschema.ValidationError):
        validate_custom_resource(broken)


def test_kafka_topics_are_every_topic_the_deployment_uses_as_the_worker_makes_them(settings):
    found = {}
    for topic in TOPICS:
        spec = topic["spec"]
        config = {k: str(v) for k, v in spec.get("config", {}).items()}
        assert config.items() >= ADDED_CONFIG.items(), topic_name(topic)
        own = {k: v for k, v in config.items() if k not in ADDED_CONFIG}
        found[topic_name(topic)] = (spec["partitions"], own)
        assert spec["replicas"] == settings.topics.replication_factor
    assert found == expected_topics(settings)


def test_kafka_topics_names_are_valid_kubernetes_names():
    for topic in TOPICS:
        name = topic["metadata"]["name"]
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?", name), name
        assert len(name) <= 253


def test_strimzi_objects_belong_to_one_cluster_in_the_deployments_namespace():
    clusters = {o["metadata"]["labels"]["strimzi.io/cluster"] for o in [*TOPICS, USER]}
    (cluster,) = clusters
    # The cluster's internal bootstrap Service, which Strimzi names after the cluster.
    assert WORKER_ENV["STREAM_KAFKA__BOOTSTRAP_SERVERS"].startswith(f"{cluster}-kafka-bootstrap")
    namespaces = {o["metadata"]["namespace"] for o in [*TOPICS, USER, STATEFULSET]}
    assert len(namespaces) == 1


def test_keda_never_asks_for_more_workers_than_the_events_topic_has_partitions():
    with KEDA.open(encoding="utf-8") as stream:
        scaled = yaml.safe_load(stream)
    assert scaled["spec"]["maxReplicaCount"] <= EVENTS_PARTITIONS


# --- the user --------------------------------------------------------------------------------

ACL_ROW = re.compile(r"^\| (topic|group|cluster|transactionalId) \| `([^`]+)` \| ([^|]+) \|")


def acls() -> set[tuple[str, str, frozenset[str]]]:
    rules = set()
    for acl in USER["spec"]["authorization"]["acls"]:
        resource = acl["resource"]
        assert acl.get("type", "allow") == "allow"
        assert resource.get("patternType", "literal") == "literal"
        assert acl.get("host", "*") == "*"
        rules.add((resource["type"], resource["name"], frozenset(acl["operations"])))
    return rules


def documented_acls() -> set[tuple[str, str, frozenset[str]]]:
    text = README.read_text(encoding="utf-8")
    rows = set()
    for line in text.splitlines():
        if match := ACL_ROW.match(line):
            operations = frozenset(op.strip() for op in match[3].split(","))
            rows.add((match[1], match[2], operations))
    return rows


def test_kafka_user_acls_are_the_readmes_table():
    assert documented_acls() == acls()


def test_kafka_user_reaches_only_the_deployments_topics_and_groups(settings):
    topics = set(expected_topics(settings))
    groups = {settings.app_id, settings.pusher_group}
    resources = {(kind, name) for kind, name, _ in acls()}
    assert resources == {("topic", name) for name in topics} | {("group", g) for g in groups}
    for _, _, operations in acls():
        assert not operations & {"All", "Alter", "AlterConfigs", "ClusterAction"}
    # Delete only on the table's changelog (`replay --reset-state` deletes it); Create on it
    # (the worker's Faust creates it again) and on Faust's leader topic (which Faust asks to
    # create at every start, refused without Create even when it exists).
    changelog = customer_to_profile.changelog_topic.get_topic_name()
    leader = f"{settings.app_id}-__assignor-__leader"
    for kind, name, operations in acls():
        if "Delete" in operations:
            assert (kind, name) == ("topic", changelog)
        if "Create" in operations:
            assert (kind, name) in {("topic", changelog), ("topic", leader)}


def test_workloads_log_in_as_the_kafka_user_with_strimzis_secret():
    workloads = pod_containers(RENDERED) + [
        item for item in pod_containers(JOBS_RENDERED) if item[0]["kind"] == "Job"
    ]
    kinds = {obj["kind"] for obj, _, _ in workloads}
    assert kinds == {"StatefulSet", "Job"}
    for obj, pod, container in workloads:
        env = environment(JOBS_RENDERED if obj["kind"] == "Job" else RENDERED, container)
        assert env["STREAM_KAFKA__SECURITY_PROTOCOL"].startswith("SASL_")
        assert env["STREAM_KAFKA__SASL_MECHANISM"] == "SCRAM-SHA-512"
        assert env["STREAM_KAFKA__SASL_USERNAME"] == USER["metadata"]["name"]
        # The Secret the User Operator writes: named after the user, the password under
        # `password`, mounted (not copied), so that a new password reaches the file.
        directory, _, key = env["STREAM_KAFKA__SASL_PASSWORD_FILE"].rpartition("/")
        (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == directory]
        assert mount["readOnly"] is True
        (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
        assert volume["secret"]["secretName"] == USER["metadata"]["name"]
        assert key == "password"
        assert {item["key"] for item in volume["secret"].get("items", [{"key": key}])} == {key}


def test_jobs_of_the_strimzi_overlay_read_its_configmap():
    refs = {
        source["configMapRef"]["name"]
        for obj, _, container in pod_containers(JOBS_RENDERED)
        for source in container["envFrom"]
        if obj["kind"] == "Job"
    }
    assert refs == {source["configMapRef"]["name"] for source in WORKER["envFrom"]}
