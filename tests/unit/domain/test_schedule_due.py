"""Time-based campaign triggers (stream.domain.schedule): golden cases, once per due date."""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream.domain.events import parse_event
from stream.domain.mapping import load_mapping, parse_mapping
from stream.domain.profile import Profile, fold
from stream.domain.schedule import ScheduleConfig, ScheduleRule, due, mark_fired
from stream.errors import MappingError
from stream.settings import load_settings
from tests.support import paths

GOLDEN = paths.GOLDEN / "schedule"
CASES = sorted(GOLDEN.glob("*.json"))


def scan(profile: Profile, times, config: ScheduleConfig) -> tuple[Profile, list[dict]]:
    """Scan at each time in turn, remembering what fired, as the worker does."""
    records = []
    for now in times:
        items = due(profile, now, config)
        profile = mark_fired(profile, items, now, config.window)
        records.extend(item.record for item in items)
    return profile, records


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.stem)
def test_schedule_golden_case_fires_exactly_the_expected_records(path):
    case = orjson.loads(path.read_bytes())
    config = load_mapping("rivo", path.parent / case["mapping_file"]).schedule
    profile = None
    for doc in case["events"]:
        profile = fold(profile, parse_event(orjson.dumps(doc))).profile

    _, records = scan(profile, [datetime.fromisoformat(t) for t in case["scans"]], config)

    assert records == case["expected"]


def test_schedule_golden_cases_cover_every_time_based_rule():
    fired = {
        record["event_type"]
        for path in CASES
        for record in orjson.loads(path.read_bytes())["expected"]
    }
    assert fired == {
        "loyalty_points_expiring",
        "loyalty_reward_expiring",
        "loyalty_birthday",
        "loyalty_tier_expiring",
        "loyalty_tier_approaching",
    }


EXPIRES = datetime(2027, 3, 1, tzinfo=UTC)


def expiring(email: str | None = "a@example.com") -> Profile:
    return Profile(customer_id="c1", email=email, points_expire_at=EXPIRES, expiring_points=10)


@settings(max_examples=60, deadline=None)
@given(
    start=st.integers(min_value=0, max_value=40 * 24),
    gaps=st.lists(st.integers(min_value=1, max_value=30 * 60), min_size=1, max_size=200),
    leads=st.sets(st.integers(min_value=0, max_value=40), min_size=1, max_size=4),
)
def test_each_lead_fires_once_exactly_when_a_scan_falls_in_its_window(start, gaps, leads):
    """Reference: a lead fires iff some scan time t has due <= t < due + window; then once."""
    config = ScheduleConfig(rules={"loyalty_points_expiring": ScheduleRule(lead_days=tuple(leads))})
    first = EXPIRES - timedelta(days=40) + timedelta(hours=start)
    times = [first]
    for gap in gaps:  # minutes between scans
        times.append(times[-1] + timedelta(minutes=gap))

    _, records = scan(expiring(), times, config)

    expected = []
    for days in sorted(leads, reverse=True):
        moment = EXPIRES - timedelta(days=days)
        if any(moment <= t < moment + config.window and t < EXPIRES for t in times):
            expected.append(days)
    assert sorted(r["properties"]["days_left"] for r in records) == sorted(expected)
    assert len({r["id"] for r in records}) == len(records)


def test_nothing_fires_without_an_email():
    now = EXPIRES - timedelta(days=7)

    assert due(expiring(email=None), now, ScheduleConfig()) == []
    assert len(due(expiring(), now, ScheduleConfig())) == 1


def test_markers_survive_the_stored_profile_and_old_ones_are_dropped():
    config = ScheduleConfig()
    now = EXPIRES - timedelta(days=30)
    items = due(expiring(), now, config)
    marked = Profile.from_bytes(mark_fired(expiring(), items, now, config.window).to_bytes())

    assert due(marked, now + timedelta(hours=1), config) == []
    later = mark_fired(marked, [], now + timedelta(days=5), config.window)
    assert later.schedule_fired == ()


def test_an_event_type_disabled_in_the_settings_fires_nothing():
    config = ScheduleConfig(disabled=frozenset({"loyalty_points_expiring"}))

    assert due(expiring(), EXPIRES - timedelta(days=7), config) == []


def test_a_disabled_rule_and_a_false_condition_fire_nothing():
    doc = {
        "extends": "rivo",
        "schedule": {
            "loyalty_points_expiring": {"condition": "after.points.balance > 100"},
            "loyalty_tier_expiring": {"enabled": False},
        },
    }
    config = parse_mapping("my.toml", doc).schedule
    now = EXPIRES - timedelta(days=7)

    assert due(expiring(), now, config) == []


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"loyalty_points_expirin": {}}, "unknown rule"),
        ({"loyalty_birthday": {"timezone": "Mars/Olympus"}}, "no timezone 'Mars/Olympus'"),
        ({"loyalty_birthday": {"lead_days": [3]}}, "lead_days applies to"),
        ({"loyalty_tier_expiring": {"condition": "event.data.points > 1"}}, "unknown variable"),
        ({"loyalty_tier_expiring": {"condition": "after.tier.expires > now"}}, "no field"),
    ],
)
def test_schedule_mistakes_stop_start_up_naming_the_rule(entry, message):
    with pytest.raises(MappingError) as caught:
        parse_mapping("my.toml", {"extends": "rivo", "schedule": entry})

    assert message in str(caught.value)
    assert "[schedule." in str(caught.value)


def test_the_campaigns_guide_example_mapping_for_the_crm_team_is_valid():
    guide = (paths.DOCS / "campaigns.md").read_text()
    section = guide.split("# Campaigns for the CRM team", 1)[1]
    example = section.split("```toml\n", 1)[1].split("```", 1)[0]

    mapping = parse_mapping("docs/campaigns.md", tomllib.loads(example))

    assert [rule.name for rule in mapping.declared] == ["loyalty_vip_welcome"]
    assert [rule.list_id for rule in mapping.lists] == ["1234", "1235"]
    assert mapping.schedule.birthday_timezone == "Europe/London"
    assert mapping.schedule.rules["loyalty_tier_expiring"].enabled is False


@pytest.mark.parametrize(
    ("text", "offset"), [("30d", timedelta(days=30)), ("-1h", -timedelta(hours=1))]
)
def test_clock_offset_takes_signed_durations(text, offset):
    assert load_settings(schedule={"clock_offset": text}).schedule.clock_offset == offset
