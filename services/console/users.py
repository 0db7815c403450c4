"""The console's users in ``console.users`` (migration 0020): read by the console, written by the operators'
``offsetstream user add|list|disable`` only (the console's database role cannot write here)."""

from typing import Any

import asyncpg

from services.console.auth import User


async def find(conn: asyncpg.Connection, username: str) -> tuple[User, str] | None:
    """An enabled user and its password hash, or None (unknown or disabled: both simply cannot log in)."""
    row = await conn.fetchrow(
        "SELECT username, role, tenants, password_hash FROM console.users WHERE username = $1 AND NOT disabled",
        username,
    )
    if row is None:
        return None
    return User(row["username"], row["role"], tuple(row["tenants"])), str(row["password_hash"])


async def add(
    conn: asyncpg.Connection, username: str, password_hash: str, role: str, tenants: tuple[str, ...]
) -> bool:
    """Create a user, or reset an existing one's password, role and clinics (and enable it); True if new."""
    return bool(
        await conn.fetchval(
            """INSERT INTO console.users(username, password_hash, role, tenants) VALUES ($1, $2, $3, $4)
               ON CONFLICT (username) DO UPDATE SET password_hash = EXCLUDED.password_hash, role = EXCLUDED.role,
                   tenants = EXCLUDED.tenants, disabled = false, disabled_at = NULL
               RETURNING xmax = 0""",
            username,
            password_hash,
            role,
            list(tenants),
        )
    )


async def listing(conn: asyncpg.Connection) -> list[dict[str, Any]]:
    """Every user, without the hash."""
    rows = await conn.fetch(
        """SELECT username, role, array_to_string(tenants, ',') AS clinics, disabled, created_at, disabled_at
           FROM console.users ORDER BY username"""
    )
    return [dict(r.items()) for r in rows]


async def disable(conn: asyncpg.Connection, username: str) -> bool:
    """Disable a user (its sessions stop working at the next request); False when there is no such user."""
    done = await conn.execute(
        "UPDATE console.users SET disabled = true, disabled_at = now() WHERE username = $1 AND NOT disabled",
        username,
    )
    return str(done).endswith(" 1")
