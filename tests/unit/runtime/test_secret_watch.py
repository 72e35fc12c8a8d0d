"""The Kafka password file watch: a clean stop once the file holds another password."""

from __future__ import annotations

from pathlib import Path

import pytest

from stream.runtime.secret_watch import PasswordFileWatch, password_file_watch
from stream.settings import KafkaSettings


class Stops:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> None:
        self.count += 1


@pytest.fixture
def password_file(tmp_path: Path) -> Path:
    path = tmp_path / "password"
    path.write_text("first-password\n", encoding="utf-8")
    return path


def replace(path: Path, text: str) -> None:
    """As the kubelet updates a mounted Secret: a new file swapped in."""
    fresh = path.with_name("fresh")
    fresh.write_text(text, encoding="utf-8")
    fresh.replace(path)


def test_password_watch_same_password_does_not_stop(password_file):
    stops = Stops()
    watch = PasswordFileWatch(password_file, "first-password", stops)
    assert watch.check() is False
    replace(password_file, "first-password\n")
    assert watch.check() is False
    assert stops.count == 0


def test_password_watch_new_password_stops_once(password_file):
    stops = Stops()
    watch = PasswordFileWatch(password_file, "first-password", stops)
    assert watch.check() is False
    replace(password_file, "second-password\n")
    assert watch.check() is True
    assert watch.check() is True
    assert stops.count == 1


def test_password_watch_missing_or_empty_file_keeps_going_until_a_new_password(password_file):
    stops = Stops()
    watch = PasswordFileWatch(password_file, "first-password", stops)
    password_file.unlink()
    assert watch.check() is False
    password_file.write_text("\n", encoding="utf-8")
    assert watch.check() is False
    replace(password_file, "second-password")
    assert watch.check() is True
    assert stops.count == 1


def test_password_file_watch_only_for_a_password_read_from_its_file(password_file):
    sasl = {"security_protocol": "SASL_SSL", "sasl_username": "loyalty-stream"}
    from_file = KafkaSettings(**sasl, sasl_password_file=password_file)
    assert password_file_watch(from_file) is not None
    # The variable wins over the file, so the file's changes do not concern the process.
    direct = KafkaSettings(**sasl, sasl_password="direct", sasl_password_file=password_file)
    assert password_file_watch(direct) is None
    assert password_file_watch(KafkaSettings(**sasl, sasl_password="direct")) is None
    plaintext = KafkaSettings(sasl_password_file=password_file)
    assert password_file_watch(plaintext) is None


def test_password_file_watch_compares_with_the_password_the_settings_read(password_file):
    settings = KafkaSettings(
        security_protocol="SASL_PLAINTEXT", sasl_username="u", sasl_password_file=password_file
    )
    stops = Stops()
    watch = password_file_watch(settings, stops)
    assert watch is not None
    assert watch.check() is False
    replace(password_file, "second-password\n")
    assert watch.check() is True
    assert stops.count == 1
