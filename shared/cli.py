"""``offsetstream``: the command line of staff and operators.

offsetstream run [--keep] [--examples DIR] [--tenant T]   the embedded demo (``make run``)
offsetstream ingest PATH... [--tenant T] [--format F]      publish payer files to the intake topic
offsetstream parse FILE [--tenant T]                       print the events a file would produce (no Kafka)
offsetstream reconcile [--tenant T]                        print the reconciliation from the ledger
offsetstream db migrate | topics create                    prepare PostgreSQL / Kafka
"""

import argparse
import asyncio
import hashlib
import json
import sys
from pathlib import Path

from shared.settings import REPO_ROOT, get_settings


def _parse_file(path: Path, tenant: str, format_hint: str | None) -> int:
    from services.intake import domain
    from shared import plugins
    from shared.feeds import FeedError

    content = path.read_bytes()
    parsers = plugins.load_plugins(plugins.FEED_PARSERS)
    parser = domain.choose_parser(parsers, content, path.name, format_hint)
    if isinstance(parser, FeedError):
        print(json.dumps({"error": str(parser), "location": parser.location()}))
        return 1
    failed = 0
    sha = hashlib.sha256(content).hexdigest()
    for result in parser.parse(content, file_name=path.name, file_sha256=sha, tenant_id=tenant):
        if isinstance(result, FeedError):
            failed += 1
            print(
                json.dumps(
                    {"error": str(result), "reason": result.reason.value, "location": result.location()}
                )
            )
            continue
        for topic, env in domain.remittance_events(tenant, result):
            print(json.dumps({"topic": topic, "event": json.loads(env.model_dump_json())}))
    return 1 if failed else 0


async def _reconcile(tenant: str) -> int:
    from shared import db, report

    conn = await db.connect(get_settings())
    try:
        print(report.render(await report.reconciliation(conn, tenant)))
    finally:
        await conn.close()
    return 0


async def _migrate() -> int:
    from shared import db

    conn = await db.connect(get_settings())
    try:
        applied = await db.migrate(conn)
    finally:
        await conn.close()
    print(f"applied {len(applied)} migration(s): {', '.join(applied) or 'none pending'}")
    return 0


async def _topics() -> int:
    from shared import admin

    created = await admin.create_topics(get_settings())
    print(f"created {len(created)} topic(s): {', '.join(created) or 'all present'}")
    return 0


async def _ingest(paths: list[Path], tenant: str, format_hint: str | None) -> int:
    from shared import admin

    files = admin.files_under(paths)
    count = await admin.publish_files(get_settings(), files, tenant, format_hint=format_hint)
    print(f"published {count} file(s) to remit.intake.v1 for tenant {tenant}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for tests)."""
    settings = get_settings()
    parser = argparse.ArgumentParser(
        prog="offsetstream", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="start everything locally, feed the examples, print the reconciliation")
    run.add_argument("--keep", action="store_true", help="keep the stack running after the report")
    run.add_argument("--examples", type=Path, default=REPO_ROOT / "examples" / "835")
    run.add_argument("--tenant", default="demo-clinic")
    ingest = sub.add_parser("ingest", help="publish payer files (or folders of them) to the intake topic")
    ingest.add_argument("paths", nargs="+", type=Path)
    ingest.add_argument("--tenant", default=settings.default_tenant)
    ingest.add_argument("--format", dest="format_hint", default=None, help="feed parser name, e.g. x12_835")
    parse = sub.add_parser("parse", help="print as JSON lines the events a file would produce (no Kafka)")
    parse.add_argument("file", type=Path)
    parse.add_argument("--tenant", default=settings.default_tenant)
    parse.add_argument("--format", dest="format_hint", default=None)
    reconcile = sub.add_parser("reconcile", help="print the reconciliation of a tenant from the ledger")
    reconcile.add_argument("--tenant", default=settings.default_tenant)
    dbp = sub.add_parser("db", help="database administration")
    dbp.add_argument("action", choices=["migrate"])
    topics = sub.add_parser("topics", help="Kafka topic administration")
    topics.add_argument("action", choices=["create"])
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``offsetstream`` command."""
    args = build_parser().parse_args(argv)
    if args.command == "run":
        from shared.runner import run_demo

        try:
            return asyncio.run(run_demo(args.examples, args.tenant, args.keep))
        except KeyboardInterrupt:
            return 130
    if args.command == "parse":
        return _parse_file(args.file, args.tenant, args.format_hint)
    if args.command == "ingest":
        return asyncio.run(_ingest(args.paths, args.tenant, args.format_hint))
    if args.command == "reconcile":
        return asyncio.run(_reconcile(args.tenant))
    if args.command == "db":
        return asyncio.run(_migrate())
    return asyncio.run(_topics())


if __name__ == "__main__":
    sys.exit(main())
