"""Command line of the Ometria stand-in: `python -m stream sandbox [flags]`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Callable, Sequence
from typing import Final, TypeVar

from stream.ops.sandbox.config import (
    DEFAULT_API_KEY,
    OMETRIA_MAX_RECORD_BYTES,
    OMETRIA_MAX_RECORDS,
    SandboxConfig,
)
from stream.ops.sandbox.server import running_sandbox

_Number = TypeVar("_Number", int, float)

INSPECT_HINT: Final = "(inspect: /_sandbox/contacts, /_sandbox/events, /_sandbox/requests)"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the sandbox until SIGINT or SIGTERM; return the process exit code."""
    config = parse_config(argv)
    # A no-op when the caller (the stream CLI) has already configured logging.
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        asyncio.run(_serve(config))
    except OSError as exc:
        print(
            f"sandbox: cannot listen on {config.host}:{config.port}: {exc.strerror or exc}; "
            "pick another --port (0 picks a free one)",
            file=sys.stderr,
        )
        return 1
    return 0


def parse_config(argv: Sequence[str] | None = None) -> SandboxConfig:
    """Turn command-line flags into a `SandboxConfig`; exits with usage on bad flags."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return SandboxConfig(
            host=args.host,
            port=args.port,
            api_key=args.api_key,
            rate_limit=args.rate_limit,
            max_records=args.max_records,
            max_record_bytes=args.max_record_bytes,
            fail_next=args.fail_next,
            fail_status=args.fail_status,
            latency_ms=args.latency_ms,
            retry_after=args.retry_after,
            queue_size_remaining=args.queue_size_remaining,
        )
    except ValueError as exc:
        parser.error(str(exc))


async def _serve(config: SandboxConfig) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with running_sandbox(config) as base_url:
        print(f"sandbox: Ometria stand-in on {base_url} {INSPECT_HINT}", flush=True)
        await stop.wait()


def _at_least(minimum: float, kind: Callable[[str], _Number]) -> Callable[[str], _Number]:
    def convert(text: str) -> _Number:
        value = kind(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum:g}, got {text}")
        return value

    return convert


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m stream sandbox",
        description="Serve a local stand-in for Ometria's push API that enforces its rules.",
    )
    whole = _at_least(0, int)
    add = parser.add_argument
    add("--host", default="127.0.0.1", help="interface to listen on (default: %(default)s)")
    add("--port", type=whole, default=8085, help="port, 0 for a free one (default: %(default)s)")
    # The default is public and the help never shows the value, so a real key is never echoed.
    add("--api-key", default=DEFAULT_API_KEY, help="the X-Ometria-Auth value to accept")
    add(
        "--rate-limit",
        type=_at_least(0, float),
        default=4.0,
        help="push requests per second per account, 0 = off (default: %(default)s)",
    )
    add(
        "--max-records",
        type=_at_least(1, int),
        default=OMETRIA_MAX_RECORDS,
        help="records per request (default: %(default)s)",
    )
    add(
        "--max-record-bytes",
        type=_at_least(1, int),
        default=OMETRIA_MAX_RECORD_BYTES,
        help="compact JSON bytes per record (default: %(default)s)",
    )
    faults = parser.add_argument_group("faults (change at runtime with PUT /_sandbox/faults)")
    faults.add_argument(
        "--fail-next", type=whole, default=0, help="answer the next N pushes with --fail-status"
    )
    faults.add_argument(
        "--fail-status", type=whole, default=503, help="status for failed pushes (default: 503)"
    )
    faults.add_argument(
        "--latency-ms", type=_at_least(0, float), default=0.0, help="delay every push response"
    )
    faults.add_argument(
        "--retry-after", type=whole, default=None, help="send Retry-After: SECONDS with 429s"
    )
    faults.add_argument(
        "--queue-size-remaining",
        type=whole,
        default=None,
        help="send X-QueueSize-Remaining: N with accepted pushes",
    )
    return parser
