"""PostgreSQL plumbing: pool, numbered migrations, and the processed-event record behind idempotence."""

import asyncio
import contextlib
import json
import logging
import re
from collections.abc import AsyncIterator, Collection, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import asyncpg

from shared.settings import REPO_ROOT, SERVICES, Settings

log = logging.getLogger(__name__)

MIGRATIONS_DIR = REPO_ROOT / "infra" / "postgres" / "migrations"
_MIGRATION_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


async def connect(settings: Settings) -> asyncpg.Connection:
    """One connection, for commands and tests."""
    return await asyncpg.connect(settings.database_url)


def unnest_columns(width: int, rows: Iterable[tuple[Any, ...]]) -> list[list[Any]]:
    """Rows as ``width`` column lists, the arguments of an ``unnest($1::…[], $2::…[], …)``: how a set-based
    stage sends a whole batch's rows in one statement."""
    # Transposed by ``zip`` in C: the per-value Python loop it replaces was 2-3 % of notification's profile.
    table = list(rows)
    if not table:
        return [[] for _ in range(width)]
    columns = [list(column) for column in zip(*table, strict=True)]
    if len(columns) != width:
        raise ValueError(f"unnest_columns: rows of {len(columns)} values where {width} were expected")
    return columns


STAFF_ROLE = "offsetstream_staff"
TENANT_SETTING = "offsetstream.tenant"


def service_role(service: str) -> str:
    """The database role a service's handlers run as (created by migration 0019)."""
    if service not in SERVICES:
        raise ValueError(f"unknown service {service!r}")
    return f"offsetstream_{service}"


async def create_pool(
    settings: Settings, service: str | None = None, *, min_size: int = 1, max_size: int = 4
) -> asyncpg.Pool:
    """The service's pool; small because each worker processes one message per partition at a time.

    Every connection runs as the service's role (``SET ROLE`` when it is opened): the role, not the login, is
    what the grants and policies of migration 0019 name, so the same code is confined the same way whatever
    login the DSN carries. In production each service logs in as its own user, a member of its role only
    (docker-compose.yml), so it could not leave the role even if it tried. The local stack and the tests use
    the cluster's one trusted login with ``SET ROLE`` instead of generating five passwords: the handlers still
    run with exactly the production rights, which is what the tests prove. ``RESET ALL`` (asyncpg's reset on
    release) leaves the role in place, so it is in force for every handler, on every connection of the pool.
    """

    role = service_role(service) if service is not None else None

    async def as_service(conn: asyncpg.Connection) -> None:
        await conn.execute(f'SET ROLE "{role}"')  # a name built from SERVICES, quoted

    return await asyncpg.create_pool(
        settings.database_url,
        min_size=min_size,
        max_size=max_size,
        init=as_service if role is not None else None,
        reset=keep_session if role is not None else None,
    )


async def keep_session(conn: asyncpg.Connection) -> None:
    """The release step of a stage's pool: nothing beyond what asyncpg always does (roll back a transaction
    left open, drop listener callbacks).

    asyncpg's default sends ``SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL`` on every
    release: four statements and a round trip per batch of every stage and per delivery of notification,
    4 815 of the 10 825 statements the pipeline sent per 1 000 claim payments (``BENCH_PGSTAT=1``,
    devtools/bench/README.md), 56 µs of a backend's CPU per release.
    A stage's connection keeps no session state for them to undo: its locks are transaction locks
    (``pg_advisory_xact_lock``), its settings ``SET LOCAL``/``set_config(…, true)``, its cursors end with
    their transaction, and it never listens. Code that needs session state (the migration lock) uses a
    connection of its own (:func:`connect`), not the pool. The role set by ``init`` stays either way."""
    del conn


@contextlib.asynccontextmanager
async def staff_scope(conn: asyncpg.Connection, tenant: str) -> AsyncIterator[asyncpg.Connection]:
    """A transaction in which ``conn`` reads as staff of one tenant: role ``offsetstream_staff`` (read-only)
    and ``offsetstream.tenant`` set, so row-level security returns that tenant's rows only, whatever the SQL
    says. Both settings end with the transaction."""
    async with conn.transaction(readonly=True):
        await conn.execute(f"SET LOCAL ROLE {STAFF_ROLE}")
        await conn.execute("SELECT set_config($1, $2, true)", TENANT_SETTING, tenant)
        yield conn


@contextlib.asynccontextmanager
async def staff_connection(settings: Settings, tenant: str) -> AsyncIterator[asyncpg.Connection]:
    """A new connection inside :func:`staff_scope` for one tenant, closed on exit."""
    conn = await connect(settings)
    try:
        async with staff_scope(conn, tenant):
            yield conn
    finally:
        await conn.close()


class MigrationMismatch(RuntimeError):
    """The ledger records a migration number under another file's name than this code's."""


def migration_files(directory: Path = MIGRATIONS_DIR) -> list[tuple[int, Path]]:
    """Numbered migrations in order; a badly named file is an error, not something to skip."""
    files = []
    for path in sorted(directory.glob("*.sql")):
        match = _MIGRATION_NAME.match(path.name)
        if not match:
            raise ValueError(f"migration file {path.name!r} must be named NNNN_lower_snake.sql")
        files.append((int(match.group(1)), path))
    numbers = [n for n, _ in files]
    if len(set(numbers)) != len(numbers):
        raise ValueError("two migrations share a number")
    return files


async def _enforce_tenancy(conn: asyncpg.Connection, attempts: int = 5) -> None:
    """Grants and policies on every table. They take each table's exclusive lock, so against running services
    (a migration applied while the stages work) PostgreSQL may pick this as a deadlock's victim: the whole
    call is idempotent and simply runs again."""
    for attempt in range(1, attempts + 1):
        try:
            await conn.execute("SELECT ops.enforce_tenancy()")
            return
        except asyncpg.DeadlockDetectedError:
            if attempt == attempts:
                raise
            log.warning("tenancy grants chosen as a deadlock victim; retrying (%d of %d)", attempt, attempts)
            await asyncio.sleep(0.2 * attempt)


async def migrate(conn: asyncpg.Connection, directory: Path = MIGRATIONS_DIR) -> list[str]:
    """Apply pending migrations, each in its own transaction, recorded in ``public.schema_migrations``.

    An advisory lock serialises concurrent starters (five services may start at once). A number recorded
    under another file's name stops the start (:class:`MigrationMismatch`) instead of counting as applied: a
    ledger migrated by other code (a branch's migration of the same number, a file renumbered since) has a
    schema this code does not know, and skipping the file would leave it so without a word.
    """
    await conn.execute(
        "CREATE TABLE IF NOT EXISTS public.schema_migrations ("
        " version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
    )
    applied: list[str] = []
    await conn.execute("SELECT pg_advisory_lock(727001)")
    try:
        done = {
            r["version"]: r["name"]
            for r in await conn.fetch("SELECT version, name FROM public.schema_migrations")
        }
        for number, path in migration_files(directory):
            if number in done:
                if done[number] != path.name:
                    raise MigrationMismatch(
                        f"migration {number} was applied to this ledger as {done[number]!r}, and this code's is "
                        f"{path.name!r}: the schema differs from the one this code expects; migrate the ledger "
                        "with the code that made it, or restore it, before starting this version"
                    )
                continue
            async with conn.transaction():
                await conn.execute(path.read_text())
                await conn.execute(
                    "INSERT INTO public.schema_migrations(version, name) VALUES ($1, $2)", number, path.name
                )
            applied.append(path.name)
            log.info("applied migration %s", path.name)
        # Grants and row-level security for every table, those of the migrations just applied included.
        if applied and await conn.fetchval("SELECT to_regprocedure('ops.enforce_tenancy()') IS NOT NULL"):
            await _enforce_tenancy(conn)
    finally:
        await conn.execute("SELECT pg_advisory_unlock(727001)")
    return applied


async def claim_processed(
    conn: asyncpg.Connection, service: str, event_ids: Collection[str]
) -> dict[str, list[dict[str, Any]]]:
    """Claim input events for this service (inside the caller's transaction); return the recorded outputs of
    those that were already applied, keyed by event id. Unreturned ids are now claimed by the caller.

    Claiming before applying means that a second worker holding the same input (a rebalance) waits on the first
    one's claim and then sees it as done, instead of applying it again. Recording outputs with the claim lets a
    service that crashed after the commit and before publishing re-publish exactly the same messages.
    """
    if not event_ids:
        return {}
    wanted = sorted(event_ids)  # one lock order for every worker, so claims never deadlock on each other
    claimed = await conn.fetch(
        "INSERT INTO ops.processed_events(service, event_id, outputs)"
        " SELECT $1, e, '[]'::jsonb FROM unnest($2::text[]) AS e ON CONFLICT DO NOTHING RETURNING event_id",
        service,
        wanted,
    )
    taken = set(wanted) - {r["event_id"] for r in claimed}
    if not taken:
        return {}
    rows = await conn.fetch(
        "SELECT event_id, outputs FROM ops.processed_events WHERE service = $1 AND event_id = ANY($2::text[])",
        service,
        sorted(taken),
    )
    return {r["event_id"]: json.loads(r["outputs"]) for r in rows}


async def record_outputs(
    conn: asyncpg.Connection,
    service: str,
    outputs: Mapping[str, Sequence[dict[str, Any]]],
    released: Sequence[str] = (),
) -> None:
    """Store the messages each claimed event produced, and release the claims of events that were rejected
    (a dead-lettered input must stay re-drivable by ``offsetstream dlt replay``)."""
    produced = {event_id: records for event_id, records in outputs.items() if records}
    if produced:
        await conn.execute(
            "UPDATE ops.processed_events p SET outputs = v.outputs::jsonb"
            " FROM unnest($2::text[], $3::text[]) AS v(event_id, outputs)"
            " WHERE p.service = $1 AND p.event_id = v.event_id",
            service,
            list(produced),
            [json.dumps(list(records)) for records in produced.values()],
        )
    if released:
        await conn.execute(
            "DELETE FROM ops.processed_events WHERE service = $1 AND event_id = ANY($2::text[])",
            service,
            list(released),
        )
