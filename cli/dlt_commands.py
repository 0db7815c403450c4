"""``offsetstream dlt list|show|replay``: staff's view of dead letters and the way back (the records themselves are
read and replayed by :mod:`cli.dlt`)."""

import argparse
import asyncio
import json
import sys
from typing import Any

from cli import options, report
from shared.settings import get_settings


def run(args: argparse.Namespace) -> int:
    from cli.dlt import OriginalMissing

    try:
        if args.dlt_command == "list":
            return asyncio.run(_dlt_list(args.topic, args.limit, args.tenant, args.reason, args.json))
        if args.dlt_command == "show":
            return asyncio.run(_dlt_show(args.topic, args.position, args.content, args.raw))
        return asyncio.run(
            _dlt_replay(args.topic, args.positions, args.reason, args.tenant, args.replay_all, args.dry_run)
        )
    except ValueError as exc:  # a malformed PARTITION:OFFSET or no selection: say so, no traceback
        print(f"offsetstream dlt: {exc}", file=sys.stderr)
        return 2
    except OriginalMissing as exc:  # the stored file or source message is gone: say which, no traceback
        print(f"offsetstream dlt: {exc}", file=sys.stderr)
        return 1


def _location_text(location: dict[str, str]) -> str:
    return " ".join(f"{k}={v}" for k, v in location.items())


async def _dlt_list(
    topic: str, limit: int | None, tenant: str | None, reason: str | None, as_json: bool
) -> int:
    from cli import dlt

    records = dlt.select(await dlt.read_dead_letters(get_settings(), topic), reason=reason, tenant_id=tenant)
    if limit is not None:
        records = records[-limit:] if limit > 0 else []
    if as_json:
        for record in records:
            print(json.dumps(record.summary(error_width=None)))
        return 0
    if not records:
        print(f"{topic}: no records")
        return 0
    rows = []
    for r in records:
        s = r.summary()
        source = f"{s['source_topic']}[{s['source_partition']}]@{s['source_offset']}"
        rows.append(
            [
                r.position,
                report.when(r.timestamp_ms),
                r.reason,
                s["service"],
                s["tenant_id"] or "-",
                source,
                _location_text(r.location),
                str(s["size_bytes"]),
                s["error"],
            ]
        )
    headers = [
        "P:OFFSET",
        "WHEN (UTC)",
        "REASON",
        "SERVICE",
        "TENANT",
        "SOURCE",
        "LOCATION",
        "BYTES",
        "ERROR",
    ]
    print(report.columns(rows, headers))
    print(f"\n{len(records)} record(s) on {topic}; details: offsetstream dlt show P:OFFSET --topic {topic}")
    return 0


async def _dlt_show(topic: str, position: str, content: bool, raw: bool) -> int:
    from cli import dlt

    where = dlt.parse_position(position)
    record = (await dlt.fetch_dead_letters(get_settings(), topic, [where]))[where]
    if record is None:
        print(f"{topic}: no record at {position}", file=sys.stderr)
        return 1
    if raw:  # a stored payer file or an omitted original is read back from where it is kept
        sys.stdout.buffer.write(await dlt.load_original(get_settings(), record))
        sys.stdout.buffer.flush()
        return 0
    print(f"record     {topic} {record.position} ({report.when(record.timestamp_ms)} UTC)")
    print(f"key        {(record.key or b'').decode('utf-8', errors='replace') or '-'}")
    print(f"tenant     {record.tenant_id or '-'}")
    print(f"size       {len(record.value)} bytes")
    summary = record.summary()
    print(f"body       {summary['body']}")
    if kept := summary["raw_file"]:
        span = kept["byte_range"]
        print(
            f"file       {kept['file_name']} ({kept['size_bytes']} bytes, sha256 {kept['sha256']}) in "
            f"{kept['stored_in']}" + (f"; transaction at bytes {span[0]}-{span[1]}" if span else "")
        )
    for name, value in record.headers.items():
        print(f"{name:<10} {value}")
    if content:
        original = await dlt.load_original(get_settings(), record) if record.reference else None
        print("\n" + record.readable_body(original))
    else:
        print(
            "\n(body not shown: it may contain patient data; add --content to print it, --raw for the bytes)"
        )
    return 0


async def _dlt_replay(
    topic: str, positions: list[str], reason: str | None, tenant: str | None, replay_all: bool, dry_run: bool
) -> int:
    from cli import dlt

    outcomes = await dlt.replay(
        get_settings(),
        topic,
        positions=[dlt.parse_position(p) for p in positions],
        reason=reason,
        tenant_id=tenant,
        replay_all=replay_all,
        dry_run=dry_run,
    )
    for o in outcomes:
        where = (
            f" -> {o.target_topic}[{o.target_partition}]@{o.target_offset}" if o.status == "replayed" else ""
        )
        target = f" to {o.target_topic}" if o.status == "would replay" else ""
        print(f"{topic} {o.position} {o.reason or '-'}: {o.status}{target}{where}")
    replayed = sum(o.status == "replayed" for o in outcomes)
    print(f"{replayed} record(s) replayed" + (" (dry run: nothing sent)" if dry_run else ""))
    return 1 if any(o.status.startswith("skipped") for o in outcomes) else 0


def add_parser(sub: Any) -> None:
    from cli.dlt import DEFAULT_DLT, dlt_topics

    topic_help = (
        f"dead-letter topic (default {DEFAULT_DLT}, rejected payer files); one of: {', '.join(dlt_topics())}"
    )
    dltp = sub.add_parser(
        "dlt",
        help="rejected input (dead-letter topics): list, show, replay",
        description="Every stage sets aside input it cannot process on a dead-letter topic, with the reason "
        "and where in the file the problem is. The rejected part was not posted to the ledger (the other "
        "transactions of a partly rejected file were).",
    )
    actions = dltp.add_subparsers(dest="dlt_command", required=True)
    lst = actions.add_parser(
        "list",
        help="one line per rejected record: reason, error, where it came from, location in the file",
        description="List a dead-letter topic from its beginning. Only the reason headers are shown "
        "(never patient data), so the output is safe to paste into a ticket.",
    )
    lst.add_argument("--topic", default=DEFAULT_DLT, choices=dlt_topics(), metavar="TOPIC", help=topic_help)
    lst.add_argument(
        "--limit",
        type=options.positive_int,
        default=None,
        metavar="N",
        help="show only the N most recent records",
    )
    lst.add_argument("--tenant", type=options.tenant_id, default=None, help="only records of this tenant")
    lst.add_argument(
        "--reason",
        type=options.identifier,
        default=None,
        help="only records with this reason, e.g. unbalanced",
    )
    lst.add_argument("--json", action="store_true", help="one JSON object per line (full error text)")
    show = actions.add_parser(
        "show",
        help="all headers of one record; its body only with --content or --raw",
        description="Show one dead-letter record by its PARTITION:OFFSET from `dlt list`. The body is not "
        "printed by default because payer files contain patient names and member ids, and terminal output "
        "ends up in scroll-back, screen shares and tickets.",
    )
    show.add_argument(
        "position",
        type=options.position,
        metavar="PARTITION:OFFSET",
        help="as printed by `offsetstream dlt list`",
    )
    show.add_argument("--topic", default=DEFAULT_DLT, choices=dlt_topics(), metavar="TOPIC", help=topic_help)
    body = show.add_mutually_exclusive_group()
    body.add_argument(
        "--content", action="store_true", help="also print the body (the payer file as text; MAY CONTAIN PHI)"
    )
    body.add_argument(
        "--raw",
        action="store_true",
        help="write only the original bytes to stdout (for > file): the payer file as received for intake's "
        "records (read back from intake.raw_files), else the record's bytes",
    )
    rep = actions.add_parser(
        "replay",
        help="send rejected records back to the stage that rejected them (after the cause was fixed)",
        description="Re-publish records' original bytes to the topic they came from, tagged "
        "replayed_from=<dlt>:<p>:<o>. Use it when the cause was outside the data (a bug fixed, a "
        "configuration corrected, a system that was down). Safe to repeat: anything already posted is "
        "recognised and skipped, and a record that is still wrong lands on the dead-letter topic again. A payer "
        "file whose content is wrong must be corrected and fed again with `offsetstream ingest` instead.",
    )
    rep.add_argument(
        "positions", nargs="*", type=options.position, metavar="PARTITION:OFFSET", help="records to replay"
    )
    rep.add_argument("--topic", default=DEFAULT_DLT, choices=dlt_topics(), metavar="TOPIC", help=topic_help)
    rep.add_argument(
        "--reason", type=options.identifier, default=None, help="replay every record with this reason"
    )
    rep.add_argument(
        "--tenant", type=options.tenant_id, default=None, help="replay only records of this tenant"
    )
    rep.add_argument("--all", dest="replay_all", action="store_true", help="replay every record of the topic")
    rep.add_argument("--dry-run", action="store_true", help="say what would be replayed, send nothing")
