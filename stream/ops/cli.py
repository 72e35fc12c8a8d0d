"""`python -m stream <command>`: the argument parser and the dispatch to each command, whose body
lives in the ops command module of its kind (service, dev, control, recovery, forget). Exit codes:
stream.ops.exit_codes (docs/operating.md#exit-codes)."""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import TypeAlias

from aiokafka.errors import KafkaError

import stream
from stream.errors import MappingError
from stream.ops.control_commands import pause_command, status_command
from stream.ops.dev_commands import sandbox_command, schemas_command, send_sample_command
from stream.ops.exit_codes import ExitCode
from stream.ops.forget_command import forget_command
from stream.ops.recovery_commands import backfill_command, redrive_command, replay_command
from stream.ops.service_commands import push_command, worker_command
from stream.settings import SettingsError, get_settings


def prepare_data_dir(path: Path) -> Path:
    """Create the data directory with its parents and check it takes files.

    Raises:
        SettingsError: the directory cannot be created or written, naming the setting to change.
    """
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise SettingsError(
            f"STREAM_DATA_DIR={path}: cannot create or write the data directory ({reason}); "
            "set STREAM_DATA_DIR to a writable directory (in Kubernetes, the volume that holds "
            "the table files)"
        ) from None
    return path


def _json_flag(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--json",
        action="store_true",
        help="with --dry-run: print one JSON object instead (counts, no customer ids)",
    )


# The subcommands of `python -m stream`, as argparse types them.
Commands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m stream",
        description="Loyalty events from Kafka to Ometria. Exit codes: 0 done, 1 refused (the "
        "message says why), 2 wrong arguments or settings, 3 Kafka unreachable or refusing, "
        '70 a worker or pusher stopped before committing (docs/operating.md "Exit codes").',
    )
    parser.add_argument(
        "--version", action="version", version=f"python -m stream {stream.__version__}"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("worker", help="run the stream processor").set_defaults(run=worker_command)
    commands.add_parser(
        "push",
        help="deliver the outbox to Ometria only (with STREAM_OMETRIA__PUSH_IN_WORKER=false)",
    ).set_defaults(run=push_command)
    sandbox = commands.add_parser("sandbox", help="run the local Ometria stand-in", add_help=False)
    sandbox.add_argument("rest", nargs=argparse.REMAINDER)
    sandbox.set_defaults(run=sandbox_command)
    sample = commands.add_parser("send-sample", help="send demo loyalty events")
    sample.add_argument(
        "--show-sandbox", metavar="URL", help="then wait for and print what the stand-in got"
    )
    sample.add_argument("--timeout", type=float, default=60.0)
    sample.set_defaults(run=send_sample_command)
    _add_redrive(commands)
    _add_backfill(commands)
    for name, doc in (
        ("pause", "pause pushing to Ometria on every worker (state keeps folding)"),
        ("resume", "resume pushing to Ometria; the outbox backlog drains coalesced"),
    ):
        commands.add_parser(name, help=doc).set_defaults(run=pause_command)
    status = commands.add_parser(
        "status",
        help="paused or not since when, outbox backlog, groups, last backfill, erasures to do "
        "in Ometria",
    )
    status.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object instead (counts, no customer ids)",
    )
    status.set_defaults(run=status_command)
    _add_forget(commands)
    _add_replay(commands)
    schemas = commands.add_parser(
        "schemas", help="regenerate the event JSON Schemas and Avro schemas"
    )
    schemas.add_argument("--out", default="schemas", help="directory (default: schemas)")
    schemas.set_defaults(run=schemas_command)
    return parser


def _add_redrive(commands: Commands) -> None:
    redrive = commands.add_parser(
        "redrive", help="re-publish dead letters after a fix (see --help for filters)"
    )
    redrive.add_argument(
        "which", choices=["events", "outbox"], help="loyalty.events.dlq or ometria.outbox.dlq"
    )
    redrive.add_argument("--error-class", help="only letters of this error class")
    redrive.add_argument("--reason", help="only letters whose reason contains this text")
    redrive.add_argument("--key", help="only letters with this record key (customer id)")
    redrive.add_argument("--since", help="only letters that failed at or after this ISO time")
    redrive.add_argument("--limit", type=int, help="at most this many letters")
    redrive.add_argument("--dry-run", action="store_true", help="list, publish nothing")
    _json_flag(redrive)
    redrive.add_argument(
        "--again",
        action="store_true",
        help="publish letters an earlier run published too (points may then count twice)",
    )
    redrive.set_defaults(run=redrive_command)


def _add_backfill(commands: Commands) -> None:
    backfill = commands.add_parser(
        "backfill", help="queue every known customer's contact for Ometria (Sync Customers)"
    )
    backfill.add_argument("--dry-run", action="store_true", help="count, queue nothing")
    _json_flag(backfill)
    backfill.add_argument(
        "--force", action="store_true", help="run even within the cooldown of the last backfill"
    )
    backfill.add_argument(
        "--customer",
        action="append",
        metavar="ID",
        help="only this customer (repeatable); not held by the cooldown",
    )
    backfill.set_defaults(run=backfill_command)


def _add_forget(commands: Commands) -> None:
    forget = commands.add_parser(
        "forget",
        help="erase customers (GDPR): publish customer.erased to every events partition",
    )
    forget.add_argument(
        "--customer", action="append", metavar="ID", help="a customer id (repeatable)"
    )
    forget.add_argument(
        "--file", metavar="PATH", help="customer ids, one a line (# comments, blank lines)"
    )
    forget.add_argument("--dry-run", action="store_true", help="count, publish nothing")
    _json_flag(forget)
    forget.add_argument(
        "--confirm-ometria",
        action="store_true",
        help="instead: record that these customers are erased in Ometria too",
    )
    forget.set_defaults(run=forget_command)


def _add_replay(commands: Commands) -> None:
    replay = commands.add_parser(
        "replay",
        help="rewind the workers to a point of the events topic (workers stopped), optionally "
        "rebuilding the table",
    )
    replay.add_argument(
        "--from",
        dest="start",
        required=True,
        metavar="earliest|TIME",
        help="earliest, or an ISO 8601 time (UTC unless it says otherwise)",
    )
    replay.add_argument(
        "--reset-state",
        action="store_true",
        help="discard the profile table so it is rebuilt from the events (with earliest)",
    )
    replay.add_argument("--dry-run", action="store_true", help="say what it would do")
    _json_flag(replay)
    replay.add_argument(
        "--follow", action="store_true", help="then show the workers' progress until done"
    )
    replay.set_defaults(run=replay_command)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["sandbox"]:
        return sandbox_command(argv[1:])
    args = build_parser().parse_args(argv)
    if getattr(args, "json", False) and not getattr(args, "dry_run", True):
        print(
            f"error: {args.command} --json needs --dry-run: only a dry run answers with one "
            "document (a real run reports as it goes)",
            file=sys.stderr,
        )
        return ExitCode.USAGE
    try:
        if args.command != "schemas":
            prepare_data_dir(get_settings().data_dir)
        result: int = args.run(args)
    except (SettingsError, MappingError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    except KafkaError as exc:
        # e.g. a wrong SASL password or an unreachable broker, before Faust starts.
        cause = f" (caused by {exc.__cause__!r})" if exc.__cause__ else ""
        print(
            f"error: cannot use Kafka at {get_settings().kafka.bootstrap_servers}: "
            f"{exc!r}{cause}; check STREAM_KAFKA__* settings",
            file=sys.stderr,
        )
        return ExitCode.KAFKA
    return result
