"""HTTP face of the Ometria stand-in: aiohttp routes over `SandboxState`, and a test runner.

Ometria's API lives under `/v2/push`; inspection and fault control live under `/_sandbox/`
and need no key. Handlers only translate between HTTP and the state.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Final

import orjson
from aiohttp import web

from stream.ops.sandbox.config import SandboxConfig
from stream.ops.sandbox.state import Clock, InvalidFaults, Reply, SandboxState

SANDBOX_STATE: Final = web.AppKey("sandbox_state", SandboxState)
AUTH_HEADER: Final = "X-Ometria-Auth"

# Ometria documents no whole-request limit (docs/ometria-contract.md#limits); allow every legal
# batch with room to spare, so oversized records reach the per-record check instead of a 413.
_BODY_HEADROOM: Final = 2
_MIN_BODY_BYTES: Final = 1024 * 1024


def build_app(config: SandboxConfig, *, clock: Clock = time.monotonic) -> web.Application:
    """Build the sandbox application with fresh state.

    Args:
        config: listening address (unused here), limits and starting faults.
        clock: monotonic seconds for the rate limit and fault windows; tests pass a fake one.
    """
    body_limit = max(_MIN_BODY_BYTES, _BODY_HEADROOM * config.max_records * config.max_record_bytes)
    app = web.Application(client_max_size=body_limit)
    app[SANDBOX_STATE] = SandboxState(config, clock=clock)
    app.router.add_post("/v2/push", _push)
    app.router.add_get("/v2/push/_errors", _push_errors)
    app.router.add_get("/_sandbox/contacts", _contacts)
    app.router.add_get("/_sandbox/events", _events)
    app.router.add_get("/_sandbox/requests", _requests)
    app.router.add_get("/_sandbox/stats", _stats)
    app.router.add_post("/_sandbox/reset", _reset)
    app.router.add_get("/_sandbox/faults", _get_faults)
    app.router.add_put("/_sandbox/faults", _put_faults)
    app.router.add_delete("/_sandbox/faults", _delete_faults)
    app.router.add_get("/healthz", _healthz)
    return app


@asynccontextmanager
async def running_sandbox(
    config: SandboxConfig | None = None, *, clock: Clock = time.monotonic
) -> AsyncIterator[str]:
    """Serve the sandbox in this event loop and yield its base URL, e.g. `http://127.0.0.1:41234`.

    Without a config it listens on a free port of 127.0.0.1 with default limits; with one it
    binds `config.host` and `config.port` (pass `port=0` for a free port).
    """
    config = config or SandboxConfig(port=0)
    runner = web.AppRunner(build_app(config, clock=clock), access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, config.host, config.port).start()
        port = runner.addresses[0][1]
        host = f"[{config.host}]" if ":" in config.host else config.host
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


async def _push(request: web.Request) -> web.Response:
    try:
        raw: bytes | None = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raw = None
    reply = request.app[SANDBOX_STATE].push(request.headers.get(AUTH_HEADER), raw)
    if reply.delay_seconds > 0:
        await asyncio.sleep(reply.delay_seconds)
    return _respond(reply)


async def _push_errors(request: web.Request) -> web.Response:
    return _respond(request.app[SANDBOX_STATE].errors(request.headers.get(AUTH_HEADER)))


async def _contacts(request: web.Request) -> web.Response:
    contacts = request.app[SANDBOX_STATE].contacts(
        listing_id=request.query.get("id"), collection=request.query.get("collection")
    )
    return _json({"contacts": contacts})


async def _events(request: web.Request) -> web.Response:
    events = request.app[SANDBOX_STATE].events(
        event_id=request.query.get("id"), event_type=request.query.get("event_type")
    )
    return _json({"events": events})


async def _requests(request: web.Request) -> web.Response:
    return _json({"requests": request.app[SANDBOX_STATE].requests()})


async def _stats(request: web.Request) -> web.Response:
    return _json(request.app[SANDBOX_STATE].stats())


async def _reset(request: web.Request) -> web.Response:
    faults = request.query.get("faults", "").lower() in {"1", "true", "yes"}
    request.app[SANDBOX_STATE].reset(faults=faults)
    return _json({"status": "OK", "faults_cleared": faults})


async def _get_faults(request: web.Request) -> web.Response:
    return _json(request.app[SANDBOX_STATE].faults_json())


async def _put_faults(request: web.Request) -> web.Response:
    state = request.app[SANDBOX_STATE]
    try:
        state.change_faults(orjson.loads(await request.read()))
    except orjson.JSONDecodeError as exc:
        return _json({"status": "ERROR", "message": f"Body is not valid JSON: {exc}"}, 400)
    except InvalidFaults as exc:
        return _json({"status": "ERROR", "message": str(exc)}, 400)
    return _json(state.faults_json())


async def _delete_faults(request: web.Request) -> web.Response:
    state = request.app[SANDBOX_STATE]
    state.clear_faults()
    return _json(state.faults_json())


async def _healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok")


def _respond(reply: Reply) -> web.Response:
    return _json(reply.body, reply.status, dict(reply.headers))


def _json(body: object, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        body=orjson.dumps(body), status=status, headers=headers, content_type="application/json"
    )
