"""What the fold agent, the trigger scan and the watchdogs share, built once at start-up.

stream.runtime.worker.declare_worker builds one `FoldConfig` and hands it to each of them: the
settings and rules in force, the last replay's marks, the profile store and the watches the
fold keeps for the watchdogs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from stream.domain.batch_fold import FoldMarks
from stream.domain.intake import EventWindow
from stream.domain.mapping import MappingFile
from stream.domain.sync import SyncRules
from stream.domain.wire import WireFormat
from stream.runtime.erasures import ErasureIndex
from stream.runtime.profile_store import ProfileStore
from stream.runtime.skips import BatchProgress, SkipWatch
from stream.settings import Settings


@dataclass(frozen=True, slots=True)
class FoldConfig:
    """The fold's settings, rules and shared state (one per worker)."""

    settings: Settings
    mapping: MappingFile
    rules: SyncRules
    marks: FoldMarks
    store: ProfileStore
    # Every erasure on record (stream.runtime.erasures), caught up on every assignment before
    # a record is folded: an erasure another worker recorded holds here from the first record.
    erasures: ErasureIndex
    window: EventWindow
    wire: WireFormat
    skip_watch: SkipWatch = field(default_factory=SkipWatch)
    batch_progress: BatchProgress = field(default_factory=BatchProgress)

    @classmethod
    def build(
        cls, settings: Settings, mapping: MappingFile, marks: FoldMarks, app: Any, table: Any
    ) -> FoldConfig:
        """The fold's configuration from the settings, the mapping and the replay's marks."""
        store = ProfileStore(app, table, settings.topics.outbox, settings.fold.profile_cache)
        return cls(
            settings=settings,
            mapping=mapping,
            rules=SyncRules.from_settings(settings, mapping),
            marks=marks,
            store=store,
            erasures=ErasureIndex(settings),
            window=EventWindow.from_settings(settings),
            wire=WireFormat.from_settings(settings),
        )
