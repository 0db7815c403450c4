"""``offsetstream``: the command line of staff and operators.

offsetstream run [--keep] [--examples DIR] [--tenant T]   the embedded demo (``make run``)
offsetstream ingest PATH... [--tenant T] [--format F]      publish payer files to the intake topic
offsetstream parse FILE [--tenant T]                       print the events a file would produce (no Kafka)
offsetstream reconcile [--tenant T]                        print the reconciliation from the ledger
offsetstream files [--tenant T] [--json]                   payer files received, and what each one posted
offsetstream files --replay SHA256 [--tenant T]            ask intake to process a kept file again (its rejects)
offsetstream watch FOLDER [--tenant T] [--interval S]      publish files dropped into a folder (SFTP inbox)
offsetstream dlt list [--topic T] [--limit N] [--json]     rejected input: why, and where in the file
offsetstream dlt show P:O [--content | --raw]              one rejected record (body only when asked)
offsetstream dlt replay [--reason R | P:O ... | --all]     send rejected input back once the cause is fixed
offsetstream db migrate | topics create                    prepare PostgreSQL / Kafka
offsetstream generate --out DIR [--tenants N ...]         synthetic payer feeds + expected.json (load tests)
offsetstream generate --check DIR [--tenant T]             compare a generated feed's expected.json with the DB
(staff commands — receivables, receivable, unmatched, remittance, letter, action, ledger — see cli/staff.py;
 console users — user add|list|disable — see cli/users.py)
"""

import argparse
import asyncio
import hashlib
import json
import os
import socket
import sys
from pathlib import Path
from typing import Any

from cli import dlt_commands, options, phi_commands, report, staff, users, work_items
from contracts.topics import INTAKE
from shared.settings import REPO_ROOT, Settings, get_settings


def _parse_file(path: Path, tenant: str, format_hint: str | None) -> int:
    """``offsetstream parse``: see :func:`_print_file_events`."""
    try:
        return _print_file_events(path, tenant, format_hint)
    except BrokenPipeError:  # `offsetstream parse FILE | head`: the reader has seen enough
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _print_file_events(path: Path, tenant: str, format_hint: str | None) -> int:
    """Print a file's events, each transaction's reader warnings (``{"warning": …}`` lines) and its errors; a
    parser that can stream (``parse_stream``) reads it 1 MiB at a time, so a large file never sits in memory
    (a first pass computes the SHA-256 every remittance carries)."""
    from collections.abc import Iterator

    from services.intake import domain
    from services.intake.feeds import FeedError, ParsedRemittance
    from shared import plugins

    def blocks() -> Iterator[bytes]:
        with path.open("rb") as handle:
            while block := handle.read(1 << 20):
                yield block

    digest = hashlib.sha256()
    head = b""
    for block in blocks():
        head = head or block[:4096]
        digest.update(block)
    sha = digest.hexdigest()
    parsers = plugins.load_plugins(plugins.FEED_PARSERS)
    parser = domain.choose_parser(parsers, head, path.name, format_hint)
    if isinstance(parser, FeedError):
        print(json.dumps({"error": str(parser), "location": parser.location()}))
        return 1
    stream = getattr(parser, "parse_stream", None)
    results: Iterator[ParsedRemittance | FeedError] = (
        stream(blocks(), file_name=path.name, file_sha256=sha, tenant_id=tenant)
        if callable(stream)
        else parser.parse(path.read_bytes(), file_name=path.name, file_sha256=sha, tenant_id=tenant)
    )
    failed = 0
    for result in results:
        if isinstance(result, FeedError):
            failed += 1
            print(
                json.dumps(
                    {"error": str(result), "reason": result.reason.value, "location": result.location()}
                )
            )
            continue
        index = result.remittance.transaction_index
        st02 = result.remittance.transaction_control_number
        for warning in result.warnings:
            print(json.dumps({"warning": warning, "transaction_index": index, "st02": st02}))
        for topic, env in domain.remittance_events(tenant, result):
            print(json.dumps({"topic": topic.name, "event": json.loads(env.model_dump_json())}))
    return 1 if failed else 0


async def _reconcile(tenant: str) -> int:
    from cli import report
    from shared import clock, db

    settings = get_settings()
    async with db.staff_connection(settings, tenant) as conn:  # this tenant's rows only (RLS)
        print(report.render(await report.reconciliation(conn, tenant), tenant, clock.today(settings)))
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
    from shared import kafka

    created = await kafka.create_topics(get_settings())
    print(f"created {len(created)} topic(s): {', '.join(created) or 'all present'}")
    return 0


async def _ingest(paths: list[Path], tenant: str, format_hint: str | None) -> int:
    from services.intake import publish

    files = publish.files_under(paths)
    settings = get_settings()
    try:
        count = await publish.publish_files(settings, files, tenant, format_hint=format_hint)
    except publish.FileRefused as refused:
        print(refused, file=sys.stderr)
        return 1
    routed = (
        f" (X12 transactions routed by payee: {settings.payee_directory})" if settings.payee_directory else ""
    )
    print(f"published {count} file(s) to {INTAKE.name} for tenant {tenant}{routed}")
    print(
        "intake reads them next: `offsetstream files` shows what each posted; a file or transaction it "
        "rejects shows there as REJECTED and in `offsetstream dlt list` (why, and where in the file)"
    )
    return 0


FILES_SQL = """SELECT f.file_name, f.sha256, f.feed, f.source, f.size_bytes, f.transactions, f.rejected,
        f.duplicates, f.received_at, count(r.sha256) FILTER (WHERE r.kind = 'copy') AS copies_received,
        max(r.received_at) FILTER (WHERE r.kind = 'copy') AS last_copy_at,
        count(r.sha256) FILTER (WHERE r.kind = 'replayed') AS replays,
        max(r.received_at) FILTER (WHERE r.kind = 'replayed') AS last_replay_at,
        (SELECT coalesce(array_agg('ST02 ' || m.st02 || ': ' || w ORDER BY m.st02), '{}')
           FROM intake.remittances m CROSS JOIN LATERAL unnest(m.warnings) AS w
          WHERE m.tenant_id = f.tenant_id AND m.file_sha256 = f.sha256) AS warnings
    FROM intake.files f
    LEFT JOIN intake.file_receipts r
           ON r.tenant_id = f.tenant_id AND r.sha256 = f.sha256 AND r.kind IN ('copy', 'replayed')
    WHERE f.tenant_id = $1
    GROUP BY f.tenant_id, f.sha256
    ORDER BY f.received_at DESC, f.file_name LIMIT $2"""


async def fetch_files(settings: Settings, tenant: str, limit: int = 100) -> list[dict[str, Any]]:
    """Files the intake recorded for a tenant, newest first, with ``posted`` = transactions that added money.

    Read-only SQL on intake's tables (an ops command, not a service, so reading them directly is acceptable).
    An identical re-feed (same bytes) adds no row and posts nothing; it counts in ``copies_received``. A
    copy with different bytes (re-sent, re-enveloped) adds a row whose ``duplicates`` equals ``transactions``.
    """
    from shared import db

    async with db.staff_connection(settings, tenant) as conn:  # this tenant's rows only (RLS)
        records = await conn.fetch(FILES_SQL, tenant, limit)
    rows = []
    for r in records:
        row = dict(r)
        row["received_at"] = r["received_at"].isoformat(timespec="seconds")
        row["last_copy_at"] = r["last_copy_at"] and r["last_copy_at"].isoformat(timespec="seconds")
        row["last_replay_at"] = r["last_replay_at"] and r["last_replay_at"].isoformat(timespec="seconds")
        row["posted"] = r["transactions"] - r["rejected"] - r["duplicates"]
        row["warnings"] = list(r["warnings"])
        rows.append(row)
    return rows


def _file_note(row: dict[str, Any]) -> str:
    notes = []
    if row["transactions"] and row["duplicates"] == row["transactions"]:
        notes.append("already posted earlier: nothing new")
    elif row["rejected"]:
        notes.append("see: offsetstream dlt list")
    if row["copies_received"]:
        notes.append(
            f"identical copy received {row['copies_received']}x (last {row['last_copy_at']}): posted nothing"
        )
    if row.get("replays"):
        notes.append(f"replayed {row['replays']}x (last {row['last_replay_at']})")
    return "; ".join(notes)


async def _files(tenant: str, as_json: bool, limit: int, show_warnings: bool) -> int:
    rows = await fetch_files(get_settings(), tenant, limit)
    if as_json:
        for row in rows:
            print(json.dumps(row))
        return 0
    if not rows:
        print(f"no files received for tenant {tenant}")
        return 0
    if show_warnings:
        warned = [(r, warning) for r in rows for warning in r["warnings"]]
        for r, warning in warned:
            print(f"{r['file_name']} ({r['sha256'][:12]}) {warning}")
        if not warned:
            print(f"none: the reader warned about nothing in the last {len(rows)} file(s) of tenant {tenant}")
        return 0
    table = [
        [
            r["received_at"],
            r["file_name"],
            r["sha256"][:12],
            r["feed"] or "-",
            str(r["transactions"]),
            str(r["posted"]),
            str(r["rejected"]),
            str(r["duplicates"]),
            str(len(r["warnings"])),
            _file_note(r),
        ]
        for r in rows
    ]
    headers = [
        "RECEIVED",
        "FILE",
        "SHA256",
        "FEED",
        "TRANSACTIONS",
        "POSTED",
        "REJECTED",
        "DUPLICATES",
        "WARNINGS",
        "NOTE",
    ]
    print(report.columns(table, headers))
    return 0


async def _replay_file(tenant: str, sha256: str, entered_by: str, request_id: str | None) -> int:
    import uuid

    from services.intake import publish

    message = publish.file_replay_message(tenant, sha256, entered_by, request_id or uuid.uuid4().hex)
    await publish.request_file_replay(get_settings(), message)
    print(
        f"replay of file {sha256[:12]} requested: `offsetstream files` notes it once intake has read it again"
    )
    return 0


async def _watch(folder: Path, tenant: str, interval: float, format_hint: str | None) -> int:
    from cli.dropfolder import DropFolder, PollReport

    def show(report: PollReport) -> None:
        for name in report.published:
            print(f"published {name} -> {folder / 'processed'}", flush=True)
        for name in report.failed:
            print(f"FAILED    {name} -> {folder / 'failed'} (see {name}.error.txt there)", flush=True)

    watcher = DropFolder(folder, tenant, settings=get_settings(), interval=interval, format_hint=format_hint)
    print(f"watching {folder} for tenant {tenant} every {interval:g}s; Ctrl-C to stop", flush=True)
    await watcher.run(show)
    print("stopped")
    return 0


def _commands() -> dict[str, Any]:
    """Commands contributed by plugins (entry-point group ``offsetstream.cli_commands``), such as the feed
    generator of ``devtools``: the CLI lists them without importing the layer above it."""
    from shared import plugins

    return plugins.load_plugins(plugins.CLI_COMMANDS)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for tests)."""
    settings = get_settings()
    parser = argparse.ArgumentParser(
        prog="offsetstream", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="start everything locally, feed the examples, print the reconciliation")
    run.add_argument("--keep", action="store_true", help="keep the stack running after the report")
    run.add_argument("--examples", type=options.input_folder, default=REPO_ROOT / "examples" / "835")
    run.add_argument("--tenant", type=options.tenant_id, default="demo-clinic")
    tenant: dict[str, Any] = {"type": options.tenant_id, "default": settings.default_tenant}
    feed_format: dict[str, Any] = {"dest": "format_hint", "type": options.feed_format, "default": None}
    ingest = sub.add_parser("ingest", help="publish payer files (or folders of them) to the intake topic")
    ingest.add_argument("paths", nargs="+", type=options.file_or_folder)
    ingest.add_argument("--tenant", **tenant)
    ingest.add_argument("--format", **feed_format, help="feed parser name, e.g. x12_835")
    parse = sub.add_parser("parse", help="print as JSON lines the events a file would produce (no Kafka)")
    parse.add_argument("file", type=options.input_file)
    parse.add_argument("--tenant", **tenant)
    parse.add_argument("--format", **feed_format, help="feed parser name, e.g. x12_835")
    reconcile = sub.add_parser("reconcile", help="print the reconciliation of a tenant from the ledger")
    reconcile.add_argument("--tenant", **tenant)
    files = sub.add_parser(
        "files",
        help="payer files received: transactions posted, rejected, and already posted before (duplicates)",
        description="List the files the intake stage recorded, newest first. A file fed again shows "
        "DUPLICATES = TRANSACTIONS and POSTED = 0: it changed nothing in the ledger.",
    )
    files.add_argument("--tenant", **tenant)
    files.add_argument(
        "--limit", type=options.positive_int, default=100, metavar="N", help="at most N files (default 100)"
    )
    files.add_argument("--json", action="store_true", help="one JSON object per line")
    files.add_argument(
        "--warnings",
        action="store_true",
        help="list what the reader kept but did not interpret (unknown or misplaced segments, a missing "
        "PER*BL), per file and transaction",
    )
    files.add_argument(
        "--replay",
        metavar="SHA256",
        type=options.sha256_hex,
        help="instead of listing: ask intake to process again the kept file with this SHA-256 (one with a "
        "rejected transaction), as `dlt replay` of its records would; shows as a 'replayed' receipt",
    )
    files.add_argument("--entered-by", type=options.identifier, default="staff")
    files.add_argument(
        "--request-id", type=options.identifier, default=None, help="repeat a request: replays once"
    )
    watch = sub.add_parser(
        "watch",
        help="publish every payer file dropped into a folder; move it to processed/ or failed/",
        description="Watch a folder (for example the payer's SFTP inbox). A file is sent once its size and "
        "time stamp stop changing (the upload has finished), then moved to FOLDER/processed/. A file that "
        "cannot be sent goes to FOLDER/failed/ with an .error.txt note; move it back to retry. Names "
        "starting with '.' or ending in .part/.tmp/.filepart are in-progress uploads and are left alone.",
    )
    watch.add_argument("folder", type=options.input_folder)
    watch.add_argument("--tenant", **tenant)
    watch.add_argument(
        "--interval", type=options.seconds, default=2.0, help="seconds between looks (default 2)"
    )
    watch.add_argument("--format", **feed_format, help="feed parser name, e.g. x12_835")
    dlt_commands.add_parser(sub)
    phi_commands.add_parser(sub)
    for command in _commands().values():
        command.add_parser(sub)
    staff.add_parsers(sub, settings)
    work_items.add_parsers(sub, settings)
    users.add_parsers(sub)
    dbp = sub.add_parser("db", help="database administration")
    dbp.add_argument("action", choices=["migrate"])
    topics = sub.add_parser("topics", help="Kafka topic administration")
    topics.add_argument("action", choices=["create"])
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``offsetstream`` command. A malformed option ends with argparse's one-line error and
    status 2 (every option has a checking type, see :mod:`cli.options`); Kafka or PostgreSQL out of reach
    ends with one line naming it and status 1, never a traceback."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # argparse has printed the usage and the error (2), or the help (0)
        return exc.code if isinstance(exc.code, int) else 2
    try:
        return _dispatch(args)
    except Exception as exc:
        why = _unreachable(exc)
        if why is None:
            raise
        print(f"offsetstream {args.command}: {why}", file=sys.stderr)
        return 1


def _unreachable(exc: Exception) -> str | None:
    """One line for a failure of the surroundings rather than of the command (a broker or database not
    reachable, not migrated, refusing the credentials), or None for anything else."""
    import asyncpg
    from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError

    from shared.kafka_security import KafkaCredentialsMissing

    settings = get_settings()
    if isinstance(exc, KafkaCredentialsMissing):
        return str(exc)
    if isinstance(exc, KafkaConnectionError | KafkaTimeoutError):
        return f"Kafka at {settings.kafka_bootstrap} is not reachable ({exc}); check OFFSETSTREAM_KAFKA_BOOTSTRAP"
    if isinstance(exc, asyncpg.UndefinedTableError | asyncpg.InvalidSchemaNameError):
        return f"the database is not prepared ({exc}); run: offsetstream db migrate"
    if isinstance(exc, asyncpg.PostgresError | asyncpg.InterfaceError):
        return f"PostgreSQL refused the request ({type(exc).__name__}: {exc})"
    if isinstance(exc, ConnectionError | TimeoutError | socket.gaierror):
        return f"cannot connect ({exc}); check OFFSETSTREAM_DATABASE_URL and OFFSETSTREAM_KAFKA_BOOTSTRAP"
    if isinstance(exc, OSError) and exc.filename:  # a file that vanished or became unreadable meanwhile
        return f"{exc.filename}: {exc.strerror}"
    return None


def _run(args: argparse.Namespace) -> int:
    from cli.runner import run_demo

    try:
        return asyncio.run(run_demo(args.examples, args.tenant, args.keep))
    except KeyboardInterrupt:
        return 130
    except asyncio.CancelledError:  # SIGTERM: the stack is stopped (see cli.runner.stop_on_sigterm)
        return 143


def _dispatch(args: argparse.Namespace) -> int:
    handled = users.dispatch(args) if args.command == "user" else staff.dispatch(args)
    handled = work_items.dispatch(args) if handled is None else handled
    if handled is not None:
        return handled
    if args.command == "run":
        return _run(args)
    if args.command == "parse":
        return _parse_file(args.file, args.tenant, args.format_hint)
    if args.command == "ingest":
        return asyncio.run(_ingest(args.paths, args.tenant, args.format_hint))
    if args.command == "reconcile":
        return asyncio.run(_reconcile(args.tenant))
    if args.command == "files":
        return asyncio.run(
            _replay_file(args.tenant, args.replay, args.entered_by, args.request_id)
            if args.replay
            else _files(args.tenant, args.json, args.limit, args.warnings)
        )
    if args.command == "watch":
        if not args.folder.is_dir():
            print(f"no such folder: {args.folder}", file=sys.stderr)
            return 2
        return asyncio.run(_watch(args.folder, args.tenant, args.interval, args.format_hint))
    if args.command == "dlt":
        return dlt_commands.run(args)
    if args.command == "phi":
        return phi_commands.run(args)
    if args.command in _commands():
        return int(_commands()[args.command].run(args))
    if args.command == "db":
        return asyncio.run(_migrate())
    return asyncio.run(_topics())


if __name__ == "__main__":
    sys.exit(main())
