"""Where the pusher runs: inside the Faust worker, or alone as `python -m stream push`."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable
from typing import Any

import mode
from aiohttp import web

from stream.ometria.client import OmetriaClient
from stream.runtime.failstop import stop_before_commit
from stream.runtime.pusher import Pusher
from stream.runtime.secret_watch import CHECK_EVERY as PASSWORD_CHECK_EVERY
from stream.runtime.secret_watch import password_file_watch
from stream.settings import Settings

logger = logging.getLogger(__name__)

# SIGTERM lets the round in flight finish this long (Ometria may be down for hours); what is
# not committed by then is re-sent by the next owner.
STOP_GRACE = 10.0


def _client(settings: Settings) -> OmetriaClient:
    # From the settings: a key mounted from a file is re-read when the Secret rotates.
    return OmetriaClient.from_settings(settings.ometria)


class PusherService(mode.Service):
    """The pusher as a service of the Faust app: started and stopped with the worker."""

    def __init__(self, settings: Settings, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._settings = settings
        self.pusher: Pusher | None = None
        self._task: asyncio.Task[None] | None = None

    async def on_start(self) -> None:
        self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        try:
            async with _client(self._settings) as client:
                self.pusher = Pusher(self._settings, client)
                await self.pusher.start()
                try:
                    await self.pusher.run()
                finally:
                    await self.pusher.close()
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            # Nothing past the failed round was committed; the restart delivers it.
            stop_before_commit("the pusher cannot go on", exc)

    async def on_stop(self) -> None:
        await _stop(self.pusher, self._task)


async def _stop(pusher: Pusher | None, task: asyncio.Task[None] | None) -> None:
    if task is None:
        return
    if pusher is not None:
        pusher.stop_soon()
    done, _ = await asyncio.wait({task}, timeout=STOP_GRACE)
    if not done:
        task.cancel()
        await asyncio.wait({task})


async def run_alone(
    settings: Settings, port: int, probes: Callable[[Pusher], web.Application]
) -> int:
    """`python -m stream push`: the pusher, with the web app `probes` makes for it on `port`."""
    async with _client(settings) as client:
        pusher = Pusher(settings, client)
        runner = web.AppRunner(probes(pusher), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "0.0.0.0", port)  # noqa: S104 - probes come from outside
        await site.start()
        await pusher.start()
        task = asyncio.ensure_future(pusher.run())
        stop_requested = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop_requested.set)
        stopper = asyncio.ensure_future(stop_requested.wait())
        watcher = asyncio.ensure_future(_watch_password(settings))
        try:
            await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
            await _stop(pusher, task)
        finally:
            stopper.cancel()
            watcher.cancel()
            await pusher.close()
            await runner.cleanup()
    error = None if task.cancelled() else task.exception()
    if error is not None:
        logger.error("the pusher stopped: %s", error)
        return 70
    return 0


async def _watch_password(settings: Settings) -> None:
    """Stop cleanly (SIGTERM to this process) once the Kafka password file changes."""
    watch = password_file_watch(settings.kafka)
    if watch is None:
        return
    while True:
        await asyncio.sleep(PASSWORD_CHECK_EVERY)
        if watch.check():
            return
