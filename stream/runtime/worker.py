"""The worker's start-up wiring, in one function: the settings in force, the mapping and its
rules, the last replay's marks, and everything the worker runs declared on the app.

Faust declares agents, timers and signal handlers on the module-level app (stream.runtime.app)
as their modules are imported, and that app reads the settings as it is built: the settings are
put in force first, and the fold and the scan get their mapping before the worker starts.
"""

from __future__ import annotations

from collections.abc import Mapping

import faust

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
    # Imported here, after the settings: importing them declares them on the app.
    from stream.runtime import agents, ometria_jobs, scanner, watchdogs  # noqa: F401
    from stream.runtime.app import app

    mapping = load_mapping(settings.mapping.preset, settings.mapping.file)
    agents.configure(mapping, replayed_until, version_generation)
    scanner.configure(mapping)
    return app
