"""Settings: `STREAM_*` environment variables, nested with `__`; errors name the variable."""

from __future__ import annotations

import os
from datetime import timedelta

import pytest
from pydantic import SecretStr, ValidationError

from stream.settings import SettingsError, load_settings

API_KEY = "k-SECRET-123"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    """Start every test from an environment with no STREAM_* variables."""
    for name in list(os.environ):
        if name.upper().startswith("STREAM_"):
            monkeypatch.delenv(name)


def test_load_settings_empty_env_gives_documented_defaults():
    settings = load_settings()

    assert settings.app_id == "loyalty-stream"
    assert settings.ometria.api_key is None
    assert settings.ometria.max_requests_per_second == 4.0
    assert settings.ometria.flush_interval == timedelta(seconds=1)
    assert settings.triggers.tier_order == ["Bronze", "Silver", "Gold", "Platinum"]
    assert settings.triggers.horizon == timedelta(hours=24)


def test_load_settings_prefixed_nested_env_read(monkeypatch):
    monkeypatch.setenv("STREAM_APP_ID", "loyalty-eu")
    monkeypatch.setenv("STREAM_KAFKA__BOOTSTRAP_SERVERS", "kafka-1:9092,kafka-2:9092")
    monkeypatch.setenv("STREAM_OMETRIA__BASE_URL", "http://127.0.0.1:8080")
    monkeypatch.setenv("STREAM_OMETRIA__MAX_REQUESTS_PER_SECOND", "8")
    monkeypatch.setenv("STREAM_OMETRIA__ENABLED", "false")
    monkeypatch.setenv("STREAM_TOPICS__EVENTS", "rivo.events")

    settings = load_settings()

    assert settings.app_id == "loyalty-eu"
    assert settings.kafka.bootstrap_servers == "kafka-1:9092,kafka-2:9092"
    assert str(settings.ometria.base_url).rstrip("/") == "http://127.0.0.1:8080"
    assert settings.ometria.max_requests_per_second == 8.0
    assert settings.ometria.enabled is False
    assert settings.topics.events == "rivo.events"


def test_load_settings_unprefixed_env_ignored(monkeypatch):
    monkeypatch.setenv("APP_ID", "not-ours")

    assert load_settings().app_id == "loyalty-stream"


def test_load_settings_tier_order_comma_list_split_and_stripped(monkeypatch):
    monkeypatch.setenv("STREAM_TRIGGERS__TIER_ORDER", "a, b,,c ")
    monkeypatch.setenv("STREAM_TRIGGERS__DISABLED", "loyalty_points_earned")

    settings = load_settings()

    assert settings.triggers.tier_order == ["a", "b", "c"]
    assert settings.triggers.disabled == ["loyalty_points_earned"]


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("STREAM_TRIGGERS__HORIZON", "24h", timedelta(hours=24)),
        ("STREAM_TRIGGERS__HORIZON", "30m", timedelta(minutes=30)),
        ("STREAM_TRIGGERS__HORIZON", "7d", timedelta(days=7)),
        ("STREAM_TRIGGERS__HORIZON", "90", timedelta(seconds=90)),
        ("STREAM_TRIGGERS__HORIZON", "PT2H", timedelta(hours=2)),
        ("STREAM_OMETRIA__FLUSH_INTERVAL", "0.5s", timedelta(milliseconds=500)),
        ("STREAM_OMETRIA__FLUSH_INTERVAL", "250ms", timedelta(milliseconds=250)),
        ("STREAM_OMETRIA__TIMEOUT", "15", timedelta(seconds=15)),
        ("STREAM_OMETRIA__AUTH_RETRY_INTERVAL", "1m", timedelta(minutes=1)),
        ("STREAM_OMETRIA__AUTH_RETRY_INTERVAL", "2.5", timedelta(seconds=2.5)),
    ],
)
def test_load_settings_duration_forms_parsed(monkeypatch, variable, value, expected):
    monkeypatch.setenv(variable, value)

    settings = load_settings()

    section, name = variable.removeprefix("STREAM_").lower().split("__")
    assert getattr(getattr(settings, section), name) == expected


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("STREAM_OMETRIA__MAX_REQUESTS_PER_SECOND", "0"),
        ("STREAM_OMETRIA__MAX_REQUESTS_PER_SECOND", "fast"),
        ("STREAM_OMETRIA__FLUSH_INTERVAL", "0s"),
        ("STREAM_OMETRIA__FLUSH_INTERVAL", "soon"),
        ("STREAM_OMETRIA__AUTH_RETRY_INTERVAL", "0s"),
        ("STREAM_TRIGGERS__HORIZON", "24 hours"),
        ("STREAM_STORE", "redis://"),
        ("STREAM_WEB_PORT", "70000"),
        ("STREAM_MAPPING__PRESET", "antavo"),
    ],
)
def test_load_settings_invalid_value_raises_settings_error_naming_variable(
    monkeypatch, variable, value
):
    monkeypatch.setenv(variable, value)

    with pytest.raises(SettingsError) as caught:
        load_settings()

    assert variable in str(caught.value)


def test_load_settings_api_key_is_secret_and_hidden_from_repr(monkeypatch):
    monkeypatch.setenv("STREAM_OMETRIA__API_KEY", API_KEY)

    settings = load_settings()

    assert isinstance(settings.ometria.api_key, SecretStr)
    assert settings.ometria.api_key.get_secret_value() == API_KEY
    assert API_KEY not in repr(settings)
    assert API_KEY not in str(settings)
    assert API_KEY not in repr(settings.ometria)


def test_load_settings_error_beside_set_key_never_shows_key(monkeypatch, tmp_path):
    monkeypatch.setenv("STREAM_OMETRIA__API_KEY", API_KEY)
    monkeypatch.setenv("STREAM_OMETRIA__API_KEY_FILE", str(tmp_path / "missing"))
    monkeypatch.setenv("STREAM_OMETRIA__MAX_REQUESTS_PER_SECOND", "0")

    with pytest.raises(SettingsError) as caught:
        load_settings()

    assert "STREAM_OMETRIA__MAX_REQUESTS_PER_SECOND" in str(caught.value)
    assert API_KEY not in str(caught.value)
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__ is True


def test_load_settings_unreadable_key_file_raises_settings_error(monkeypatch, tmp_path):
    missing = tmp_path / "missing"
    monkeypatch.setenv("STREAM_OMETRIA__API_KEY_FILE", str(missing))

    with pytest.raises(SettingsError) as caught:
        load_settings()

    assert str(missing) in str(caught.value)


def test_load_settings_unreadable_key_file_error_names_its_variable(monkeypatch, tmp_path):
    monkeypatch.setenv("STREAM_OMETRIA__API_KEY_FILE", str(tmp_path / "missing"))

    with pytest.raises(SettingsError) as caught:
        load_settings()

    assert "STREAM_OMETRIA__API_KEY_FILE" in str(caught.value)


def test_load_settings_misspelt_key_variable_never_shows_key(monkeypatch):
    monkeypatch.setenv("STREAM_OMETRIA__APIKEY", API_KEY)

    with pytest.raises(SettingsError) as caught:
        load_settings()

    assert "STREAM_OMETRIA__APIKEY" in str(caught.value)
    assert API_KEY not in str(caught.value)


def test_load_settings_key_file_read_and_stripped(monkeypatch, tmp_path):
    key_file = tmp_path / "api-key"
    key_file.write_text(f"  {API_KEY}\n", encoding="utf-8")
    monkeypatch.setenv("STREAM_OMETRIA__API_KEY_FILE", str(key_file))

    settings = load_settings()

    assert settings.ometria.require_api_key().get_secret_value() == API_KEY


def test_load_settings_key_env_wins_over_key_file(monkeypatch, tmp_path):
    key_file = tmp_path / "api-key"
    key_file.write_text("k-from-file", encoding="utf-8")
    monkeypatch.setenv("STREAM_OMETRIA__API_KEY_FILE", str(key_file))
    monkeypatch.setenv("STREAM_OMETRIA__API_KEY", API_KEY)

    assert load_settings().ometria.require_api_key().get_secret_value() == API_KEY


def test_load_settings_auth_retry_interval_defaults_to_15_seconds():
    assert load_settings().ometria.auth_retry_interval == timedelta(seconds=15)


def test_api_key_path_key_from_file_names_the_file_to_re_read(monkeypatch, tmp_path):
    key_file = tmp_path / "api-key"
    key_file.write_text(API_KEY, encoding="utf-8")
    monkeypatch.setenv("STREAM_OMETRIA__API_KEY_FILE", str(key_file))

    assert load_settings().ometria.api_key_path == key_file


def test_api_key_path_key_set_directly_is_none_even_with_a_key_file(monkeypatch, tmp_path):
    key_file = tmp_path / "api-key"
    key_file.write_text("k-from-file", encoding="utf-8")
    monkeypatch.setenv("STREAM_OMETRIA__API_KEY", API_KEY)
    assert load_settings().ometria.api_key_path is None

    monkeypatch.setenv("STREAM_OMETRIA__API_KEY_FILE", str(key_file))
    assert load_settings().ometria.api_key_path is None


@pytest.mark.parametrize("value", [None, ""])
def test_require_api_key_unset_raises_settings_error_naming_variable(monkeypatch, value):
    if value is not None:
        monkeypatch.setenv("STREAM_OMETRIA__API_KEY", value)
    settings = load_settings()

    with pytest.raises(SettingsError, match="STREAM_OMETRIA__API_KEY"):
        settings.ometria.require_api_key()


def test_settings_are_frozen():
    settings = load_settings()

    with pytest.raises(ValidationError):
        settings.app_id = "changed"


def test_log_email_key_file_is_read_when_present_and_optional_when_absent(tmp_path):
    key_file = tmp_path / "log-email-key"
    assert load_settings(log_email_key_file=key_file).log_email_key is None
    key_file.write_text("k3y-for-hashing\n")
    key = load_settings(log_email_key_file=key_file).log_email_key
    assert key is not None
    assert key.get_secret_value() == "k3y-for-hashing"
    assert "k3y" not in repr(load_settings(log_email_key_file=key_file))
