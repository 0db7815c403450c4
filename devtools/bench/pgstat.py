"""``BENCH_PGSTAT=1``: what PostgreSQL spends its CPU on during a bench run, statement by statement.

The bench's server then preloads ``pg_stat_statements`` (:data:`SERVER_SETTINGS`); just before the first publish
:func:`reset` creates the extension and zeroes it and the cumulative statistics, and after the ledger is quiet
:func:`report` prints and writes (JSON beside the feed) the statements by total execution time and by calls, each
with its *stage*: every service's connections run as that service's role (``shared.db.create_pool``), and
``pg_stat_statements`` records the role in force, so ``offsetstream_detection`` is detection's. Statements
of the login role itself are the bench driver's polling and ``offsetstream`` commands, shown as ``bench``.

No PHI: ``pg_stat_statements`` stores statements normalised (every constant and parameter becomes ``$n``), and
the services pass all values as parameters. The report holds query texts, counts and times only.

Beyond statements it reports what costs server CPU without being one: transactions committed and rolled back
(``pg_stat_database``; per stage, count the ``BEGIN``/``COMMIT``/``SAVEPOINT`` rows), WAL records, bytes and full-page images (``pg_stat_wal``), checkpoints
and buffers written (``pg_stat_bgwriter``), autovacuum and autoanalyze runs with the rows each hot table took
(``pg_stat_user_tables``), connections open at the end, and the durability settings the bench's server ran with,
next to what a production server runs with (the bench's stack starts with ``durable=False``: no fsync, no full-page
writes, asynchronous commit; see ``cli.local_postgres``).

Instrumenting costs a little CPU in every backend (a hash-table update per statement): quote CPU figures from a
run without ``BENCH_PGSTAT``, and use this run's counts and relative times.
"""

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import asyncpg

SERVER_SETTINGS = (
    "shared_preload_libraries='pg_stat_statements'",
    "pg_stat_statements.max=5000",
    "pg_stat_statements.track_utility=on",
    "pg_stat_statements.track_planning=on",
    "track_io_timing=on",
)
"""Extra ``postgresql.auto.conf`` lines of the bench's server when ``BENCH_PGSTAT`` is set."""

_ROLE_PREFIX = "offsetstream_"
_SETTINGS = (
    "fsync",
    "synchronous_commit",
    "full_page_writes",
    "wal_level",
    "checkpoint_timeout",
    "max_wal_size",
    "autovacuum",
    "shared_buffers",
)


async def reset(dsn: str) -> dict[str, Any]:
    """Create the extension if needed and zero every counter the report reads; the database counters that
    cannot be zeroed per table are returned as the baseline :func:`report` subtracts."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        await conn.execute("SELECT pg_stat_statements_reset()")
        await conn.execute("SELECT pg_stat_reset()")
        await conn.execute("SELECT pg_stat_reset_shared('wal')")
        await conn.execute("SELECT pg_stat_reset_shared('bgwriter')")
        row = await conn.fetchrow(
            "SELECT xact_commit, xact_rollback FROM pg_stat_database WHERE datname = current_database()"
        )
        return dict(row) if row else {}
    finally:
        await conn.close()


_SAVEPOINT = re.compile(r"__asyncpg_savepoint_[0-9a-f]+")
_SUMMED = (
    "calls",
    "rows",
    "total_exec_time",
    "total_plan_time",
    "shared_blks_hit",
    "shared_blks_dirtied",
    "wal_records",
    "wal_bytes",
)


def _merged(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per stage and statement: asyncpg names every savepoint afresh (``__asyncpg_savepoint_1f3``),
    which ``pg_stat_statements`` keeps as thousands of distinct utility statements."""
    merged: dict[tuple[str, str], dict[str, Any]] = {}
    for row in rows:
        query = _SAVEPOINT.sub("__asyncpg_savepoint_N", row["query"])
        into = merged.get((row["stage"], query))
        if into is None:
            merged[(row["stage"], query)] = {**row, "query": query}
        else:
            for key in _SUMMED:
                into[key] += row[key]
    return list(merged.values())


def _stage(role: str) -> str:
    return role.removeprefix(_ROLE_PREFIX) if role.startswith(_ROLE_PREFIX) else "bench"


def _short(query: str, width: int = 110) -> str:
    text = " ".join(query.split())
    return text if len(text) <= width else text[: width - 1] + "…"


async def report(dsn: str, claims: int, out: Path, top: int = 25) -> dict[str, Any]:
    """Print the run's top statements (by total execution time and by calls, per 1 000 claim payments) and the
    server-side costs that are not statements; write everything to ``out`` as JSON and return it."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("SELECT pg_stat_force_next_flush()")
        rows = [
            dict(r)
            for r in await conn.fetch(
                "SELECT r.rolname AS role, s.calls, s.rows, s.total_exec_time, s.total_plan_time,"
                " s.shared_blks_hit, s.shared_blks_dirtied, s.wal_records, s.wal_bytes, s.query"
                " FROM pg_stat_statements s JOIN pg_roles r ON r.oid = s.userid"
                " JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = current_database()"
            )
        ]
        database = dict(
            await conn.fetchrow(
                "SELECT xact_commit, xact_rollback, tup_inserted, tup_updated, tup_deleted, tup_returned,"
                " tup_fetched, blks_hit, blks_read FROM pg_stat_database WHERE datname = current_database()"
            )
            or {}
        )
        wal = dict(
            await conn.fetchrow(
                "SELECT wal_records, wal_fpi, wal_bytes, wal_write, wal_sync FROM pg_stat_wal"
            )
            or {}
        )
        bgwriter = dict(
            await conn.fetchrow(
                "SELECT checkpoints_timed, checkpoints_req, buffers_checkpoint, buffers_clean, buffers_backend"
                " FROM pg_stat_bgwriter"
            )
            or {}
        )
        tables = [
            dict(r)
            for r in await conn.fetch(
                "SELECT schemaname || '.' || relname AS table_name, n_tup_ins, n_tup_upd, n_tup_hot_upd,"
                " n_tup_del, n_dead_tup, autovacuum_count, autoanalyze_count, idx_scan, seq_scan"
                " FROM pg_stat_user_tables WHERE n_tup_ins + n_tup_upd + n_tup_del > 0"
                " ORDER BY n_tup_ins + n_tup_upd + n_tup_del DESC LIMIT 15"
            )
        ]
        toasted = [
            dict(r)
            for r in await conn.fetch(
                "SELECT n.nspname || '.' || c.relname AS table_name, t.n_tup_ins AS chunks"
                " FROM pg_stat_all_tables t JOIN pg_class c ON c.reltoastrelid = t.relid"
                " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE t.n_tup_ins > 0 ORDER BY 2 DESC"
            )
        ]
        outputs = [
            dict(r)
            for r in await conn.fetch(
                "SELECT service, count(*) AS n, avg(pg_column_size(outputs))::int AS stored,"
                " avg(octet_length(outputs::text))::int AS text FROM ops.processed_events"
                " WHERE outputs::text <> '[]' GROUP BY 1 ORDER BY 1"
            )
        ]
        indexes = {
            r["table_name"]: r["indexes"]
            for r in await conn.fetch(
                "SELECT schemaname || '.' || relname AS table_name, count(*) AS indexes"
                " FROM pg_stat_user_indexes GROUP BY 1"
            )
        }
        connections = [
            dict(r)
            for r in await conn.fetch(
                "SELECT usename AS login, state, count(*) AS n FROM pg_stat_activity"
                " WHERE datname = current_database() GROUP BY 1, 2 ORDER BY 1, 2"
            )
        ]
        settings = {
            r["name"]: r["setting"] + (r["unit"] or "")
            for r in await conn.fetch(
                "SELECT name, setting, unit FROM pg_settings WHERE name = ANY($1::text[])", list(_SETTINGS)
            )
        }
    finally:
        await conn.close()
    for row in rows:
        row["stage"] = _stage(row.pop("role"))
        row["wal_bytes"] = int(row["wal_bytes"])
    rows = _merged(rows)
    for table in tables:
        table["indexes"] = indexes.get(table["table_name"], 0)
    per_k = 1000 / claims if claims else 0.0
    total_ms = sum(r["total_exec_time"] for r in rows)
    by_stage: dict[str, dict[str, float]] = {}
    for row in rows:
        stage = by_stage.setdefault(row["stage"], {"calls": 0, "exec_ms": 0.0})
        stage["calls"] += row["calls"]
        stage["exec_ms"] += row["total_exec_time"]
    print(
        f"\nPostgreSQL statements (pg_stat_statements; per 1 000 claim payments; {total_ms / 1000:.1f} s executing)"
    )
    print(
        "  by stage: "
        + "   ".join(
            f"{name} {v['calls'] * per_k:,.0f} calls / {v['exec_ms'] * per_k:,.0f} ms"
            for name, v in sorted(by_stage.items(), key=lambda kv: -kv[1]["exec_ms"])
        )
    )
    for title, key in (("total execution time", "total_exec_time"), ("calls", "calls")):
        print(f"  top {top} by {title}:")
        print(
            f"    {'stage':<13} {'calls/1k':>9} {'ms/1k':>8} {'share':>6} {'µs/call':>8} {'plan µs':>8} {'rows/call':>9}  statement"
        )
        for row in sorted(rows, key=lambda r: -r[key])[:top]:
            calls = row["calls"] or 1
            print(
                f"    {row['stage']:<13} {row['calls'] * per_k:>9,.1f} {row['total_exec_time'] * per_k:>8,.1f} "
                f"{row['total_exec_time'] / total_ms if total_ms else 0:>6.1%} "
                f"{row['total_exec_time'] * 1000 / calls:>8,.0f} {row['total_plan_time'] * 1000 / calls:>8,.0f} "
                f"{row['rows'] / calls:>9,.1f}  {_short(row['query'])}"
            )
    print(
        f"  transactions: {database.get('xact_commit', 0) * per_k:,.1f} commits and "
        f"{database.get('xact_rollback', 0) * per_k:,.1f} rollbacks / 1 000 claims; rows inserted "
        f"{database.get('tup_inserted', 0) * per_k:,.0f}, updated {database.get('tup_updated', 0) * per_k:,.0f}, "
        f"deleted {database.get('tup_deleted', 0) * per_k:,.0f} / 1 000 claims"
    )
    print(
        f"  WAL: {wal.get('wal_records', 0) * per_k:,.0f} records, {int(wal.get('wal_bytes', 0)) * per_k / 1024:,.0f} KiB, "
        f"{wal.get('wal_fpi', 0) * per_k:,.1f} full-page images / 1 000 claims; {wal.get('wal_write', 0)} writes, "
        f"{wal.get('wal_sync', 0)} syncs; checkpoints {bgwriter.get('checkpoints_timed', 0)} timed + "
        f"{bgwriter.get('checkpoints_req', 0)} requested"
    )
    print("  hot tables (rows written / 1 000 claims; indexes; autovacuum + autoanalyze runs):")
    for t in tables:
        print(
            f"    {t['table_name']:<40} ins {t['n_tup_ins'] * per_k:>7,.0f}  upd {t['n_tup_upd'] * per_k:>7,.0f} "
            f"(HOT {t['n_tup_hot_upd'] * per_k:,.0f})  del {t['n_tup_del'] * per_k:>6,.0f}  indexes {t['indexes']}  "
            f"vacuum {t['autovacuum_count']} + analyze {t['autoanalyze_count']}"
        )
    print(
        "  TOAST chunks written / 1 000 claims (values over ~2 KB stored out of line): "
        + (", ".join(f"{t['table_name']} {t['chunks'] * per_k:,.0f}" for t in toasted) or "none")
    )
    print(
        "  ops.processed_events outputs (rows with outputs; average bytes stored / as text): "
        + ", ".join(f"{o['service']} {o['n']:,} rows {o['stored']:,} / {o['text']:,}" for o in outputs)
    )
    print(
        "  connections at the end: " + ", ".join(f"{c['login']} {c['state']} {c['n']}" for c in connections)
    )
    print(
        "  server settings (bench stack, durable=False; production keeps fsync, full_page_writes and "
        "synchronous_commit on): " + ", ".join(f"{k}={v}" for k, v in sorted(settings.items()))
    )
    found = {
        "claims": claims,
        "statements": sorted(rows, key=lambda r: -r["total_exec_time"]),
        "by_stage": by_stage,
        "toasted": toasted,
        "outputs": outputs,
        "database": database,
        "wal": {k: (int(v) if k == "wal_bytes" else v) for k, v in wal.items()},
        "bgwriter": bgwriter,
        "tables": tables,
        "connections": connections,
        "settings": settings,
    }
    await asyncio.to_thread(out.write_text, json.dumps(found, indent=1, default=str))
    print(f"  written to {out}")
    return found
