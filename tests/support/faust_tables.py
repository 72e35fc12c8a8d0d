"""A Faust app with the worker's profile table (raw bytes values), on a store of the test's."""

from __future__ import annotations

from pathlib import Path

import faust


def profile_table(
    name: str, store: str, data_dir: Path, *, partitions: int = 1, raw_app: bool = False
) -> tuple[faust.App, object]:
    """The app and its `customer_to_profile` table.

    `raw_app`: the app's own key and value serializers are raw too, as the worker's app
    (stream.runtime.app) has them; otherwise Faust's defaults (JSON keys).
    """
    serializers = {"key_serializer": "raw", "value_serializer": "raw"} if raw_app else {}
    app = faust.App(name, store=store, datadir=str(data_dir), **serializers)
    table = app.Table(
        "customer_to_profile",
        default=None,
        partitions=partitions,
        value_type=bytes,
        schema=faust.Schema(
            key_type=str, key_serializer="raw", value_type=bytes, value_serializer="raw"
        ),
    )
    return app, table
