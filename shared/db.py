"""PostgreSQL plumbing: pool, numbered migrations, and the processed-event record behind idempotence."""

import json
import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import asyncpg

from shared.settings import REPO_ROOT, Settings

log = logging.getLogger(__name__)

MIGRATIONS_DIR = REPO_ROOT / "infra" / "postgres" / "migrations"
_MIGRATION_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


async def connect(settings: Settings) -> asyncpg.Connection:
    """One connection, for commands and tests."""
    return await asyncpg.connect(settings.database_url)


async def create_pool(settings: Settings, *, min_size: int = 1, max_size: int = 4) -> asyncpg.Pool:
    """The service's pool; small because each worker processes one message per partition at a time."""
    return await asyncpg.create_pool(settings.database_url, min_size=min_size, max_size=max_size)


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


async def migrate(conn: asyncpg.Connection, directory: Path = MIGRATIONS_DIR) -> list[str]:
    """Apply pending migrations, each in its own transaction, recorded in ``public.schema_migrations``.

    An advisory lock serialises concurrent starters (five services may start at once).
    """
    await conn.execute(
        "CREATE TABLE IF NOT EXISTS public.schema_migrations ("
        " version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
    )
    applied: list[str] = []
    await conn.execute("SELECT pg_advisory_lock(727001)")
    try:
        done = {r["version"] for r in await conn.fetch("SELECT version FROM public.schema_migrations")}
        for number, path in migration_files(directory):
            if number in done:
                continue
            async with conn.transaction():
                await conn.execute(path.read_text())
                await conn.execute(
                    "INSERT INTO public.schema_migrations(version, name) VALUES ($1, $2)", number, path.name
                )
            applied.append(path.name)
            log.info("applied migration %s", path.name)
    finally:
        await conn.execute("SELECT pg_advisory_unlock(727001)")
    return applied


async def already_processed(
    conn: asyncpg.Connection, service: str, event_id: str
) -> list[dict[str, Any]] | None:
    """The outputs recorded for an input event this service already committed, or None if it is new.

    Recording outputs with the processed mark (in the same transaction as the domain writes) lets a service
    that crashed after the DB commit and before publishing re-publish exactly the same messages on redelivery.
    """
    row = await conn.fetchrow(
        "SELECT outputs FROM ops.processed_events WHERE service = $1 AND event_id = $2", service, event_id
    )
    if row is None:
        return None
    outputs: list[dict[str, Any]] = json.loads(row["outputs"])
    return outputs


async def mark_processed(
    conn: asyncpg.Connection, service: str, event_id: str, outputs: Sequence[dict[str, Any]]
) -> None:
    """Record an input event as applied, with the messages it produced (inside the caller's transaction)."""
    await conn.execute(
        "INSERT INTO ops.processed_events(service, event_id, outputs) VALUES ($1, $2, $3::jsonb)"
        " ON CONFLICT DO NOTHING",
        service,
        event_id,
        json.dumps(list(outputs)),
    )
