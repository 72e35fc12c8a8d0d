"""The worker's start-up wiring, in one function: the settings in force, the mapping and its
rules, the last replay's marks, and everything the worker runs declared on the app.

Faust declares agents, timers and signal handlers on the module-level app (stream.runtime.app),
and that app reads the settings as it is built: the settings are put in force first, then the
objects the fold, the scan and the watchdogs share are built here and handed to each.
"""

from __future__ import annotations

from collections.abc import Mapping

import faust

from stream.domain.batch_fold import FoldMarks
from stream.domain.mapping import load_mapping
from stream.settings import Settings, use_settings


def declare_worker(
    settings: Settings, replayed_until: Mapping[int, int], version_generation: int
) -> faust.App:
    """Declare the worker on the app with `settings` in force; return the app to run.

    Args:
        settings: the settings the worker runs with (the topics' partition count as found).
        replayed_until: input partition -> its end offset when the last replay ran.
        version_generation: the last replay's contact version generation (0 if none).
    """
    use_settings(settings)
    # Imported here, after the settings: the app, its topics and tables read them as built.
    from stream.runtime import agents, heap, ometria_jobs, scanner, watchdogs  # noqa: F401
    from stream.runtime.app import app
    from stream.runtime.fold_config import FoldConfig
    from stream.runtime.tables import customer_to_profile

    mapping = load_mapping(settings.mapping.preset, settings.mapping.file)
    marks = FoldMarks(dict(replayed_until), version_generation)
    fold = FoldConfig.build(settings, mapping, marks, app, customer_to_profile)
    agents.declare(app, fold)
    scanner.declare(app, fold.store, scanner.schedule_of(mapping, settings))
    watchdogs.declare(app, fold)
    heap.declare(app)
    return app
