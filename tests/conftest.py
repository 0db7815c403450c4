"""Test harness: a real Kafka broker and a real PostgreSQL, started once per session for integration tests.

Unit and contract tests never touch them (the fixture is lazy). Each integration test uses its own tenant id,
so tests share one broker and one database without seeing each other's rows.
"""

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest

from cli.local_infra import Stack, start_stack
from cli.runner import prepare
from shared import phi
from shared.settings import REPO_ROOT, Settings

# One PHI digest key for the whole session, as one deployment has: the test process (which digests expected
# tokens with shared.phi), the stages it builds in process and the service processes of the stack (Stack.env
# passes it on) must all key digests alike. A value of the environment wins, as in production.
os.environ.setdefault("OFFSETSTREAM_PHI_KEY", "offsetstream-test-session-phi-digest-key")
phi.configure_key(os.environ["OFFSETSTREAM_PHI_KEY"])


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    """Kafka (KRaft) + PostgreSQL on free loopback ports, data under .local/test-<pid>, stopped by PID."""
    root = REPO_ROOT / ".local" / f"test-{os.getpid()}"
    started = start_stack(root, "test", durable=False)
    try:
        asyncio.run(prepare(started.settings("admin")))
        yield started
    finally:
        started.stop()
        # keep the services' logs for a failed run; drop the data
        shutil.rmtree(started.postgres.home, ignore_errors=True)
        for data in ("kafka", "postgres", "data"):
            shutil.rmtree(Path(started.root) / data, ignore_errors=True)


@pytest.fixture
def stack_settings(stack: Stack) -> Settings:
    """Settings pointing at the session's broker and database; Kafka login as the broker's admin (the tests
    drive topics no single principal may touch; tests/integration/test_kafka_acl.py checks the principals)."""
    return stack.settings("admin")


@pytest.fixture
async def ledger(stack: Stack) -> AsyncIterator[asyncpg.Connection]:
    """A connection to the session's ledger database."""
    conn = await asyncpg.connect(stack.postgres.dsn)
    try:
        yield conn
    finally:
        await conn.close()


@pytest.fixture
def tenant() -> str:
    """A tenant id of this test alone."""
    return f"tenant-{uuid.uuid4().hex[:12]}"
