"""Validate custom resources offline against the openAPIV3Schema of their vendored CRDs.

The CRDs under tests/deploy/crds/ are the projects' own files (each names its source and
version). The API server prunes unknown fields of a structural schema, and `kubectl apply`
asks it to refuse them instead (strict field validation, the default since Kubernetes 1.27):
so every object schema that lists its properties is closed here, unless the CRD keeps unknown
fields on purpose (x-kubernetes-preserve-unknown-fields). CEL rules (x-kubernetes-validations)
are not evaluated: a test states the ones its objects depend on.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import jsonschema
import yaml

CRDS = Path(__file__).parent / "crds"

Obj = dict[str, Any]


def _closed(schema: Any) -> Any:
    """The schema with additionalProperties false wherever the API server refuses unknowns."""
    if isinstance(schema, list):
        return [_closed(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    closed = {key: _closed(value) for key, value in schema.items()}
    if (
        "properties" in closed
        and "additionalProperties" not in closed
        and not closed.get("x-kubernetes-preserve-unknown-fields")
    ):
        closed["additionalProperties"] = False
    return closed


def load_crd_schemas() -> dict[tuple[str, str], Obj]:
    """(apiVersion, kind) → the closed openAPIV3Schema, for every served version of every CRD."""
    schemas: dict[tuple[str, str], Obj] = {}
    for path in sorted(CRDS.glob("*.yaml")):
        with path.open(encoding="utf-8") as stream:
            for crd in yaml.safe_load_all(stream):
                if not crd or crd.get("kind") != "CustomResourceDefinition":
                    continue
                group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
                for version in crd["spec"]["versions"]:
                    if version.get("served", True):
                        schema = version["schema"]["openAPIV3Schema"]
                        schemas[(f"{group}/{version['name']}", kind)] = _closed(schema)
    return schemas


SCHEMAS = load_crd_schemas()


def crd_groups() -> set[str]:
    """The API groups the vendored CRDs define."""
    return {api_version.split("/")[0] for api_version, _ in SCHEMAS}


def validate_custom_resource(obj: Obj) -> None:
    """Raise jsonschema.ValidationError when obj does not fit its CRD (KeyError: no CRD)."""
    schema = SCHEMAS[(obj["apiVersion"], obj["kind"])]
    jsonschema.validate(copy.deepcopy(obj), schema)
