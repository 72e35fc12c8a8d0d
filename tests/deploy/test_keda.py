"""The KEDA component (deploy/k8s/components/keda): workers scaled on their group's lag.

Rendered through overlays/example-keda with `kubectl kustomize`, and validated against KEDA's
own CRDs (tests/deploy/crds/keda.sh_*.yaml, vendored with their version).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from crd_schemas import validate_custom_resource
from kustomize import find, render

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
COMPONENT = K8S / "components" / "keda"
OVERLAY = K8S / "overlays" / "example-keda"
EXAMPLE = K8S / "overlays" / "example"

Obj = dict[str, Any]

# What a move of partitions costs: the pod taking one it has no table files for replays that
# partition's changelog, and every worker's readiness drops for the rebalance. Scaling down
# within half an hour of the last high lag would undo a scale-up it just paid for.
MIN_SCALE_DOWN_WINDOW = 1800
# Kubernetes' limits for an HPA's behavior, which KEDA copies into the HPA it creates (the CRD
# does not check them; the API server refuses the HPA).
HPA_MAX_STABILIZATION = 3600
HPA_MAX_POLICY_PERIOD = 1800
# The worker's SASL mechanisms (STREAM_KAFKA__SASL_MECHANISM) as KEDA's Kafka scaler names them.
KEDA_SASL = {"PLAIN": "plaintext", "SCRAM-SHA-256": "scram_sha256", "SCRAM-SHA-512": "scram_sha512"}


RENDERED = render(OVERLAY)
SCALED_OBJECT = find(RENDERED, "ScaledObject")
STATEFULSET = find(RENDERED, "StatefulSet")
(TRIGGER,) = SCALED_OBJECT["spec"]["triggers"]


def worker_env(objects: list[Obj]) -> dict[str, str]:
    """What KEDA resolves `*FromEnv` against: the target container's envFrom, then env."""
    statefulset = find(objects, "StatefulSet")
    (container,) = [
        c
        for c in statefulset["spec"]["template"]["spec"]["containers"]
        if c["name"] == SCALED_OBJECT["spec"]["scaleTargetRef"]["envSourceContainerName"]
    ]
    env: dict[str, str] = {}
    for source in container["envFrom"]:
        env.update(find(objects, "ConfigMap", source["configMapRef"]["name"])["data"])
    env.update({e["name"]: e["value"] for e in container["env"] if "value" in e})
    return env


def test_keda_objects_are_valid_for_kedas_crds():
    kinds = set()
    for obj in RENDERED:
        if obj["apiVersion"].startswith("keda.sh/"):
            validate_custom_resource(obj)
            kinds.add(obj["kind"])
    assert kinds == {"ScaledObject", "TriggerAuthentication"}
    # The CRD's CEL rule, which jsonschema does not run.
    spec = SCALED_OBJECT["spec"]
    assert spec["minReplicaCount"] <= spec["maxReplicaCount"]


def test_keda_crd_check_refuses_a_misplaced_field():
    broken = copy.deepcopy(SCALED_OBJECT)
    broken["spec"]["cooldown"] = broken["spec"].pop("cooldownPeriod")
    with pytest.raises(jsonschema.ValidationError):
        validate_custom_resource(broken)


def test_scaled_object_targets_the_worker_statefulset():
    target = SCALED_OBJECT["spec"]["scaleTargetRef"]
    assert (target["apiVersion"], target["kind"]) == ("apps/v1", STATEFULSET["kind"])
    assert target["name"] == STATEFULSET["metadata"]["name"]
    assert SCALED_OBJECT["metadata"]["namespace"] == STATEFULSET["metadata"]["namespace"]
    containers = [c["name"] for c in STATEFULSET["spec"]["template"]["spec"]["containers"]]
    assert target["envSourceContainerName"] in containers


def test_scaled_object_reads_the_worker_groups_lag_on_the_events_topic():
    assert TRIGGER["type"] == "kafka"
    metadata = TRIGGER["metadata"]
    env = worker_env(RENDERED)
    # The worker's consumer group is its Faust app id; the names are read from the worker's
    # own settings, so a copy of the overlay cannot scale on another group or topic.
    assert metadata["consumerGroupFromEnv"] == "STREAM_APP_ID"
    assert metadata["topicFromEnv"] == "STREAM_TOPICS__EVENTS"
    assert metadata["bootstrapServersFromEnv"] == "STREAM_KAFKA__BOOTSTRAP_SERVERS"
    for variable in ("STREAM_APP_ID", "STREAM_TOPICS__EVENTS", "STREAM_KAFKA__BOOTSTRAP_SERVERS"):
        assert env[variable], variable
    # A group without a committed offset starts from the oldest event, as the worker does.
    assert metadata["offsetResetPolicy"] == "earliest"
    assert int(metadata["lagThreshold"]) > 0


def test_scaled_object_never_asks_for_more_workers_than_partitions():
    metadata = TRIGGER["metadata"]
    # KEDA caps its answer at the partitions' count unless idle consumers are allowed.
    assert metadata.get("allowIdleConsumers", "false") == "false"
    # The example's events topic has the example's four partitions (statefulset-replicas.yaml).
    with (EXAMPLE / "statefulset-replicas.yaml").open(encoding="utf-8") as stream:
        example_partitions = yaml.safe_load(stream)["spec"]["replicas"]
    assert SCALED_OBJECT["spec"]["maxReplicaCount"] <= example_partitions


def test_scaled_object_never_scales_the_workers_to_zero():
    # The workers serve /profiles and (in the base) push the outbox: zero would stop both.
    assert SCALED_OBJECT["spec"]["minReplicaCount"] >= 1
    assert "idleReplicaCount" not in SCALED_OBJECT["spec"]


def test_scaled_object_scale_down_waits_out_a_table_recovery():
    behavior = SCALED_OBJECT["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
    down, up = behavior["scaleDown"], behavior["scaleUp"]
    assert MIN_SCALE_DOWN_WINDOW <= down["stabilizationWindowSeconds"] <= HPA_MAX_STABILIZATION
    # One worker at a time, so each step moves the fewest partitions.
    one_per_window = {"type": "Pods", "value": 1, "periodSeconds": MIN_SCALE_DOWN_WINDOW}
    assert down["policies"] == [one_per_window]
    assert 0 < up["stabilizationWindowSeconds"] <= HPA_MAX_STABILIZATION
    for policy in down["policies"] + up["policies"]:
        assert 0 < policy["periodSeconds"] <= HPA_MAX_POLICY_PERIOD
    # Only scaling to zero uses cooldownPeriod; it is set alike so no reader takes it as short.
    assert SCALED_OBJECT["spec"]["cooldownPeriod"] >= MIN_SCALE_DOWN_WINDOW


def test_keda_overlay_leaves_the_replica_count_to_the_autoscaler():
    # A count in the manifest would be put back by every `kubectl apply`, moving partitions
    # twice (to it, and back to what the autoscaler wants).
    assert "replicas" not in STATEFULSET["spec"]
    assert "replicas" in find(render(EXAMPLE), "StatefulSet")["spec"]


def test_keda_trigger_authenticates_as_the_worker_does():
    env = worker_env(RENDERED)
    metadata = TRIGGER["metadata"]
    assert env["STREAM_KAFKA__SECURITY_PROTOCOL"] == "SASL_SSL"
    assert metadata["tls"] == "enable"
    assert metadata["sasl"] == KEDA_SASL[env["STREAM_KAFKA__SASL_MECHANISM"]]
    auth = find(RENDERED, "TriggerAuthentication", TRIGGER["authenticationRef"]["name"])
    assert auth["metadata"]["namespace"] == SCALED_OBJECT["metadata"]["namespace"]
    (username,) = auth["spec"]["env"]
    assert username["parameter"] == "username"
    assert username["name"] == "STREAM_KAFKA__SASL_USERNAME"
    assert env[username["name"]]
    (password,) = auth["spec"]["secretTargetRef"]
    assert password["parameter"] == "password"
    # The Secret and key the worker reads its password file from.
    containers = STATEFULSET["spec"]["template"]["spec"]["containers"]
    (worker,) = [c for c in containers if c["name"] == "worker"]
    password_file = env["STREAM_KAFKA__SASL_PASSWORD_FILE"]
    directory, _, key = password_file.rpartition("/")
    (mount,) = [m for m in worker["volumeMounts"] if m["mountPath"] == directory]
    volumes = STATEFULSET["spec"]["template"]["spec"]["volumes"]
    (volume,) = [v for v in volumes if v["name"] == mount["name"]]
    assert (password["name"], password["key"]) == (volume["secret"]["secretName"], key)
