"""docs/going-live.md names everything to create in Ometria for what the service sends."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from stream.domain.mapping import load_mapping
from stream.domain.records import CONTACT_BUILTINS
from stream.domain.schedule import SCHEDULE_RULES
from stream.domain.triggers import RULE_PROPERTIES
from stream.settings import ENV_PREFIX, Settings

ROOT = Path(__file__).resolve().parents[2]
GUIDE = (ROOT / "docs" / "going-live.md").read_text(encoding="utf-8")
PRESETS = ("rivo", "loyaltylion")


def table_column(heading: str) -> list[str]:
    """The first column's `names` of the table under a heading."""
    section = GUIDE.split(f"### {heading}", 1)[1].split("\n#", 1)[0]
    return re.findall(r"^\| `([^`]+)` \|", section, re.MULTILINE)


@pytest.mark.parametrize("preset", PRESETS)
def test_guide_lists_each_presets_custom_fields(preset):
    mapping = load_mapping(preset, None)
    custom = [rule.target for rule in mapping.contact.fields if rule.target not in CONTACT_BUILTINS]
    heading = f"Custom fields: the `{preset}` preset"
    assert table_column(heading) == custom


def test_guide_lists_every_custom_event_type_with_its_properties():
    rows = dict(
        re.findall(
            r"^\| `([a-z_]+)` \| (.+) \|$",
            GUIDE.split("### Custom event types", 1)[1].split("\n## ", 1)[0],
            re.MULTILINE,
        )
    )
    expected = {**{name: set(props) for name, props in RULE_PROPERTIES.items()}}
    for name, props in SCHEDULE_RULES.items():
        expected[name] = expected.get(name, set()) | set(props)
    assert rows.keys() == expected.keys()
    for name, properties in expected.items():
        assert set(re.findall(r"`([a-z_]+)`", rows[name])) == properties, name
        assert len(name) <= 32


def test_guide_names_only_real_settings():
    named = set(re.findall(rf"\b({ENV_PREFIX}[A-Z_]+)\b", GUIDE))
    assert named
    for variable in named:
        parts = variable.removeprefix(ENV_PREFIX).lower().split("__")
        model = Settings
        for part in parts[:-1]:
            model = model.model_fields[part].annotation  # type: ignore[assignment]
        assert parts[-1] in model.model_fields, variable


def test_guide_names_the_opt_in_make_run_checks():
    guard = (ROOT / "deploy" / "local" / "ometria_guard.sh").read_text(encoding="utf-8")
    assert "LOYALTY_RUN_REAL_OMETRIA=yes" in GUIDE
    assert '"${LOYALTY_RUN_REAL_OMETRIA:-}" == "yes"' in guard
