"""The layers of `stream/` import only downwards: the import-linter contracts in pyproject.toml
hold (docs/architecture.md#where-the-code-lives)."""

from __future__ import annotations

import importlib
import pkgutil
import tomllib
from pathlib import Path

from importlinter.cli import lint_imports

ROOT = Path(__file__).parents[2]


def contracts() -> list[dict[str, object]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return list(config["tool"]["importlinter"]["contracts"])


def test_every_import_linter_contract_is_kept(monkeypatch):
    # import-linter reads pyproject.toml from the working directory and resolves `stream` on
    # sys.path: the tests' own checkout.
    monkeypatch.chdir(ROOT)
    assert lint_imports(no_cache=True, no_logo=True) == 0


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
