"""The Faust app's construction hooks: a consumer that feeds the fold, a web server without views.

Faust builds its consumer in `App._new_consumer` and its web server in `App._new_web` (the
`consumer` and `web` properties call them once); the app overrides both here.
"""

from __future__ import annotations

import faust
from faust.types import ConsumerT
from faust.web import Web
from faust.web.base import BlueprintManager
from faust.web.drivers import by_url

from stream.runtime.faust_internals.feed import FeedingConsumer, RecordFeed


class FeedingApp(faust.App):
    """A Faust app whose events topic's records feed the fold, with no built-in web views."""

    # The events topic's records, diverted from Faust's per-record path to the fold agent.
    events_feed: RecordFeed | None = None

    def _new_consumer(self) -> ConsumerT:
        # Faust's own construction (App._new_consumer), with the consumer that feeds the fold.
        consumer = FeedingConsumer(
            self.transport,
            callback=self.topics.on_message,
            loop=self.transport.loop,
            on_partitions_revoked=self._on_partitions_revoked,
            on_partitions_assigned=self._on_partitions_assigned,
            beacon=self.beacon,
        )
        consumer.feed = self.events_feed
        return consumer

    def _new_web(self) -> Web:
        web: Web = by_url(self.conf.web)(self)
        # Every blueprint Faust enables by default is one of its own views; ours are pages.
        web.blueprints = BlueprintManager()
        return web


__all__ = ["FeedingApp"]
