"""The one Faust app, built from the settings; declares nothing else."""

from __future__ import annotations

import socket

import faust

from stream.kafka_auth import faust_credentials
from stream.settings import Settings, get_settings


def create_app(settings: Settings) -> faust.App:
    """A Faust app wired to the configured brokers, store and web port."""
    brokers = [
        f"kafka://{server.strip()}"
        for server in settings.kafka.bootstrap_servers.split(",")
        if server.strip()
    ]
    return faust.App(
        settings.app_id,
        broker=brokers,
        broker_credentials=faust_credentials(settings.kafka),
        store=settings.store,
        datadir=str(settings.data_dir),
        autodiscover=False,
        processing_guarantee="at_least_once",
        # Every partition of the input must have a table partition (co-partitioning).
        topic_partitions=settings.topics.partition_count,
        topic_replication_factor=settings.topics.replication_factor,
        # A new consumer group starts from the oldest event: the table is the whole history.
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        # A crashed worker's partitions move on after this; Faust's own default is 60 s.
        broker_session_timeout=settings.kafka.session_timeout.total_seconds(),
        broker_heartbeat_interval=settings.kafka.session_timeout.total_seconds() / 10,
        key_serializer="raw",
        value_serializer="raw",
        web_port=settings.web_port,
        # Listen on every interface (probes and scrapes come from outside the pod) but tell
        # other workers a name they can reach, for /profiles requests routed to a key's owner.
        web_bind="0.0.0.0",  # noqa: S104
        web_host=settings.web_host or socket.gethostname(),
        web_enabled=True,
    )


app = create_app(get_settings())
