"""Golden cases: input events → the exact Ometria records expected, per preset or user mapping.

A case names a `"preset"`, a `"mapping_file"` (resolved next to the case; it wins over the
preset, as `STREAM_MAPPING__FILE` does), or both. Trigger options come from the mapping.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import orjson
import pytest

from stream.domain.batch_fold import fold_history
from stream.domain.declared import by_event_type
from stream.domain.events import parse_event
from stream.domain.mapping import load_mapping
from stream.domain.records import PRIVATE_KEYS
from stream.domain.sync import SyncRules
from stream.domain.triggers import TriggerConfig
from tests.support import paths

GOLDEN = paths.GOLDEN
# Time-based rules have cases of their own shape (tests/unit/domain/test_schedule_due.py).
CASES = sorted(p for p in GOLDEN.glob("*/*.json") if p.parent.name != "schedule")


def mapping_of(path: Path, case: dict):
    file = case.get("mapping_file")
    return load_mapping(case.get("preset", "rivo"), path.parent / file if file else None)


@pytest.mark.parametrize("path", CASES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_golden_case_produces_exactly_the_expected_records(path):
    case = orjson.loads(path.read_bytes())
    mapping = mapping_of(path, case)
    config = TriggerConfig(options=mapping.triggers, declared=by_event_type(mapping.declared))
    rules = SyncRules(mapping, "loyalty", config)
    now = datetime.fromisoformat(case["now"])
    events = [parse_event(orjson.dumps(doc)) for doc in case["events"]]
    # Through the batch fold the worker runs, one event a batch; the records as Ometria gets
    # them (the client drops the private keys, stream.ometria.client).
    _, queued = fold_history(events, rules, now)
    records = [{k: v for k, v in record.items() if k not in PRIVATE_KEYS} for record in queued]
    assert records == case["expected"]


@pytest.mark.parametrize("path", CASES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_golden_case_names_a_preset_or_an_existing_mapping_file(path):
    case = orjson.loads(path.read_bytes())
    assert "preset" in case or "mapping_file" in case
    if "mapping_file" in case:
        assert (path.parent / case["mapping_file"]).is_file()


def test_golden_cases_cover_every_preset_and_a_user_mapping():
    assert {p.parent.name for p in CASES} >= {"rivo", "loyaltylion", "user"}
    assert not [p for p in CASES if p.name.endswith(".mapping.json")]
