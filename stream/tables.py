"""The `customer_to_profile` table: customer id → profile (a JSON-able dict)."""

from __future__ import annotations

import faust

from stream.app import app
from stream.settings import get_settings

customer_to_profile = app.Table(
    "customer_to_profile",
    default=None,
    partitions=get_settings().topics.partition_count,
    schema=faust.Schema(key_type=str, key_serializer="raw", value_serializer="json"),
    help="Latest loyalty profile of every customer, keyed like the input topic.",
)
