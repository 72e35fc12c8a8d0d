"""The layers of `stream/` import only downwards: the import-linter contracts in pyproject.toml
hold (docs/architecture.md#where-the-code-lives)."""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).parents[2]


def contracts() -> list[dict[str, object]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return list(config["tool"]["importlinter"]["contracts"])


def test_every_import_linter_contract_is_kept():
    # import-linter reads pyproject.toml from the working directory and resolves `stream` on
    # sys.path: the tests' own checkout. In a process of its own: faust, one of the packages it
    # analyses, replaces its module object with one that has no __spec__ once imported, and
    # import-linter cannot find such a package.
    lint = "import sys; from importlinter.cli import lint_imports; " + (
        "sys.exit(lint_imports(no_cache=True, no_logo=True))"
    )
    run = subprocess.run(
        [sys.executable, "-c", lint], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert run.returncode == 0, run.stdout + run.stderr


def test_the_layers_contract_names_every_package_under_stream():
    # A contract over packages that do not exist (or miss one) would pass without checking.
    (layers,) = [c for c in contracts() if c["type"] == "layers"]
    named = set(layers["layers"])
    packages = {
        f"stream.{info.name}"
        for info in pkgutil.iter_modules(importlib.import_module("stream").__path__)
        if info.ispkg
    }
    assert packages == named
    for package in named:
        modules = list(pkgutil.iter_modules(importlib.import_module(package).__path__))
        assert modules, f"{package} holds no module"
