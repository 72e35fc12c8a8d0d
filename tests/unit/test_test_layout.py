"""The test suite's layout: unit tests mirror `stream/`, and tests share helpers only through
fixtures and `tests/support`, never by importing another test module or a conftest."""

from __future__ import annotations

import ast
from collections import Counter
from pathlib import Path

from tests.support.paths import REPO

TESTS = REPO / "tests"
UNIT = TESTS / "unit"
STREAM = REPO / "stream"
LAYERS = ("domain", "ometria", "runtime", "ops")

# Checks of the project as a whole (layers, docs, guides, this layout), not of one module.
PROJECT_CHECKS = {
    "test_code_sizes.py",
    "test_docs_links.py",
    "test_going_live_guide.py",
    "test_import_layers.py",
    "test_test_layout.py",
}


def python_files() -> list[Path]:
    return sorted(p for p in TESTS.rglob("*.py") if ".venv" not in p.parts)


def imported_modules(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def is_test_module(module: str) -> bool:
    """A test module or a conftest, by dotted name: `tests.unit.test_x`, `test_x`, `conftest`."""
    last = module.rsplit(".", 1)[-1]
    return last.startswith("test_") or last == "conftest"


def mirrors_a_module(test: Path, package: Path, *, subpackages: bool = True) -> bool:
    """`test_<module>[_<topic>].py` names a module (or subpackage) of `package`."""
    subject = test.stem.removeprefix("test_")
    modules = {p.stem for p in package.glob("*.py") if p.stem != "__init__"}
    if subpackages:
        modules |= {p.name for p in package.iterdir() if (p / "__init__.py").is_file()}
    return any(subject == m or subject.startswith(f"{m}_") for m in modules)


def test_no_test_module_imports_another_test_module_or_a_conftest():
    offenders = [
        f"{path.relative_to(REPO)} imports {module}"
        for path in python_files()
        for module in sorted(imported_modules(path))
        if is_test_module(module)
    ]
    assert offenders == [], "share helpers as fixtures or in tests/support instead"


def test_support_modules_are_not_test_modules():
    assert [p.name for p in (TESTS / "support").glob("*.py") if is_test_module(p.stem)] == []


def test_each_unit_test_sits_in_the_folder_of_the_layer_it_tests():
    misplaced = []
    for test in sorted(UNIT.rglob("test_*.py")):
        folder = test.parent.relative_to(UNIT)
        if folder == Path("."):
            # Only the top-level modules (settings, errors, metrics) are tested from here.
            placed = test.name in PROJECT_CHECKS or mirrors_a_module(
                test, STREAM, subpackages=False
            )
        else:
            package = STREAM / folder
            placed = (
                folder.parts[0] in LAYERS and package.is_dir() and mirrors_a_module(test, package)
            )
        if not placed:
            misplaced.append(str(test.relative_to(REPO)))
    assert misplaced == [], (
        "a unit test of stream/<layer>/<module>.py is tests/unit/<layer>/test_<module>[_<topic>].py"
    )


def test_test_module_names_are_unique():
    # Without __init__.py files pytest imports each test module by its bare name.
    names = Counter(p.name for p in TESTS.rglob("test_*.py"))
    repeated = sorted(name for name, count in names.items() if count > 1)
    assert repeated == [], "rename one of each: pytest would import the second as the first"
