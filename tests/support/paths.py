"""Where the repository's files are, so a test reads them wherever the test file sits."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"
SCHEMAS = REPO / "schemas"
GOLDEN = REPO / "tests" / "golden"
