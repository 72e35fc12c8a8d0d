"""The repository explains itself: references point at its own docs, and the anchors exist.

Comments, docstrings, the README and the deploy files once pointed at a product spec and API
notes kept outside the repository. A clone holds `docs/` instead; these tests fail when a file
refers to the outside documents again, or when a `docs/<file>.md#anchor` reference names a
file or heading that does not exist (anchors are GitHub's slugs of the headings).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
DOCS = ROOT / "docs"

# Generated, cached or installed trees (as .gitignore lists them), not the project's files.
SKIP_DIRS = frozenset(
    {
        ".git",
        ".venv",
        "venv",
        "__pycache__",
        ".pytest_cache",
        ".mypy_cache",
        ".ruff_cache",
        ".hypothesis",
        ".run",
        ".cache",
        "build",
        "dist",
        "node_modules",
    }
)
SKIP_PATHS = frozenset({Path("bench/results")})
# This file names the outside documents and broken references on purpose, as test data.
THIS_FILE = Path(__file__).resolve().relative_to(ROOT.resolve())
MAX_FILE_BYTES = 2_000_000

OUTSIDE_REFERENCES = re.compile(
    "|".join(
        (
            r"design\s*§",  # the old product spec's sections
            r"§\s*\d",  # any numbered section of an outside document
            r"design\.md",
            r"ometria-api\.md",
            r"\.\./shared",  # the project's shared folder next to a checkout
        )
    )
)
DOC_REFERENCE = re.compile(r"docs/([A-Za-z0-9_.-]+\.md)(?:#([A-Za-z0-9_-]+))?")
# Links between the docs themselves: `(other.md#anchor)` or `(#anchor)`.
DOC_LINK = re.compile(r"\]\(([A-Za-z0-9_.-]+\.md)?(?:#([A-Za-z0-9_-]+))?\)")
HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
FENCE = re.compile(r"^\s*(```|~~~)")


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = heading.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(markdown: str) -> set[str]:
    """Every heading anchor of a Markdown text (repeated headings get -1, -2, … as on GitHub)."""
    found: set[str] = set()
    seen: dict[str, int] = {}
    in_fence = False
    for line in markdown.splitlines():
        if FENCE.match(line):
            in_fence = not in_fence
            continue
        match = None if in_fence else HEADING.match(line)
        if match is None:
            continue
        slug = github_slug(match.group(2))
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        found.add(slug if count == 0 else f"{slug}-{count}")
    return found


def project_files() -> Iterator[tuple[Path, str]]:
    """(path relative to the root, text) of every text file of the project."""
    for path in sorted(ROOT.rglob("*")):
        relative = path.relative_to(ROOT)
        if any(part in SKIP_DIRS or part.endswith(".egg-info") for part in relative.parts):
            continue
        if relative == THIS_FILE or any(relative.is_relative_to(p) for p in SKIP_PATHS):
            continue
        if not path.is_file() or path.stat().st_size > MAX_FILE_BYTES:
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue  # binary
        yield relative, text


def _lines(text: str, pattern: re.Pattern[str]) -> Iterator[tuple[int, re.Match[str]]]:
    for number, line in enumerate(text.splitlines(), 1):
        for match in pattern.finditer(line):
            yield number, match


def outside_references(text: str) -> list[tuple[int, str]]:
    """(line, matched text) of every reference to a document outside the repository."""
    return [(number, match.group(0)) for number, match in _lines(text, OUTSIDE_REFERENCES)]


def broken_doc_references(text: str, here: Path | None = None) -> list[tuple[int, str, str]]:
    """(line, reference, what is wrong) for `docs/<file>.md[#anchor]` references in `text`;
    with `here` (a file under docs/), also its relative links `(file.md#anchor)`, `(#anchor)`."""
    references = [(n, m.group(0), m.group(1), m.group(2)) for n, m in _lines(text, DOC_REFERENCE)]
    if here is not None:
        references += [
            (n, m.group(0), m.group(1) or here.name, m.group(2))
            for n, m in _lines(text, DOC_LINK)
            if m.group(1) or m.group(2)
        ]
    broken = []
    for number, reference, name, anchor in references:
        target = DOCS / name
        if not target.is_file():
            broken.append((number, reference, f"docs/{name} does not exist"))
        elif anchor is not None and anchor not in anchors(target.read_text(encoding="utf-8")):
            broken.append((number, reference, f"docs/{name} has no heading with anchor #{anchor}"))
    return broken


def test_github_slugs_of_headings() -> None:
    text = (
        "# How loyalty-stream works\n"
        "## Responses and how each is handled\n"
        "### `X-Ometria-Auth`, the key's header\n"
        "```bash\n# not a heading\n```\n"
        "## Delivery\n## Delivery\n"
    )
    assert anchors(text) == {
        "how-loyalty-stream-works",
        "responses-and-how-each-is-handled",
        "x-ometria-auth-the-keys-header",
        "delivery",
        "delivery-1",
    }


def test_outside_references_are_recognised() -> None:
    text = (
        "see the design §7\n"
        "facts in ometria-api.md\n"
        "the spec at ../shared/docs/design.md\n"
        "see docs/architecture.md#delivery\n"
    )
    assert [number for number, _ in outside_references(text)] == [1, 2, 3, 3]


def test_doc_references_with_missing_files_or_anchors_are_reported() -> None:
    text = (
        "docs/architecture.md#delivery\n"
        "docs/architecture.md#no-such-heading\n"
        "docs/no-such-file.md\n"
        "docs/ometria-contract.md\n"
    )
    assert [(number, why) for number, _, why in broken_doc_references(text)] == [
        (2, "docs/architecture.md has no heading with anchor #no-such-heading"),
        (3, "docs/no-such-file.md does not exist"),
    ]


def test_no_file_refers_to_documents_outside_the_repository() -> None:
    found = [
        f"{path}:{number}: {match}"
        for path, text in project_files()
        for number, match in outside_references(text)
    ]
    assert not found, "point these at docs/ (architecture.md or ometria-contract.md):\n" + (
        "\n".join(found)
    )


def test_every_docs_reference_names_an_existing_file_and_heading() -> None:
    found = [
        f"{path}:{number}: {reference}: {why}"
        for path, text in project_files()
        for number, reference, why in broken_doc_references(
            text, path if path.parent == Path("docs") and path.suffix == ".md" else None
        )
    ]
    assert not found, "\n".join(found)


@pytest.mark.parametrize("name", ["architecture.md", "ometria-contract.md"])
def test_the_docs_exist_and_have_sections(name: str) -> None:
    assert len(anchors((DOCS / name).read_text(encoding="utf-8"))) >= 5


README = ROOT / "README.md"
MAP_HEADING = "## The map of the docs"
# A Markdown link to a file of the repository: `[text](path.md#anchor)` or `[text](#anchor)`.
RELATIVE_LINK = re.compile(r"\]\((?!https?:|mailto:)([^)\s#]*)(?:#([^)\s]+))?\)")


def readme_map_links() -> set[str]:
    """The files the README's map of the docs links, as paths relative to the root."""
    text = README.read_text(encoding="utf-8")
    assert MAP_HEADING in text, f"README.md has no {MAP_HEADING!r} section"
    section = text.split(MAP_HEADING, 1)[1].split("\n## ", 1)[0]
    return {target for target, _ in RELATIVE_LINK.findall(section) if target}


def broken_relative_links(path: Path, root: Path = ROOT) -> list[str]:
    """Every link of the Markdown file `path` to a missing file, or to a missing heading."""
    broken = []
    for number, match in _lines(path.read_text(encoding="utf-8"), RELATIVE_LINK):
        target_name, anchor = match.group(1), match.group(2)
        target = (path.parent / target_name).resolve() if target_name else path
        where = f"{path.relative_to(root)}:{number}: {match.group(0)}"
        if not target.exists():
            broken.append(f"{where}: {target_name} does not exist")
        elif (
            anchor
            and target.suffix == ".md"
            and anchor not in anchors(target.read_text(encoding="utf-8"))
        ):
            broken.append(f"{where}: no heading with anchor #{anchor}")
    return broken


def test_readme_map_of_the_docs_links_every_doc() -> None:
    documented = {link for link in readme_map_links() if link.startswith("docs/")}
    assert documented == {f"docs/{p.name}" for p in DOCS.glob("*.md")}


def test_readme_and_docs_links_resolve_including_anchors() -> None:
    pages = [README, ROOT / "deploy" / "k8s" / "README.md", *sorted(DOCS.glob("*.md"))]
    found = [line for page in pages for line in broken_relative_links(page)]
    assert not found, "\n".join(found)


def test_broken_relative_links_are_reported(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "# Title\n[ok](#title) [gone](#nowhere) [self](page.md#title) [missing](other.md)\n"
        "[web](https://example.com/x.md#y)\n",
        encoding="utf-8",
    )
    reasons = [line.rsplit(": ", 1)[1] for line in broken_relative_links(page, tmp_path)]
    assert reasons == ["no heading with anchor #nowhere", "other.md does not exist"]
