"""`make run` (deploy/local/run.sh) pushes its demo customers to Ometria only when asked to."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
RUN = REPO / "deploy" / "local" / "run.sh"
GUARD = REPO / "deploy" / "local" / "ometria_guard.sh"
OPT_IN = "LOYALTY_RUN_REAL_OMETRIA"


def clean_env(**values: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("STREAM_") and k not in {OPT_IN, "KAFKA_BOOTSTRAP_SERVERS"}
    }
    env.update(values)
    return env


def guard(**values: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(GUARD)],
        env=clean_env(**values),
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )


@pytest.mark.parametrize(
    "values",
    [
        pytest.param({"STREAM_OMETRIA__API_KEY": "a-real-looking-key"}, id="key"),
        pytest.param({"STREAM_OMETRIA__API_KEY_FILE": "/run/secrets/ometria"}, id="key-file"),
        pytest.param(
            {
                "STREAM_OMETRIA__API_KEY": "k",
                "STREAM_OMETRIA__BASE_URL": "https://api.ometria.com",
            },
            id="key-and-real-url",
        ),
        pytest.param(
            {
                "STREAM_OMETRIA__API_KEY": "k",
                "STREAM_OMETRIA__BASE_URL": "http://127.0.0.1.example.com:8085",
            },
            id="url-that-only-starts-like-localhost",
        ),
        pytest.param({"STREAM_OMETRIA__API_KEY": "k", OPT_IN: "1"}, id="opt-in-other-than-yes"),
    ],
)
def test_guard_refuses_a_key_for_a_real_ometria_without_the_opt_in(values):
    refused = guard(**values)
    assert refused.returncode == 1
    assert f"{OPT_IN}=yes" in refused.stderr
    # The key itself is never echoed.
    assert "a-real-looking-key" not in refused.stdout + refused.stderr


@pytest.mark.parametrize(
    "values",
    [
        pytest.param({}, id="no-key-the-stand-in-is-started"),
        pytest.param(
            {
                "STREAM_OMETRIA__API_KEY": "anything",
                "STREAM_OMETRIA__BASE_URL": "http://127.0.0.1:8085",
            },
            id="key-for-a-local-stand-in",
        ),
        pytest.param(
            {"STREAM_OMETRIA__API_KEY": "k", "STREAM_OMETRIA__BASE_URL": "http://localhost:9000/"},
            id="key-for-localhost",
        ),
    ],
)
def test_guard_lets_the_stand_in_run(values):
    allowed = guard(**values)
    assert allowed.returncode == 0, allowed.stderr
    assert allowed.stderr == ""


def test_guard_opt_in_lets_a_real_key_through_and_says_where_to():
    allowed = guard(STREAM_OMETRIA__API_KEY="a-real-looking-key", **{OPT_IN: "yes"})
    assert allowed.returncode == 0
    assert "https://api.ometria.com" in allowed.stderr
    assert "a-real-looking-key" not in allowed.stdout + allowed.stderr


def test_make_run_refuses_a_real_key_before_starting_anything(tmp_path):
    # A broker is configured, so even a run.sh that got past the guard would not start Kafka.
    refused = subprocess.run(
        ["bash", str(RUN)],
        env=clean_env(
            STREAM_OMETRIA__API_KEY="a-real-looking-key",
            STREAM_KAFKA__BOOTSTRAP_SERVERS="127.0.0.1:9",
        ),
        capture_output=True,
        text=True,
        check=False,
        timeout=20,
        cwd=tmp_path,
    )
    assert refused.returncode == 1
    assert f"{OPT_IN}=yes" in refused.stderr
    assert "starting the worker" not in refused.stdout
