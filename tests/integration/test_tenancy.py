"""Tenancy enforced by the database (migration 0019): staff read one tenant whatever the SQL says, and each
service's role writes only its own schema and its own rows of ``ops``. Real PostgreSQL, real handlers."""

import asyncio
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import asyncpg
import pytest
from harness import remit, run_files

from cli import interest_views, ledger_check, matching_views
from cli.local_infra import Stack, pg_bindir
from shared import db
from shared.settings import REPO_ROOT, SERVICES, Settings

pytestmark = pytest.mark.integration

SCHEMAS = (*SERVICES, "ops")


async def two_tenants(ledger: asyncpg.Connection) -> tuple[str, str]:
    """Tenants A and B, each with a deferred recovery (a receivable, its adjustment and the remittance)."""
    a, b = f"tenant-a-{uuid.uuid4().hex[:8]}", f"tenant-b-{uuid.uuid4().hex[:8]}"
    for tenant, trace in ((a, "EFT910001"), (b, "EFT920001")):
        await run_files(ledger, tenant, remit(trace, "20260803", ("WO", "FCN910", "-300.00")))
    return a, b


async def tenant_tables(ledger: asyncpg.Connection) -> list[str]:
    rows = await ledger.fetch(
        """SELECT format('%I.%I', table_schema, table_name) AS name FROM information_schema.columns
           WHERE column_name = 'tenant_id' AND table_schema = ANY($1::text[]) ORDER BY 1""",
        list(SERVICES),
    )
    return [r["name"] for r in rows]


async def test_staff_scope_returns_only_its_tenant_even_without_a_tenant_filter(
    ledger: asyncpg.Connection, stack_settings: Settings
) -> None:
    a, b = await two_tenants(ledger)
    async with db.staff_scope(ledger, a):
        assert await ledger.fetchval("SELECT current_user") == db.STAFF_ROLE
        rows = await ledger.fetch("SELECT * FROM matching.receivables")  # no WHERE: the policy decides
        assert rows and {r["tenant_id"] for r in rows} == {a}
        for table in await tenant_tables(ledger):
            seen = await ledger.fetch(f"SELECT DISTINCT tenant_id FROM {table}")  # a name from the catalog
            assert {r["tenant_id"] for r in seen} <= {a}, table
        # The views, asked for B inside A's scope, find nothing: the filter in the SQL is not what protects B.
        assert [r["reference"] for r in await matching_views.receivables(ledger, a)] == ["FCN910"]
        assert await matching_views.receivables(ledger, b) == []
        assert await matching_views.receivable(ledger, b, "FCN910") is None
        assert await ledger_check.check(ledger, b) == []
        # Staff read; they never write, not even their own tenant's rows.
        with pytest.raises(asyncpg.PostgresError):
            await ledger.execute("UPDATE matching.receivables SET written_off = 0 WHERE tenant_id = $1", a)
    # The role and the tenant end with the transaction.
    assert await ledger.fetchval("SELECT current_user") != db.STAFF_ROLE
    assert not await ledger.fetchval("SELECT current_setting('offsetstream.tenant', true)")
    # Without a tenant set, the staff role sees nothing at all.
    async with ledger.transaction():
        await ledger.execute(f"SET LOCAL ROLE {db.STAFF_ROLE}")
        assert await ledger.fetchval("SELECT count(*) FROM matching.receivables") == 0
    # The interest timeline (its own connection) is scoped the same way.
    timeline = await interest_views.receivable_timeline(stack_settings, a, "FCN910")
    assert timeline["receivables"]
    assert (await interest_views.receivable_timeline(stack_settings, b, "FCN910"))["receivables"]
    async with db.staff_scope(ledger, a):
        assert await ledger.fetchval("SELECT count(*) FROM interest.receivables WHERE tenant_id = $1", b) == 0


async def test_every_tenant_table_has_row_level_security_and_both_policies(
    ledger: asyncpg.Connection,
) -> None:
    tables = await tenant_tables(ledger)
    assert "matching.receivables" in tables
    for table in tables:
        enabled = await ledger.fetchval("SELECT relrowsecurity FROM pg_class WHERE oid = $1::regclass", table)
        policies = {
            r["policyname"]
            for r in await ledger.fetch(
                "SELECT policyname FROM pg_policies WHERE format('%I.%I', schemaname, tablename) = $1", table
            )
        }
        assert enabled and {"services_all_tenants", "staff_one_tenant"} <= policies, table


async def test_each_service_role_writes_only_its_own_schema(ledger: asyncpg.Connection) -> None:
    for service in SERVICES:
        role = db.service_role(service)
        rights = await ledger.fetch(
            """SELECT n.nspname AS schema, c.relname AS table,
                      has_table_privilege($1, c.oid, 'INSERT, UPDATE, DELETE') AS writes,
                      has_table_privilege($1, c.oid, 'SELECT') AS reads
               FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
               WHERE c.relkind = 'r' AND n.nspname = ANY($2::text[])""",
            role,
            list(SCHEMAS),
        )
        for r in rights:
            own = r["schema"] == service or (r["schema"], r["table"]) in {
                ("ops", "processed_events"),
                ("ops", "outbox"),
            }
            assert (r["writes"], r["reads"]) == (own, own), (role, r["schema"], r["table"])
        attributes = await ledger.fetchrow(
            "SELECT rolsuper, rolbypassrls, rolcanlogin FROM pg_roles WHERE rolname = $1", role
        )
        assert tuple(attributes) == (False, False, False)


async def test_detection_role_cannot_write_matching_nor_claim_for_another_service(
    ledger: asyncpg.Connection, stack_settings: Settings
) -> None:
    pool = await db.create_pool(stack_settings, "detection", min_size=1, max_size=1)
    try:
        for _ in range(2):  # the role survives the pool's reset between acquisitions
            async with pool.acquire() as conn:
                assert await conn.fetchval("SELECT current_user") == "offsetstream_detection"
                with pytest.raises(asyncpg.InsufficientPrivilegeError):
                    await conn.execute(
                        "INSERT INTO matching.receivables (tenant_id, reference) VALUES ('t', 'FCN-X')"
                    )
                with pytest.raises(asyncpg.InsufficientPrivilegeError):
                    await conn.fetch("SELECT * FROM intake.remittances LIMIT 1")
                with pytest.raises(asyncpg.InsufficientPrivilegeError):  # RLS: not its own service's claim
                    await conn.execute(
                        "INSERT INTO ops.processed_events (service, event_id, outputs) VALUES ('matching', $1, '[]')",
                        uuid.uuid4().hex,
                    )
                claimed = await db.claim_processed(conn, "detection", [uuid.uuid4().hex])  # its own: fine
                assert claimed == {}
    finally:
        await pool.close()


async def test_migrate_covers_a_table_added_later(ledger: asyncpg.Connection, tmp_path: Path) -> None:
    """A later migration's table gets its service's grants and the tenant policies without saying so."""
    migrations = tmp_path / "migrations"
    migrations.mkdir()
    for _, path in db.migration_files():
        (migrations / path.name).write_text(path.read_text())
    last = max(number for number, _ in db.migration_files())
    (migrations / f"{last + 1:04d}_tenancy_probe.sql").write_text(
        "CREATE TABLE matching.tenancy_probe (tenant_id text NOT NULL, n int)"
    )
    try:
        await db.migrate(ledger, migrations)
        assert await ledger.fetchval(
            "SELECT has_table_privilege('offsetstream_matching', 'matching.tenancy_probe', 'INSERT')"
        )
        assert not await ledger.fetchval(
            "SELECT has_table_privilege('offsetstream_detection', 'matching.tenancy_probe', 'SELECT')"
        )
        await ledger.execute("INSERT INTO matching.tenancy_probe VALUES ('a', 1), ('b', 2)")
        async with db.staff_scope(ledger, "a"):
            assert await ledger.fetchval("SELECT array_agg(n) FROM matching.tenancy_probe") == [1]
    finally:
        await ledger.execute("DROP TABLE matching.tenancy_probe")
        await ledger.execute("DELETE FROM public.schema_migrations WHERE version = $1", last + 1)


async def test_a_migration_number_recorded_under_another_name_stops_the_start(
    ledger: asyncpg.Connection, tmp_path: Path
) -> None:
    """A ledger that recorded a migration's number under another file's name was migrated by other code (a
    branch's migration of the same number): starting must stop and say so, not count the file as applied."""
    migrations = tmp_path / "migrations"
    migrations.mkdir()
    files = db.migration_files()
    for _, path in files:
        (migrations / path.name).write_text(path.read_text())
    number, last = files[-1]
    (migrations / last.name).rename(migrations / f"{number:04d}_another_branchs_change.sql")
    with pytest.raises(
        db.MigrationMismatch, match=f"migration {number} was applied to this ledger as '{last.name}'"
    ):
        await db.migrate(ledger, migrations)
    assert await db.migrate(ledger) == []  # the code's own files agree with the ledger


async def test_staff_commands_show_only_the_tenant_asked_for(
    ledger: asyncpg.Connection, stack: Stack
) -> None:
    a, b = await two_tenants(ledger)
    env = stack.env(OFFSETSTREAM_DEFAULT_TENANT=b)

    def cli(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "cli.main", *args, "--tenant", a],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        return done.stdout

    assert [r["reference"] for r in json.loads(cli("receivables", "--json"))] == ["FCN910"]
    shown = json.loads(cli("receivable", "FCN910", "--json"))
    assert shown["receivable"]["tenant_id"] == a
    assert {r["payer_id"] for r in shown["interest"]["receivables"]} == {shown["receivable"]["payer_id"]}
    files = [json.loads(line) for line in cli("files", "--json").splitlines()]
    assert len(files) == 1
    reconciliation = cli("reconcile")
    assert "EFT910001" in reconciliation
    assert "EFT920001" not in reconciliation


async def test_a_service_login_cannot_leave_its_role(ledger: asyncpg.Connection, stack: Stack) -> None:
    """docker-compose.yml's logins (infra/postgres/init): each a member of its own group role only."""
    script = REPO_ROOT / "infra" / "postgres" / "init" / "10-service-logins.sh"
    passwords = {f"{r.upper()}_DB_PASSWORD": uuid.uuid4().hex for r in (*SERVICES, "staff", "console")}
    env = stack.env(
        POSTGRES_USER=stack.postgres.user,
        POSTGRES_DB=stack.postgres.database,
        PGHOST="127.0.0.1",
        PGPORT=str(stack.postgres.port),
        PATH=f"{pg_bindir()}:{os.environ['PATH']}",
        **passwords,
    )
    await asyncio.to_thread(
        subprocess.run, ["sh", str(script)], env=env, check=True, capture_output=True, timeout=60
    )
    try:
        login = stack.postgres.dsn.replace(f"//{stack.postgres.user}@", "//offsetstream_detection_login@")
        settings = Settings(database_url=login)
        pool = await db.create_pool(settings, "detection", min_size=1, max_size=1)
        try:
            async with pool.acquire() as conn:
                assert await conn.fetchval("SELECT current_user") == "offsetstream_detection"
                with pytest.raises(asyncpg.InsufficientPrivilegeError):
                    await conn.execute("SET ROLE offsetstream_matching")
                with pytest.raises(asyncpg.InsufficientPrivilegeError):
                    await conn.execute(
                        "RESET ROLE; INSERT INTO matching.receivables (tenant_id) VALUES ('t')"
                    )
        finally:
            await pool.close()
        # The console's login: it may read its users and become staff (read-only, RLS), nothing else.
        console = await asyncpg.connect(
            stack.postgres.dsn.replace(f"//{stack.postgres.user}@", "//offsetstream_console_login@"),
            password=passwords["CONSOLE_DB_PASSWORD"],
        )
        try:
            await console.execute("SET ROLE offsetstream_console")
            await console.fetchval("SELECT count(*) FROM console.users")
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await console.execute("DELETE FROM console.users")
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await console.execute("SET ROLE offsetstream_matching")
            async with db.staff_scope(console, "some-clinic"):
                assert await console.fetchval("SELECT current_user") == "offsetstream_staff"
        finally:
            await console.close()
    finally:
        for role in (*SERVICES, "staff", "console"):
            await ledger.execute(f'DROP ROLE IF EXISTS "offsetstream_{role}_login"')
