"""The Ometria stand-in, in this process, with a log of when each custom event was accepted."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime

import orjson
from aiohttp import web

from bench.procs import API_KEY
from stream.ops.sandbox import SandboxConfig, build_app
from stream.ops.sandbox.server import SANDBOX_STATE
from stream.ops.sandbox.state import SandboxState


@dataclass
class Acceptances:
    """Event time → accepted, for every custom event in a 202 answer (contacts carry no time)."""

    latencies: list[float] = field(default_factory=list)
    recording: bool = False

    async def on_response(self, request: web.Request, response: web.StreamResponse) -> None:
        if not self.recording or request.path != "/v2/push" or response.status != 202:
            return
        now = datetime.now(UTC)
        body = orjson.loads(await request.read())  # cached: the handler read it already
        for record in body:
            if record.get("@type") == "custom_event":
                at = datetime.fromisoformat(record["timestamp"])
                self.latencies.append((now - at).total_seconds())


@dataclass
class Sandbox:
    url: str
    state: SandboxState
    acceptances: Acceptances


@asynccontextmanager
async def running(rate_limit: float) -> AsyncIterator[Sandbox]:
    """Serve the stand-in on a free port of 127.0.0.1 (rate_limit 0 = no limit)."""
    app = build_app(SandboxConfig(port=0, api_key=API_KEY, rate_limit=rate_limit))
    acceptances = Acceptances()
    app.on_response_prepare.append(acceptances.on_response)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        port = runner.addresses[0][1]
        yield Sandbox(f"http://127.0.0.1:{port}", app[SANDBOX_STATE], acceptances)
    finally:
        await runner.cleanup()
