"""Start-up pieces that need no broker: the data directory, the web surface, topic retention."""

from __future__ import annotations

from datetime import timedelta

import pytest

from stream.ops.cli import prepare_data_dir
from stream.runtime.topic_configs import Retention
from stream.runtime.topology import over_erasure_deadline, replay_reach, topic_specs
from stream.settings import SettingsError, load_settings


def test_prepare_data_dir_creates_missing_parents(tmp_path):
    wanted = tmp_path / "fresh" / ".run" / "data"
    assert prepare_data_dir(wanted) == wanted
    assert wanted.is_dir()


def test_prepare_data_dir_under_a_file_names_the_setting(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(SettingsError, match=r"STREAM_DATA_DIR=.*set STREAM_DATA_DIR"):
        prepare_data_dir(blocker / "data")


def test_web_server_serves_only_our_views():
    from stream.ops import web  # noqa: F401 - registers the views
    from stream.runtime.app import app

    assert set(app.web.views) == {"/healthz", "/readyz", "/metrics", "/profiles/{customer_id}"}
    assert not app.web.blueprints._enabled, "no Faust blueprint (tables, router, index, stats)"


def test_created_topics_carry_explicit_retention():
    settings = load_settings(topics={"outbox_retention": "21d", "events_retention": "forever"})
    specs = {spec.name: spec.configs for spec in topic_specs(settings, 8)}
    assert specs["ometria.outbox"]["retention.ms"] == str(21 * 86400 * 1000)
    assert specs["loyalty.events"]["retention.ms"] == "-1"
    assert specs["loyalty.events.dlq"]["retention.ms"] == str(30 * 86400 * 1000)
    versions = specs.pop("ometria.outbox.versions")
    assert versions == {"cleanup.policy": "compact"}, "the newest versions are kept for good"
    progress = specs.pop("ometria.outbox.progress")
    assert progress["cleanup.policy"] == "compact", "the last committed offsets are kept for good"
    control = specs.pop("loyalty.stream.control")
    assert control == {"cleanup.policy": "compact"}, "a pause holds until resumed"
    erasures = specs.pop("loyalty.stream.erasures")
    assert erasures == {"cleanup.policy": "compact"}, "an erasure is kept for good"
    redriven = specs.pop("loyalty.stream.redriven")
    assert redriven["cleanup.policy"] == "compact,delete"
    assert redriven["retention.ms"] == specs["loyalty.events.dlq"]["retention.ms"], (
        "a redrive marker is kept as long as its dead letter"
    )
    assert all(configs["retention.bytes"] == "-1" for configs in specs.values())


def test_outbox_retention_shorter_than_a_day_is_refused():
    with pytest.raises(SettingsError, match="STREAM_TOPICS__OUTBOX_RETENTION"):
        load_settings(topics={"outbox_retention": "2h"})


def test_replay_reach_says_how_far_back_a_finite_events_topic_goes():
    text = replay_reach("loyalty.events", Retention(timedelta(days=7), None))
    assert text is not None
    assert "older than 7 days" in text
    assert "loyalty.events" in text
    assert replay_reach("loyalty.events", Retention(None, None)) is None


def test_a_topic_kept_longer_than_the_erasure_deadline_or_for_ever_is_named_in_a_warning():
    forever = over_erasure_deadline("ometria.outbox", Retention(None, None))
    longer = over_erasure_deadline("loyalty.events.dlq", Retention(timedelta(days=31), None))
    assert forever is not None
    assert "ometria.outbox keeps records for ever" in forever
    assert longer is not None
    assert "loyalty.events.dlq keeps records for 31 days" in longer
    assert "30 days erasure deadline" in longer


def test_a_topic_kept_no_longer_than_the_erasure_deadline_needs_no_warning():
    for days in (14, 30):
        assert over_erasure_deadline("ometria.outbox", Retention(timedelta(days), None)) is None


def test_changelog_key_is_the_customer_id_without_faust_json_quotes():
    from stream.ops.backfill import changelog_key

    assert changelog_key(b'"7294851236742"') == "7294851236742"
    with pytest.raises(ValueError, match="not a JSON string"):
        changelog_key(b"42")


@pytest.mark.parametrize(("value", "expected"), [(None, 1), ("0", 0), ("2", 2)])
def test_standby_replicas_setting_is_the_apps_table_standby_replicas(value, expected):
    from stream.runtime.app import create_app

    kafka = {} if value is None else {"standby_replicas": value}
    app = create_app(load_settings(kafka=kafka))
    assert app.conf.table_standby_replicas == expected
