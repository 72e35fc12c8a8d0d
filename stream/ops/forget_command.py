"""`forget`: erase customers (GDPR) through the workers, or record erasures done in
Ometria."""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import UTC, datetime
from pathlib import Path

from stream.ops.exit_codes import ExitCode
from stream.settings import get_settings


def forget_command(args: argparse.Namespace) -> int:
    """Publish erasures for the given customers, or record erasures done in Ometria."""
    from stream.ops.forget import ForgetRefused, confirm, forget, read_ids

    settings = get_settings()
    customer_ids = list(args.customer or [])
    if args.file:
        try:
            customer_ids += read_ids(Path(args.file).read_text().splitlines())
        except OSError as exc:
            print(f"forget: cannot read --file {args.file}: {exc.strerror}", file=sys.stderr)
            return ExitCode.USAGE
    if args.confirm_ometria:
        if args.dry_run:
            print("forget: --dry-run does not apply to --confirm-ometria", file=sys.stderr)
            return ExitCode.USAGE
        done = asyncio.run(confirm(settings, customer_ids))
        print(
            f"forget: confirmed {done.confirmed} erasures done in Ometria; "
            f"{done.not_pending} given ids had none pending (not erased by a worker yet, or "
            "confirmed already: see `status`)"
        )
        return ExitCode.OK
    try:
        erasures = asyncio.run(
            forget(settings, customer_ids, dry_run=args.dry_run, now=datetime.now(UTC))
        )
    except ForgetRefused as exc:
        print(f"forget: refused: {exc}", file=sys.stderr)
        return ExitCode.REFUSED
    if args.json:
        from stream.ops.reports import dumps, forget_document

        print(dumps(forget_document(erasures)))
        return ExitCode.OK
    verb = "would publish" if args.dry_run else "published"
    print(
        f"forget: {verb} {erasures.records} customer.erased records ({erasures.customers} "
        f"customers x {len(erasures.partitions)} partitions) to {erasures.topic} partitions "
        f"{', '.join(map(str, erasures.partitions))}"
    )
    if not args.dry_run:
        print(
            "forget: the workers erase each profile as they fold these; `status` then lists "
            "the erasures to do in Ometria"
        )
    return ExitCode.OK
