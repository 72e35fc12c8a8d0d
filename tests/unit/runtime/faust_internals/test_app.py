"""What stream.runtime.faust_internals.app assumes about how faust-streaming builds an app's
consumer and web server, one test each: an upgrade that changes any of it fails here."""

from __future__ import annotations

import inspect

import faust
from faust.app.base import App
from faust.transport.base import Transport
from faust.web.base import BlueprintManager

from stream.runtime.app import app
from stream.runtime.faust_internals.app import FeedingApp
from stream.runtime.faust_internals.feed import FeedingConsumer


def test_faust_builds_its_consumer_once_from_new_consumer():
    source = inspect.getsource(App.consumer.fget)  # type: ignore[attr-defined]
    assert "self._consumer = self._new_consumer()" in source


def test_faust_builds_its_consumer_with_the_arguments_the_feeding_consumer_gets():
    faust_own = inspect.getsource(App._new_consumer)
    ours = inspect.getsource(FeedingApp._new_consumer)
    for argument in (
        "callback=self.topics.on_message",
        "on_partitions_revoked=self._on_partitions_revoked",
        "on_partitions_assigned=self._on_partitions_assigned",
        "beacon=self.beacon",
    ):
        assert argument in faust_own, argument
        assert argument in ours, argument
    # The transport adds only its loop to them.
    assert "self.Consumer(self, callback=callback, loop=self.loop, **kwargs)" in (
        inspect.getsource(Transport.create_consumer)
    )


def test_faust_builds_its_web_server_from_new_web_with_the_configured_driver():
    # `web` is a mode cached_property: its function is not reachable, the class source is.
    web = 'def web(self) -> Web:\n        """Web driver."""\n        return self._new_web()'
    assert web in inspect.getsource(App)
    assert "web_drivers.by_url(self.conf.web)(self)" in inspect.getsource(App._new_web)


def test_a_web_servers_blueprints_are_the_enabled_list_it_mounts():
    assert BlueprintManager()._enabled == []
    source = inspect.getsource(BlueprintManager.apply)
    assert "for prefix, blueprint in self._enabled:" in source


def test_the_worker_app_feeds_the_fold_and_mounts_no_faust_view():
    assert isinstance(app, FeedingApp)
    assert isinstance(app, faust.App)
    assert app.events_feed is not None
    consumer = app._new_consumer()
    assert isinstance(consumer, FeedingConsumer)
    assert consumer.feed is app.events_feed
    assert app._new_web().blueprints._enabled == []
