"""The code stays readable in one sitting: short functions, runtime modules of one job each.

Issue 25's limits: no function in `stream/` longer than 60 lines (decorators excluded, its
docstring included), no module in `stream/runtime` longer than 300 lines.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.support.paths import REPO

STREAM = REPO / "stream"
MAX_FUNCTION_LINES = 60
MAX_RUNTIME_MODULE_LINES = 300


def _functions(path: Path) -> list[tuple[str, int]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    return [
        (f"{path.relative_to(STREAM.parent)}:{node.lineno} {node.name}", _length(node))
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    ]


def _length(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    assert node.end_lineno is not None
    return node.end_lineno - node.lineno + 1


def test_no_function_in_the_package_is_longer_than_60_lines() -> None:
    too_long = [
        f"{where} ({length} lines)"
        for path in sorted(STREAM.rglob("*.py"))
        for where, length in _functions(path)
        if length > MAX_FUNCTION_LINES
    ]
    assert not too_long, "split these into named steps:\n" + "\n".join(too_long)


def test_no_runtime_module_is_longer_than_300_lines() -> None:
    too_long = [
        f"{path.relative_to(STREAM.parent)} ({lines} lines)"
        for path in sorted((STREAM / "runtime").rglob("*.py"))
        if (lines := len(path.read_text().splitlines())) > MAX_RUNTIME_MODULE_LINES
    ]
    assert not too_long, "one job per module; split these:\n" + "\n".join(too_long)


def test_the_size_checks_see_the_package() -> None:
    # A wrong path would make both checks pass on nothing.
    assert len(list(STREAM.rglob("*.py"))) > 50
    assert any(length > 1 for path in STREAM.rglob("*.py") for _, length in _functions(path))
