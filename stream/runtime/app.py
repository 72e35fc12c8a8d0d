"""The one Faust app, built from the settings; declares nothing else."""

from __future__ import annotations

import socket
from typing import cast

from stream.runtime.faust_internals.app import FeedingApp
from stream.runtime.faust_internals.feed import FeedingConsumer, RecordFeed
from stream.runtime.kafka_auth import faust_credentials
from stream.runtime.topic_configs import PRODUCER_MAX_REQUEST_BYTES
from stream.settings import Settings, get_settings


class LoyaltyApp(FeedingApp):
    """A Faust app whose web server serves only the views this project declares.

    Faust's built-in views answer without authentication: `/table/...` reads any table key (a
    customer's whole profile), `/router/...` shows the cluster, `/` and the debug views show
    internals. The settings below turn the flagged ones off; the production index at `/` has no
    flag, so the web driver is built without it (FeedingApp).
    """


def create_app(settings: Settings) -> LoyaltyApp:
    """A Faust app wired to the configured brokers, store and web port."""
    brokers = [
        f"kafka://{server.strip()}"
        for server in settings.kafka.bootstrap_servers.split(",")
        if server.strip()
    ]
    app = LoyaltyApp(
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
        # A profile is ~2.5 KB on the changelog: Faust's 16 KB producer batches would carry six
        # of them per request; bigger batches and a few milliseconds' linger cut the requests.
        producer_max_batch_size=256 * 1024,
        producer_linger=0.005,
        producer_max_request_size=PRODUCER_MAX_REQUEST_BYTES,
        # Commit a fold batch's offsets soon after it ends (Faust's default waits up to 2.8 s):
        # a worker that dies before it ever committed leaves its partitions to a takeover that
        # faust-streaming can stall on (the stall watchdog then restarts the worker).
        broker_commit_interval=0.5,
        # A crashed worker's partitions move on after this; Faust's own default is 60 s.
        broker_session_timeout=settings.kafka.session_timeout.total_seconds(),
        broker_heartbeat_interval=settings.kafka.session_timeout.total_seconds() / 10,
        # A worker that takes over a partition it kept a standby of reads only the changelog
        # records its standby had not applied yet, instead of the whole partition.
        table_standby_replicas=settings.kafka.standby_replicas,
        key_serializer="raw",
        value_serializer="raw",
        web_port=settings.web_port,
        # Listen on every interface (probes and scrapes come from outside the pod) but tell
        # other workers a name they can reach, for /profiles requests routed to a key's owner.
        web_bind="0.0.0.0",  # noqa: S104
        web_host=settings.web_host or socket.gethostname(),
        web_enabled=True,
        # No built-in view: none of them checks a token (see LoyaltyApp).
        web_router_enabled=False,
        web_tables_enabled=False,
        web_graph_enabled=False,
        web_stats_enabled=False,
        web_metrics_enabled=False,
    )
    # Fetched records waiting for the fold: a whole batch, on top of the one being folded.
    app.events_feed = RecordFeed(settings.topics.events, settings.fold.batch_size)
    return app


app = create_app(get_settings())


def app_feed() -> RecordFeed:
    """The feed of the events topic's records (set when the app is created)."""
    assert app.events_feed is not None
    return app.events_feed


def feeding_consumer() -> FeedingConsumer:
    """The app's consumer, which feeds the fold."""
    return cast(FeedingConsumer, app.consumer)
