"""The `customer_to_profile` table: customer id → profile (its JSON document, as bytes)."""

from __future__ import annotations

import faust

from stream.runtime.app import app
from stream.runtime.faust_internals import rocksdb as faust_rocksdb
from stream.runtime.faust_internals.recovery import install as install_bulk_recovery
from stream.runtime.kafka_auth import client_options
from stream.settings import get_settings

customer_to_profile = app.Table(
    "customer_to_profile",
    default=None,
    partitions=get_settings().topics.partition_count,
    # Raw bytes: the profile model reads and writes its JSON itself (in pydantic's compiled
    # core), several times faster than a dict through Faust's json codec. The bytes are the
    # same JSON document either way, so existing changelogs and stores read as before.
    # value_type decides the codec Faust uses when it recovers the table from the changelog;
    # the schema's, the one it writes with.
    value_type=bytes,
    schema=faust.Schema(
        key_type=str, key_serializer="raw", value_type=bytes, value_serializer="raw"
    ),
    help="Latest loyalty profile of every customer, keyed like the input topic.",
)

# Recovery reads the changelog in bulk, not record by record (see the module).
install_bulk_recovery(client_options(get_settings().kafka))
# Every partition's RocksDB shares one memory budget (see the module).
faust_rocksdb.install(get_settings().rocksdb)
