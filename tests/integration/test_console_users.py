"""``offsetstream user add|list|disable`` on the real database: what the console's logins rest on."""

import subprocess
import sys
import uuid

import asyncpg
import pytest

from cli.local_infra import Stack
from services.console import auth, users
from shared.settings import REPO_ROOT

pytestmark = pytest.mark.integration


def _cli(stack: Stack, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli", "user", *args],
        cwd=REPO_ROOT,
        env=stack.env(),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_users_are_added_listed_and_disabled_with_argon2_hashes(stack: Stack) -> None:
    name = f"ann.{uuid.uuid4().hex[:6]}"
    # Step: a biller of two clinics, the password from stdin (never on the command line).
    added = _cli(
        stack,
        "add",
        name,
        "--role",
        "biller",
        "--tenant",
        "clinic-a",
        "--tenant",
        "clinic-b",
        "--password-stdin",
        stdin="a long enough password\n",
    )
    assert added.returncode == 0, added.stderr
    conn = await asyncpg.connect(stack.postgres.dsn)
    try:
        found = await users.find(conn, name)
        assert found is not None
        user, stored = found
        assert (user.role, user.tenants) == ("biller", ("clinic-a", "clinic-b"))
        assert stored.startswith("$argon2id$") and auth.verify_password(stored, "a long enough password")
        # Step: the listing shows users, never hashes.
        listed = _cli(stack, "list")
        assert name in listed.stdout and "$argon2" not in listed.stdout
        # Step: a short password is refused; disabling ends the user's logins.
        short = _cli(
            stack,
            "add",
            f"{name}x",
            "--role",
            "viewer",
            "--tenant",
            "clinic-a",
            "--password-stdin",
            stdin="short\n",
        )
        assert short.returncode == 2 and "12 characters" in short.stderr
        assert _cli(stack, "disable", name).returncode == 0
        assert await users.find(conn, name) is None
        assert _cli(stack, "disable", name).returncode == 1
        # Step: the console's database role may read users but not write them.
        async with conn.transaction():
            await conn.execute("SET LOCAL ROLE offsetstream_console")
            assert await conn.fetchval("SELECT count(*) FROM console.users WHERE username = $1", name) == 1
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute("UPDATE console.users SET disabled = false WHERE username = $1", name)
    finally:
        await conn.close()
