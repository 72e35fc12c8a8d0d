"""Golden cases: input events → the exact Ometria records expected, per preset."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import orjson
import pytest

from stream.events import parse_event
from stream.ometria.mapping import load_preset
from stream.sync import SyncRules, sync_event
from stream.triggers import TriggerConfig

GOLDEN = Path(__file__).parents[2] / "golden"
CASES = sorted(GOLDEN.glob("*/*.json"))


@pytest.mark.parametrize("path", CASES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_golden_case_produces_exactly_the_expected_records(path):
    case = orjson.loads(path.read_bytes())
    rules = SyncRules(load_preset(case["preset"]), "loyalty", TriggerConfig())
    now = datetime.fromisoformat(case["now"])
    profile, records = None, []
    for doc in case["events"]:
        outcome = sync_event(profile, parse_event(orjson.dumps(doc)), rules, now)
        profile = outcome.profile
        records.extend(outcome.records)
    assert records == case["expected"]


def test_golden_cases_cover_every_preset():
    assert {p.parent.name for p in CASES} >= {"rivo", "loyaltylion"}
