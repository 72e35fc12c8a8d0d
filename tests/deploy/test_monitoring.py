"""The monitoring component (deploy/k8s/components/monitoring): alert rules, PodMonitor, dashboard.

Every alert expression and dashboard query is parsed with a real PromQL parser (promql-parser,
the Rust `promql-parser` crate's bindings), and every metric name they select must be one the
worker and the pusher expose: the names are read from the metrics registry they serve at
/metrics after importing the modules that serve it, so renaming a metric fails here. The
PrometheusRule and PodMonitor are checked against structural schemas written after the
Prometheus Operator's CRDs (monitoring.coreos.com/v1), since kubernetes-validate has no schemas
for custom resources and no package on PyPI ships the operator's CRDs.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import promql_parser
import pytest
import yaml
from kustomize import render
from prometheus_client import generate_latest
from prometheus_client.metrics_core import Metric

# The modules that serve /metrics (the worker's Faust web views and `python -m stream push`),
# imported so that every metric registered on the way to serving them is in the registry.
import stream.ops.probes
import stream.ops.web
import stream.runtime.push_service
from stream.metrics import REGISTRY
from stream.settings import ENV_PREFIX

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
COMPONENT = K8S / "components" / "monitoring"
# The pushers' dead-man alert, for deployments that run them apart (a component of its own:
# where the workers push, no pusher pod ever exists and it would always fire).
PUSHER_COMPONENT = COMPONENT / "separate-pusher"
OVERLAY = K8S / "overlays" / "example-monitoring"
PUSHER_OVERLAY = K8S / "overlays" / "example-separate-pusher-monitoring"
# Where every alert's runbook_url points: one entry per alert, named after it.
RUNBOOK = ROOT / "docs" / "runbook.md"
PROMTOOL_TESTS = Path(__file__).parent / "promtool" / "alerts_test.yaml"
RULES_FILE = COMPONENT / "prometheusrule.yaml"
PUSHER_RULES_FILE = PUSHER_COMPONENT / "prometheusrule.yaml"
DASHBOARD_FILE = COMPONENT / "dashboard.json"
# What a Grafana dashboard query may contain besides PromQL: its variables, and the
# interval Grafana fills in for rate() (stood in for by a fixed range to parse).
GRAFANA_INTERVALS = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h"}
DASHBOARD_VARIABLES = {"namespace", "app_id"}
# Series Prometheus makes itself for every scrape target, not the worker: `up` is 0 when a pod
# cannot be scraped.
SCRAPE_SERIES = {"up"}

Obj = dict[str, Any]


# --- what the worker exposes --------------------------------------------------------------


def exposed_names(family: Metric) -> set[str]:
    """The series names a registered metric family appears under in the exposition format."""
    name = family.name
    if family.type == "counter":
        return {f"{name}_total", f"{name}_created"}
    if family.type == "histogram":
        return {f"{name}_bucket", f"{name}_count", f"{name}_sum", f"{name}_created"}
    if family.type == "summary":
        return {name, f"{name}_count", f"{name}_sum", f"{name}_created"}
    if family.type == "info":
        return {f"{name}_info"}
    return {name}


EXPOSED = set().union(*(exposed_names(family) for family in REGISTRY.collect()))


def test_exposed_names_follow_the_exposition_format():
    # The real exposition of the real registry: every sample it prints is a name computed above
    # (labelled metrics without children print no samples, hence the computation).
    text = generate_latest(REGISTRY).decode()
    printed = {line.split("{")[0].split()[0] for line in text.splitlines() if line[:1] != "#"}
    assert printed, "the registry printed no sample"
    assert printed <= EXPOSED
    assert "loyalty_events_total" in EXPOSED
    assert "loyalty_events" not in EXPOSED
    assert "ometria_push_latency_seconds_bucket" in EXPOSED
    assert stream.ops.probes.REGISTRY is REGISTRY


# --- PromQL -------------------------------------------------------------------------------

# The labels a vector expression's series may carry: a set, or None when it keeps whatever
# labels its selected series have.
Labels = set[str] | None


def selectors(expr: Any) -> list[promql_parser.VectorSelector]:
    """Every vector selector in a parsed expression; an unknown node type fails."""
    if isinstance(expr, promql_parser.VectorSelector):
        return [expr]
    if isinstance(expr, promql_parser.MatrixSelector):
        return [expr.vector_selector]
    if isinstance(expr, promql_parser.Call):
        return [found for arg in expr.args for found in selectors(arg)]
    if isinstance(expr, promql_parser.AggregateExpr):
        return selectors(expr.expr) + (selectors(expr.param) if expr.param else [])
    if isinstance(expr, promql_parser.BinaryExpr):
        return selectors(expr.lhs) + selectors(expr.rhs)
    if isinstance(expr, promql_parser.ParenExpr | promql_parser.UnaryExpr):
        return selectors(expr.expr)
    if isinstance(expr, promql_parser.SubqueryExpr):
        return selectors(expr.expr)
    if isinstance(expr, promql_parser.NumberLiteral | promql_parser.StringLiteral):
        return []
    raise AssertionError(f"no walk for {type(expr).__name__}: {expr}")


def metric_name(selector: promql_parser.VectorSelector) -> str:
    if selector.name:
        return str(selector.name)
    names = [m.value for m in selector.matchers.matchers if m.name == "__name__"]
    assert len(names) == 1, f"a selector without one metric name: {selector}"
    return str(names[0])


def matchers(selector: promql_parser.VectorSelector) -> dict[str, str]:
    return {str(m.name): str(m.value) for m in selector.matchers.matchers}


def output_labels(expr: Any) -> Labels:
    """The labels an expression's result keeps (None: all of its series' labels)."""
    if isinstance(expr, promql_parser.VectorSelector | promql_parser.MatrixSelector):
        return None
    if isinstance(expr, promql_parser.NumberLiteral | promql_parser.StringLiteral):
        return set()
    if isinstance(expr, promql_parser.ParenExpr | promql_parser.SubqueryExpr):
        return output_labels(expr.expr)
    if isinstance(expr, promql_parser.UnaryExpr):
        return output_labels(expr.expr)
    if isinstance(expr, promql_parser.AggregateExpr):
        inner = output_labels(expr.expr)
        modifier = expr.modifier
        if modifier is None:
            return set()
        if modifier.type == promql_parser.AggModifierType.By:
            return set(modifier.labels)
        return None if inner is None else inner - set(modifier.labels)
    if isinstance(expr, promql_parser.Call):
        name = expr.func.name
        if name == "vector":
            return set()
        if name == "histogram_quantile":
            inner = output_labels(expr.args[1])
            return None if inner is None else inner - {"le"}
        if name == "absent":
            # One series, labelled by the argument's equality matchers when it is a selector.
            (arg,) = expr.args
            if isinstance(arg, promql_parser.VectorSelector):
                return {str(m.name) for m in arg.matchers.matchers if str(m.op) == "="}
            return set()
        vectors = [arg for arg in expr.args if not isinstance(arg, promql_parser.NumberLiteral)]
        return output_labels(vectors[0])
    if isinstance(expr, promql_parser.BinaryExpr):
        lhs, rhs = output_labels(expr.lhs), output_labels(expr.rhs)
        if isinstance(expr.rhs, promql_parser.NumberLiteral):
            return lhs
        if isinstance(expr.lhs, promql_parser.NumberLiteral):
            return rhs
        if str(expr.op) == "or" and is_absent_fallback(expr):
            # `A or on() absent(...)`: the absent() series only when A has none at all, so
            # the alert carries A's labels whenever there is a deployment to name.
            return lhs
        if str(expr.op) == "or":
            # A series of either side: only labels both sides keep are sure to be there.
            if lhs is None or rhs is None:
                return rhs if lhs is None else lhs
            return lhs & rhs
        return lhs
    raise AssertionError(f"no labels for {type(expr).__name__}: {expr}")


def is_absent_fallback(expr: Any) -> bool:
    """Whether a binary expression is `... or on() absent(...)`."""
    matching = expr.modifier.matching if expr.modifier else None
    return (
        matching is not None
        and "on" in str(matching)
        and not list(matching.labels)
        and isinstance(expr.rhs, promql_parser.Call)
        and expr.rhs.func.name == "absent"
    )


def parse(query: str) -> Any:
    for variable, stand_in in GRAFANA_INTERVALS.items():
        query = query.replace(variable, stand_in)
    return promql_parser.parse(query)


# --- the rules ----------------------------------------------------------------------------

# The CRD's pattern for a Prometheus duration (5m, 1h30m, 0).
DURATION = r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?" + (
    r"(([0-9]+)ms)?)$"
)
STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
INT_OR_STRING = {"anyOf": [{"type": "integer"}, {"type": "string"}]}
# The PrometheusRule CRD's openAPIV3Schema (prometheus-operator, monitoring.coreos.com/v1),
# written out for the fields it defines; additionalProperties false where the API server
# would refuse (or, without strict validation, silently drop) an unknown field.
PROMETHEUS_RULE_SCHEMA = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "PrometheusRule"},
        "metadata": {"type": "object", "required": ["name"]},
        "spec": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "groups": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["name"],
                        "additionalProperties": False,
                        "properties": {
                            "name": {"type": "string", "minLength": 1},
                            "interval": {"type": "string", "pattern": DURATION},
                            "query_offset": {"type": "string", "pattern": DURATION},
                            "labels": STRING_MAP,
                            "limit": {"type": "integer"},
                            "partial_response_strategy": {
                                "type": "string",
                                # The CRD's RE2 `^(?i)(abort|warn)?$`, as Python writes it.
                                "pattern": "^(?i:abort|warn)?$",
                            },
                            "rules": {
                                "type": "array",
                                "items": {
                                    "type": "object",
                                    "required": ["expr"],
                                    "additionalProperties": False,
                                    "properties": {
                                        "alert": {"type": "string"},
                                        "record": {"type": "string"},
                                        "expr": INT_OR_STRING,
                                        "for": {"type": "string", "pattern": DURATION},
                                        "keep_firing_for": {
                                            "type": "string",
                                            "minLength": 1,
                                            "pattern": DURATION,
                                        },
                                        "labels": STRING_MAP,
                                        "annotations": STRING_MAP,
                                    },
                                },
                            },
                        },
                    },
                }
            },
        },
    },
}
LABEL_SELECTOR = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "matchLabels": STRING_MAP,
        "matchExpressions": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["key", "operator"],
                "additionalProperties": False,
                "properties": {
                    "key": {"type": "string"},
                    "operator": {"enum": ["In", "NotIn", "Exists", "DoesNotExist"]},
                    "values": {"type": "array", "items": {"type": "string"}},
                },
            },
        },
    },
}
# The PodMonitor CRD's schema for the fields this component uses (the CRD has many more; a field
# not listed here fails, so add it here when the PodMonitor starts using it).
POD_MONITOR_SCHEMA = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "PodMonitor"},
        "metadata": {"type": "object", "required": ["name"]},
        "spec": {
            "type": "object",
            "required": ["selector"],
            "additionalProperties": False,
            "properties": {
                "selector": LABEL_SELECTOR,
                "podMetricsEndpoints": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {
                            "port": {"type": "string"},
                            "path": {"type": "string"},
                            "interval": {"type": "string", "pattern": DURATION},
                            "relabelings": {
                                "type": "array",
                                "items": {
                                    "type": "object",
                                    "additionalProperties": False,
                                    "properties": {
                                        "sourceLabels": {
                                            "type": "array",
                                            "items": {
                                                "type": "string",
                                                "pattern": "^[a-zA-Z_][a-zA-Z0-9_]*$",
                                            },
                                        },
                                        "targetLabel": {"type": "string"},
                                        "regex": {"type": "string"},
                                        "replacement": {"type": "string"},
                                        "separator": {"type": "string"},
                                        "action": {"type": "string"},
                                    },
                                },
                            },
                        },
                    },
                },
            },
        },
    },
}


def load_yaml(path: Path) -> Obj:
    with path.open(encoding="utf-8") as stream:
        doc: Obj = yaml.safe_load(stream)
    return doc


RULE_OBJECT = load_yaml(RULES_FILE)
PUSHER_RULE_OBJECT = load_yaml(PUSHER_RULES_FILE)
RULE_OBJECTS = [RULE_OBJECT, PUSHER_RULE_OBJECT]
ALERTS = [rule for obj in RULE_OBJECTS for g in obj["spec"]["groups"] for rule in g["rules"]]
DASHBOARD = json.loads(DASHBOARD_FILE.read_text(encoding="utf-8"))
RENDERED = render(OVERLAY)
PUSHER_RENDERED = render(PUSHER_OVERLAY)


def find(kind: str, name: str, objects: list[Obj] | None = None) -> Obj:
    objects = RENDERED if objects is None else objects
    (obj,) = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    return obj


def alert_id(rule: Obj) -> str:
    return str(rule.get("alert") or rule.get("record"))


@pytest.mark.parametrize("rule_object", RULE_OBJECTS, ids=["workers", "pushers-apart"])
def test_prometheus_rule_is_valid_for_its_schema(rule_object):
    jsonschema.validate(rule_object, PROMETHEUS_RULE_SCHEMA)
    names = [group["name"] for obj in RULE_OBJECTS for group in obj["spec"]["groups"]]
    assert len(names) == len(set(names)), "group names are the list's map key"
    for rule in ALERTS:
        assert ("alert" in rule) != ("record" in rule), f"{alert_id(rule)}: alert or record"


def promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    found = shutil.which("promtool")
    if found is None:
        pytest.skip("promtool (Debian package `prometheus`) is not installed")
    return subprocess.run(
        [found, *args], cwd=cwd, capture_output=True, text=True, check=False, timeout=120
    )


def test_rules_load_in_prometheus_and_fire_as_the_runbook_says(tmp_path):
    # Prometheus's own loader (expressions, `for`, annotation templates), then its rule unit
    # tests: series in, alerts with their rendered annotations out, at the right time.
    # Both rule objects in one file: the tests cover the pushers' alert as well.
    groups = [group for obj in RULE_OBJECTS for group in obj["spec"]["groups"]]
    with (tmp_path / "rules.yaml").open("w", encoding="utf-8") as out:
        yaml.safe_dump({"groups": groups}, out, sort_keys=False)
    shutil.copy(PROMTOOL_TESTS, tmp_path / PROMTOOL_TESTS.name)
    checked = promtool("check", "rules", "rules.yaml", cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(ALERTS)} rules found" in checked.stdout
    tested = promtool("test", "rules", PROMTOOL_TESTS.name, cwd=tmp_path)
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_pod_monitor_is_valid_for_its_schema():
    jsonschema.validate(load_yaml(COMPONENT / "podmonitor.yaml"), POD_MONITOR_SCHEMA)


def test_schema_check_refuses_a_misplaced_field():
    # The check can fail: `for` on the group instead of the rule is what a typo looks like.
    broken = json.loads(json.dumps(RULE_OBJECT))
    broken["spec"]["groups"][0]["for"] = "5m"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, PROMETHEUS_RULE_SCHEMA)


def test_alerts_cover_what_issue_14_asks_for():
    metrics_by_alert = {
        rule["alert"]: {metric_name(s) for s in selectors(parse(rule["expr"]))} for rule in ALERTS
    }
    wanted = {
        "loyalty_consumer_lag",  # lag above a threshold, lag growing
        "loyalty_dead_letters_total",  # dead letters, and a burst
        "ometria_unauthorized",
        "ometria_paused",
        "ometria_push_throttled_total",  # 429s sustained
        "ometria_push_latency_seconds_bucket",  # p99 event time → accepted
        "ometria_outbox_lag",  # backlog growing
        "loyalty_events_total",  # nothing folded while lag is positive
        "loyalty_ready",  # not ready
    }
    assert wanted <= set().union(*metrics_by_alert.values())
    assert len(metrics_by_alert) == len(ALERTS), "alert names are unique"


@pytest.mark.parametrize("rule", ALERTS, ids=alert_id)
def test_alert_selects_only_metrics_the_worker_exposes(rule):
    used = {metric_name(selector) for selector in selectors(parse(rule["expr"]))}
    assert used, "an alert on no metric"
    unknown = used - EXPOSED - SCRAPE_SERIES
    assert not unknown, f"{rule['alert']} uses {sorted(unknown)}, which the worker does not expose"


@pytest.mark.parametrize("rule", ALERTS, ids=alert_id)
def test_alert_annotations_name_labels_its_result_keeps(rule):
    kept = output_labels(parse(rule["expr"]))
    annotations = rule["annotations"]
    assert {"summary", "description", "runbook_url"} <= annotations.keys()
    named = set(re.findall(r"\$labels\.(\w+)", " ".join(annotations.values())))
    assert {"namespace", "app_id"} <= named
    if kept is not None:
        assert named <= kept, f"{rule['alert']} names {sorted(named - kept)}, dropped by the expr"
        # Every alert fires per deployment, wherever it runs.
        assert {"namespace", "app_id"} <= kept
    assert rule["labels"]["severity"] in {"warning", "critical"}


DEAD_MAN_COMPONENTS = {"worker": RULE_OBJECT, "pusher": PUSHER_RULE_OBJECT}


@pytest.mark.parametrize("component", DEAD_MAN_COMPONENTS)
def test_dead_man_alert_fires_when_no_pod_of_the_component_is_up(component):
    # The lag and readiness alerts need series from a running pod: with every pod gone, only
    # an alert on what is missing (absent()) can fire.
    groups = DEAD_MAN_COMPONENTS[component]["spec"]["groups"]
    rules = [rule for group in groups for rule in group["rules"]]
    (rule,) = [r for r in rules if "absent(" in r["expr"]]
    expr = parse(rule["expr"])
    assert str(expr.op) == "or"
    assert is_absent_fallback(expr)
    (absent_of,) = selectors(expr.rhs)
    assert (metric_name(absent_of), matchers(absent_of)["component"]) == ("up", component)
    # Per deployment first: one that had such pods in the last day and has none up now.
    assert {metric_name(s) for s in selectors(expr.lhs)} == {"up"}
    assert {matchers(s)["component"] for s in selectors(expr.lhs)} == {component}
    assert rule["labels"]["severity"] == "critical"
    # absent()'s series names no deployment: every annotation naming one checks it is there.
    for text in rule["annotations"].values():
        if "$labels." in text:
            assert text.lstrip().startswith("{{ if $labels.app_id }}"), rule["alert"]


def test_pusher_dead_man_alert_only_where_pushers_run_apart():
    rule_names = {o["metadata"]["name"] for o in RENDERED if o["kind"] == "PrometheusRule"}
    assert rule_names == {RULE_OBJECT["metadata"]["name"]}
    pusher_rule = find("PrometheusRule", PUSHER_RULE_OBJECT["metadata"]["name"], PUSHER_RENDERED)
    assert pusher_rule["spec"] == PUSHER_RULE_OBJECT["spec"]
    assert find("PrometheusRule", "loyalty-stream", PUSHER_RENDERED)["spec"] == RULE_OBJECT["spec"]
    assert find("Deployment", "loyalty-stream-pusher", PUSHER_RENDERED)
    namespace = load_yaml(PUSHER_OVERLAY / "kustomization.yaml")["namespace"]
    assert pusher_rule["metadata"]["namespace"] == namespace
    # The pushers carry the app_id label the alert groups by, as the workers do.
    for kind, name in (("Deployment", "loyalty-stream-pusher"), ("StatefulSet", "loyalty-stream")):
        labels = find(kind, name, PUSHER_RENDERED)["spec"]["template"]["metadata"]["labels"]
        assert labels["app.kubernetes.io/instance"] == "loyalty-stream"


def test_alerts_where_the_metric_has_partition_name_it():
    for rule in ALERTS:
        used = {metric_name(s) for s in selectors(parse(rule["expr"]))}
        text = " ".join(rule["annotations"].values())
        if used & {"loyalty_consumer_lag", "ometria_outbox_lag"} and "sum by" not in rule["expr"]:
            assert "$labels.partition" in text, rule["alert"]
        if "loyalty_consumer_lag" in used and "sum by" not in rule["expr"]:
            assert "$labels.topic" in text, rule["alert"]


def github_anchor(heading: str) -> str:
    """The anchor GitHub (and most Markdown renderers) give a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def markdown_headings(text: str) -> list[str]:
    """The headings of a Markdown text, not counting `#` lines inside fenced code."""
    headings, fenced = [], False
    for line in text.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and re.match(r"#{1,6} ", line):
            headings.append(line.lstrip("#").strip())
    return headings


RUNBOOK_ANCHORS = {github_anchor(h) for h in markdown_headings(RUNBOOK.read_text(encoding="utf-8"))}


@pytest.mark.parametrize("rule", ALERTS, ids=alert_id)
def test_alert_runbook_url_is_its_runbook_entry(rule):
    url = rule["annotations"]["runbook_url"]
    page, _, anchor = url.partition("#")
    assert page == "docs/runbook.md"
    assert anchor == github_anchor(rule["alert"]), "one entry per alert, named after it"
    assert anchor in RUNBOOK_ANCHORS, f"docs/runbook.md has no heading for #{anchor}"


def test_scrape_series_alerts_name_the_pod_monitors_job():
    # Prometheus names a PodMonitor's job `<namespace>/<name>`.
    monitor = find("PodMonitor", "loyalty-stream")
    job = f"{monitor['metadata']['namespace']}/{monitor['metadata']['name']}"
    for rule in ALERTS:
        for selector in selectors(parse(rule["expr"])):
            if metric_name(selector) in SCRAPE_SERIES:
                assert re.fullmatch(matchers(selector)["job"], job), rule["alert"]


# --- the dashboard ------------------------------------------------------------------------


def panels(dashboard: Obj) -> list[Obj]:
    found = []
    for panel in dashboard["panels"]:
        found.append(panel)
        found += panel.get("panels", [])
    return found


TARGETS = [(panel, target) for panel in panels(DASHBOARD) for target in panel.get("targets", [])]
QUERIES = [
    pytest.param(panel, target["expr"], id=f"{panel['title']}:{target['refId']}")
    for panel, target in TARGETS
]
LABEL_VALUES = re.compile(r"^label_values\((?P<selector>.+),\s*(?P<label>\w+)\)$")


@pytest.mark.parametrize(("panel", "query"), QUERIES)
def test_dashboard_query_selects_metrics_the_worker_exposes_for_the_chosen_app(panel, query):
    found = selectors(parse(query))
    assert found
    for selector in found:
        name = metric_name(selector)
        assert name in EXPOSED, f"{panel['title']}: {name} is not exposed by the worker"
        # Every series is filtered by the dashboard's variables.
        assert matchers(selector).items() >= {
            (variable, f"${variable}") for variable in DASHBOARD_VARIABLES
        }


def test_dashboard_variables_list_values_of_exposed_metrics():
    variables = {v["name"]: v for v in DASHBOARD["templating"]["list"]}
    assert variables.keys() >= DASHBOARD_VARIABLES
    for name in DASHBOARD_VARIABLES:
        definition = LABEL_VALUES.match(variables[name]["query"]["query"])
        assert definition, variables[name]["query"]
        assert definition["label"] == name
        (selector,) = selectors(parse(definition["selector"]))
        assert metric_name(selector) in EXPOSED
        if name == "app_id":  # picked within the chosen namespace
            assert matchers(selector)["namespace"] == "$namespace"


def test_dashboard_shows_what_issue_14_asks_for():
    used = {
        metric_name(selector)
        for _, target in TARGETS
        for selector in selectors(parse(target["expr"]))
    }
    assert {
        "loyalty_events_total",  # throughput by event type
        "loyalty_dead_letters_total",
        "loyalty_consumer_lag",  # lag per partition
        "ometria_outbox_backlog",
        "ometria_push_requests_total",  # requests by status
        "ometria_push_batch_records_bucket",  # batch fill
        "ometria_push_latency_seconds_bucket",
        "ometria_push_rate",  # rate-limit state
        "ometria_push_throttled_total",
        "ometria_paused",
        "ometria_unauthorized",
    } <= used
    ids = [panel["id"] for panel in panels(DASHBOARD)]
    assert len(ids) == len(set(ids))
    for panel in panels(DASHBOARD):
        if panel["type"] != "row":
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}


# --- the rendered overlay -----------------------------------------------------------------


def test_overlay_ships_the_rules_monitor_and_dashboard_in_its_namespace():
    namespace = load_yaml(OVERLAY / "kustomization.yaml")["namespace"]
    assert namespace == load_yaml(K8S / "overlays" / "example" / "kustomization.yaml")["namespace"]
    rule = find("PrometheusRule", "loyalty-stream")
    assert rule["spec"] == RULE_OBJECT["spec"]
    dashboard = find("ConfigMap", "loyalty-stream-dashboard")
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(dashboard["data"]["loyalty-stream.json"]) == DASHBOARD
    for obj in (rule, dashboard, find("PodMonitor", "loyalty-stream")):
        assert obj["metadata"]["namespace"] == namespace


def test_pod_monitor_scrapes_workers_and_pushers_web_port_not_the_jobs():
    monitor = find("PodMonitor", "loyalty-stream")
    statefulset = find("StatefulSet", "loyalty-stream")
    template = statefulset["spec"]["template"]
    labels = template["metadata"]["labels"]
    selector = monitor["spec"]["selector"]
    assert selector["matchLabels"].items() <= labels.items()
    (components,) = selector["matchExpressions"]
    assert components["key"] == "app.kubernetes.io/component"
    assert set(components["values"]) == {"worker", "pusher"}
    assert labels[components["key"]] in components["values"]
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    (container,) = template["spec"]["containers"]
    assert endpoint["port"] in {port["name"] for port in container["ports"]}
    assert endpoint["path"] == template["metadata"]["annotations"]["prometheus.io/path"]


def test_pod_monitor_app_id_label_is_the_workers_app_id():
    # The app_id every alert and panel groups by is the pod label the overlay sets, which must
    # be STREAM_APP_ID: the deployment's consumer group and topic names.
    monitor = find("PodMonitor", "loyalty-stream")
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    into_app_id = [r for r in endpoint["relabelings"] if r["targetLabel"] == "app_id"]
    # The last relabeling wins: the instance label, when the pod has one.
    assert into_app_id[-1]["sourceLabels"] == [
        "__meta_kubernetes_pod_label_app_kubernetes_io_instance"
    ]
    template = find("StatefulSet", "loyalty-stream")["spec"]["template"]
    # The settings ConfigMap is named after a hash of its data: the one the workers read.
    (container,) = template["spec"]["containers"]
    (source,) = container["envFrom"]
    app_id = find("ConfigMap", source["configMapRef"]["name"])["data"][f"{ENV_PREFIX}APP_ID"]
    assert template["metadata"]["labels"]["app.kubernetes.io/instance"] == app_id
    # Only the pod template: the claim templates of running workers cannot change.
    for claim in find("StatefulSet", "loyalty-stream")["spec"]["volumeClaimTemplates"]:
        assert "app.kubernetes.io/instance" not in claim["metadata"].get("labels", {})
