"""The sync rules are built from a settings object (no import-time state needed)."""

from __future__ import annotations

from datetime import timedelta

from stream.domain.mapping import load_mapping
from stream.domain.sync import SyncRules
from stream.domain.triggers import RewardCost
from stream.settings import load_settings


def test_rules_take_every_trigger_setting_and_the_mapping_s_options():
    settings = load_settings(
        ometria={"collection": "shop-eu"},
        triggers={
            "tier_order": ["Low", "High"],
            "horizon": timedelta(hours=3),
            "disabled": ["loyalty_tier_changed"],
            "rewards": {"voucher": 500},
        },
        events={"future_skew": timedelta(minutes=1)},
    )
    mapping = load_mapping("rivo", None)
    rules = SyncRules.from_settings(settings, mapping)
    assert rules.mapping is mapping
    assert rules.collection == "shop-eu"
    triggers = rules.triggers
    assert triggers.tier_order == ("Low", "High")
    assert triggers.horizon == timedelta(hours=3)
    assert triggers.future_skew == timedelta(minutes=1)
    assert triggers.disabled == frozenset({"loyalty_tier_changed"})
    assert triggers.rewards == (RewardCost("voucher", 500),)
    assert triggers.options == mapping.triggers
