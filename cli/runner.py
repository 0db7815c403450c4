"""The embedded pipeline: local Kafka + PostgreSQL, the five services as processes, a webhook receiver.

``make run`` and the integration tests drive the same :class:`Pipeline`, so the README's command is tested.
"""

import asyncio
import secrets
import signal
import time
from pathlib import Path
from types import TracebackType

from aiokafka.errors import KafkaError

from cli import report
from cli.local_infra import Stack, free_port, start_stack, wait_for_port
from cli.receiver import WebhookReceiver
from services.intake import publish
from shared import clock, db, kafka
from shared.kafka_security import CONSOLE
from shared.settings import REPO_ROOT, SERVICES, Settings

MAX_RESTARTS = 5


async def prepare(settings: Settings) -> None:
    """Apply migrations and create topics (idempotent)."""
    conn = await db.connect(settings)
    try:
        await db.migrate(conn)
    finally:
        await conn.close()
    await kafka.create_topics(settings)


class Pipeline:
    """Everything the five stages need, started in order and stopped in reverse."""

    def __init__(
        self,
        stack: Stack,
        *,
        env: dict[str, str] | None = None,
        fail_first: int = 0,
        workers: dict[str, int] | None = None,
        console: bool = False,
    ) -> None:
        self.stack = stack
        self.console = console
        self.console_url = ""
        # The console's session key, like the webhook key: random for this stack only, never a default.
        self.console_env: dict[str, str] = {}
        self.workers = workers or {}
        self.restarts: dict[str, int] = {}
        # A random master key for this stack only (never a default): the services refuse to start without one,
        # and the local receiver verifies each tenant's derived key with it.
        self.webhook_secret = secrets.token_hex(32)
        self.receiver = WebhookReceiver(secret=self.webhook_secret, fail_first=fail_first)
        self.extra_env = dict(env or {})
        # The command line's Kafka login (ingest, consumer lag); topics are created as the broker's admin.
        self.settings = stack.settings("operator")

    async def __aenter__(self) -> "Pipeline":
        await prepare(self.stack.settings("admin"))
        url = await self.receiver.start()
        self.extra_env.update(OFFSETSTREAM_WEBHOOK_URL=url, OFFSETSTREAM_WEBHOOK_SECRET=self.webhook_secret)
        self.extra_env.setdefault("OFFSETSTREAM_INTEREST_TICK_SECONDS", "2")
        for service in SERVICES:
            for worker in range(self.workers.get(service, 1)):
                self.stack.start_service(service, worker_id=worker, extra_env=self.extra_env)
        if self.console:
            await self._start_console()
        return self

    async def _start_console(self) -> None:
        """The staff console on a free loopback port, over plain HTTP (so its cookies are not marked Secure:
        a browser would not send them back over http://127.0.0.1)."""
        port = free_port()
        self.console_env = {
            **self.extra_env,
            "OFFSETSTREAM_CONSOLE_PORT": str(port),
            "OFFSETSTREAM_CONSOLE_SECRET": secrets.token_hex(32),
            "OFFSETSTREAM_CONSOLE_SECURE_COOKIES": "false",
        }
        pid = self.stack.start_service(CONSOLE, extra_env=self.console_env)
        log_file = Path(self.stack.root) / "logs" / f"{CONSOLE}-0.log"
        await asyncio.to_thread(wait_for_port, port, 60.0, "staff console", log_file, pid)
        self.console_url = f"http://127.0.0.1:{port}/"

    async def add_console_user(self, name: str, role: str, tenants: tuple[str, ...]) -> str:
        """Create (or reset) a console user with a random password, as ``offsetstream user add`` does;
        return the password."""
        from services.console import auth, users

        password = secrets.token_urlsafe(12)
        conn = await db.connect(self.settings)
        try:
            await users.add(conn, name, auth.hash_password(password), role, tenants)
        finally:
            await conn.close()
        return password

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        for label in list(self.stack.services):
            await asyncio.to_thread(self.stack.stop_service, label)
        await self.receiver.stop()

    async def ingest(self, paths: list[Path], tenant_id: str) -> int:
        """Publish files to the intake topic, as ``offsetstream ingest`` does."""
        return await publish.publish_files(self.settings, publish.files_under(paths), tenant_id)

    async def settle(self, timeout: float = 120.0, quiet: float = 4.0) -> float:  # noqa: ASYNC109 - also in the error
        """Wait until every stage's consumer lag is 0 and no new event was processed for ``quiet`` seconds."""
        started = time.monotonic()
        conn = await db.connect(self.settings)
        try:
            last_count, stable_since = -1, time.monotonic()
            while time.monotonic() - started < timeout:
                self._check_services()
                try:
                    lag = await kafka.consumer_lag(self.settings)
                except KafkaError:  # coordinator still starting: not settled yet
                    lag = {"unknown": 1}
                count = await conn.fetchval("SELECT count(*) FROM ops.processed_events")
                if count != last_count or any(lag.values()):
                    last_count, stable_since = count, time.monotonic()
                elif time.monotonic() - stable_since >= quiet:
                    return time.monotonic() - started
                await asyncio.sleep(0.5)
        finally:
            await conn.close()
        raise TimeoutError(f"pipeline did not settle within {timeout:.0f}s (lag {lag})")

    def _check_services(self) -> None:
        """Restart a service process that exited, as the deployment's restart policy would (a worker that
        cannot reach the broker at start-up exits); give up after ``MAX_RESTARTS`` for one process."""
        from cli.local_infra import pid_alive

        for label, pid in list(self.stack.services.items()):
            if pid_alive(pid):
                continue
            self.restarts[label] = self.restarts.get(label, 0) + 1
            if self.restarts[label] > MAX_RESTARTS:
                logs = Path(self.stack.root) / "logs"
                raise RuntimeError(f"service {label} exited {MAX_RESTARTS} times; see {logs}")
            service, _, worker = label.rpartition("-")
            self.stack.services.pop(label)
            env = self.console_env if service == CONSOLE else self.extra_env
            self.stack.start_service(service, worker_id=int(worker), extra_env=env)

    async def reconciliation(self, tenant_id: str) -> str:
        """The reconciliation text of one tenant."""
        conn = await db.connect(self.settings)
        try:
            figures = await report.reconciliation(conn, tenant_id)
        finally:
            await conn.close()
        extra = {
            "Webhook deliveries received": f"{sum(self.receiver.deliveries.values())} "
            f"({len(self.receiver.deliveries)} distinct, {self.receiver.duplicates} duplicates, "
            f"{self.receiver.bad_signatures} bad signatures)"
        }
        return report.render(figures, tenant_id, clock.today(self.settings), extra)


def stop_on_sigterm() -> None:
    """Treat SIGTERM (``kill``, ``timeout``, a supervisor) as Ctrl-C: cancel the running command so its
    ``finally`` stops the stack it started. Python's default for SIGTERM ends the process at once, which left
    the broker, PostgreSQL and six service processes running with nobody to stop them."""
    task = asyncio.current_task()
    if task is not None:
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)


async def run_demo(examples: Path, tenant_id: str, keep: bool) -> int:
    """``make run``: start everything, feed the example files, print the reconciliation, stop."""
    root = REPO_ROOT / ".local" / "run"
    started = time.monotonic()
    stop_on_sigterm()
    print(f"starting local Kafka and PostgreSQL under {root} ...", flush=True)
    stack = await asyncio.to_thread(start_stack, root, "run")
    try:
        async with Pipeline(stack, console=keep) as pipeline:
            print(f"services up: {', '.join(stack.services)}; feeding {examples}", flush=True)
            count = await pipeline.ingest([examples], tenant_id)
            waited = await pipeline.settle()
            print(
                f"{count} files processed; pipeline settled in {waited:.1f}s "
                f"(total {time.monotonic() - started:.1f}s)"
            )
            print(await pipeline.reconciliation(tenant_id))
            if keep:
                password = await pipeline.add_console_user("demo", "admin", (tenant_id,))
                print(
                    f"\nstaff console: {pipeline.console_url}  (log in as demo / {password}: an admin of "
                    f"{tenant_id}; more users: offsetstream user add)"
                )
                exports = "\n".join(stack.exports())
                print(
                    f"kept running (Kafka {stack.kafka.bootstrap}, PostgreSQL {stack.postgres.dsn}).\n"
                    f"To use the command line against it, in another shell:\n{exports}\n"
                    "  offsetstream reconcile --tenant " + tenant_id + "\nCtrl-C to stop",
                    flush=True,
                )
                await asyncio.Event().wait()
    finally:
        await asyncio.to_thread(stack.stop)
    return 0
