"""One error root: every error loyalty-stream raises on purpose is a LoyaltyStreamError, and
the tree in stream/errors.py's docstring is the real one."""

from __future__ import annotations

import re

import pytest

import stream.errors
from stream.domain.conditions import ConditionError
from stream.domain.dlq import LetterTooLarge
from stream.domain.events import InvalidEvent
from stream.domain.mapping import load_mapping
from stream.domain.triggers import TriggerOptionsError
from stream.errors import ConfigurationError, LoyaltyStreamError, MappingError
from stream.ometria.errors import (
    Misconfigured,
    Misdirected,
    OmetriaError,
    Permanent,
    Retryable,
    Unauthorized,
)
from stream.ops.replay import ReplayRefused
from stream.runtime.control import UnreadableControlRecord
from stream.runtime.outbox_progress import UnreadableProgress
from stream.runtime.pusher_versions import PusherStopped
from stream.runtime.reading import IncompleteRead
from stream.settings import SettingsError, load_settings

CLASSES = {
    cls.__name__: cls
    for cls in (
        LoyaltyStreamError,
        ConfigurationError,
        SettingsError,
        MappingError,
        ConditionError,
        TriggerOptionsError,
        LetterTooLarge,
        InvalidEvent,
        OmetriaError,
        Retryable,
        Misconfigured,
        Unauthorized,
        Misdirected,
        Permanent,
        IncompleteRead,
        PusherStopped,
        UnreadableProgress,
        UnreadableControlRecord,
        ReplayRefused,
    )
}


def documented_tree() -> dict[str, str]:
    """Class name -> the name of its parent, read from the docstring's drawing."""
    parents: dict[str, str] = {}
    stack: list[tuple[int, str]] = []
    for line in (stream.errors.__doc__ or "").splitlines():
        match = re.match(r"^([│ ]*(?:[├└]── )?)([A-Z]\w+)\b", line)
        if not match:
            continue
        depth, name = len(match.group(1)), match.group(2)
        while stack and stack[-1][0] >= depth:
            stack.pop()
        if stack:
            parents[name] = stack[-1][1]
        stack.append((depth, name))
    return parents


def test_the_docstring_tree_is_the_class_hierarchy():
    tree = documented_tree()
    assert set(tree) | {"LoyaltyStreamError"} == set(CLASSES)
    for name, parent in tree.items():
        assert CLASSES[name].__bases__ == (CLASSES[parent],), name


def test_a_bad_setting_and_a_bad_mapping_are_both_configuration_errors(tmp_path):
    with pytest.raises(ConfigurationError):
        load_settings(web_port="not a port")
    bad = tmp_path / "mapping.toml"
    bad.write_text('extends = "no-such-preset"\n')
    with pytest.raises(ConfigurationError):
        load_mapping(None, bad)
