"""``offsetstream generate``: synthetic payer feeds and the ledger they must produce, contributed to the CLI as a
plugin of the ``offsetstream.cli_commands`` group so the operator application never imports the dev tools."""

import argparse
import asyncio
import json
from pathlib import Path
from typing import Any

from cli import options
from shared.settings import get_settings


class GenerateCommand:
    """The ``generate`` subcommand: ``add_parser`` declares it, ``run`` carries it out (exit status)."""

    name = "generate"

    def add_parser(self, sub: Any) -> None:
        _add_parser(sub)

    def run(self, args: argparse.Namespace) -> int:
        return _generate(args)


def _add_parser(sub: Any) -> None:
    gen = sub.add_parser(
        "generate",
        help="write synthetic payer feeds (835 + letters) and the ledger they must produce (expected.json)",
        description="--out DIR writes N tenants × M payers × K providers over D days; --check DIR compares "
        "DIR/expected.json with the ledger (read-only) and exits 1 on any difference. Feed the files in "
        "DIR/manifest.json order with OFFSETSTREAM_TODAY set to expected.json's 'today'.",
    )
    mode = gen.add_mutually_exclusive_group(required=True)
    mode.add_argument("--out", type=options.output_folder, help="folder to write the feed into")
    mode.add_argument(
        "--check",
        type=options.generated_feed,
        metavar="DIR",
        help="compare DIR/expected.json with the ledger",
    )
    gen.add_argument("--tenant", type=options.tenant_id, default=None, help="with --check: only this tenant")
    gen.add_argument("--tenants", type=options.bounded_int(1, 1000), default=2)
    gen.add_argument("--payers", type=options.bounded_int(1, 100), default=2)
    gen.add_argument("--providers", type=options.bounded_int(1, 1000), default=3)
    gen.add_argument("--days", type=options.bounded_int(1, 3660), default=30)
    gen.add_argument("--seed", type=options.bounded_int(0, 2**32 - 1), default=1)
    gen.add_argument(
        "--claims-per-remit",
        type=options.bounded_int(1, 100_000),
        default=10,
        help="ordinary claims per transaction",
    )


def _generate(args: argparse.Namespace) -> int:
    from devtools import generate

    if args.check is not None:
        return asyncio.run(_generate_check(args.check, args.tenant))
    spec = generate.Spec(
        tenants=args.tenants,
        payers=args.payers,
        providers=args.providers,
        days=args.days,
        seed=args.seed,
        claims_per_remit=args.claims_per_remit,
    )
    feed = generate.generate(spec, args.out)
    expected = json.loads((args.out / "expected.json").read_text())
    for tenant, figures in expected["tenants"].items():
        print(
            f"{tenant}: {figures['remittances']} remittances, {figures['claim_payments']} claim payments, "
            f"{sum(figures['plb_pairs_by_bucket'].values())} PLB pairs, {len(figures['receivables'])} receivables"
        )
    print(
        f"{len(feed)} files to feed in {args.out / 'manifest.json'} order; OFFSETSTREAM_TODAY={expected['today']}"
    )
    return 0


async def _generate_check(folder: Path, tenant: str | None) -> int:
    from devtools import generate
    from shared import db

    conn = await db.connect(get_settings())
    try:
        problems = await generate.compare(conn, folder, tenant)
    finally:
        await conn.close()
    for line in problems:
        print(line)
    print("ledger equals expected.json" if not problems else f"{len(problems)} difference(s)")
    return 1 if problems else 0
