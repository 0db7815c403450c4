"""Start and stop the real local infrastructure without Docker: a KRaft Kafka broker (or a cluster of them,
``start_stack(..., brokers=3)``) and a PostgreSQL cluster.

Both bind 127.0.0.1 on free ports, keep their data under ``<data_dir>/<stack>/`` (ignored by git), write logs to
files and are stopped by the PID they were started with. ``make run``, the test harness and the benchmark all use
this module, so what the tests prove is what the README's command runs.

The broker is secured as in docker-compose.yml (docs/security.md "Kafka"): clients log in with SASL/SCRAM-SHA-512,
one principal per service plus ``operator`` (the command line) and ``admin`` (the super user, topics and ACLs), with
passwords generated for each start; KRaft's StandardAuthorizer denies whatever ``shared.kafka_security``'s ACLs do
not allow. The controller listener takes SASL/PLAIN for ``admin`` only (SCRAM cannot serve it: its credentials
live in the metadata the controller serves).
"""

import contextlib
import json
import os
import secrets
import shlex
import signal
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from cli.local_kafka import (
    KafkaInfo,
    KafkaNode,
    kafka_libs,
    restart_kafka,
    restart_node,
    start_kafka,
    stop_node,
)
from cli.local_postgres import PostgresInfo, pg_bindir, restart_postgres, start_postgres
from cli.processes import InfraError, free_port, pid_alive, stop_pid, wait_for_port
from shared.kafka_security import CONSOLE
from shared.settings import REPO_ROOT, SERVICES, Settings

__all__ = [
    "InfraError",
    "KafkaInfo",
    "KafkaNode",
    "PostgresInfo",
    "Stack",
    "free_port",
    "pg_bindir",
    "pid_alive",
    "start_stack",
    "stop_pid",
    "wait_for_port",
]


# --- Kafka ------------------------------------------------------------------------------------------------------


# --- PostgreSQL -------------------------------------------------------------------------------------------------


# --- the whole stack ---------------------------------------------------------------------------------------------


def phi_key_of_environment() -> str:
    """``OFFSETSTREAM_PHI_KEY`` when set, else a fresh random key (never a default one)."""
    return os.environ.get("OFFSETSTREAM_PHI_KEY") or secrets.token_hex(32)


@dataclass
class Stack:
    """A running local broker + database (+ service processes), recorded in ``state.json`` for ``infra down``."""

    name: str
    root: str
    kafka: KafkaInfo
    postgres: PostgresInfo
    services: dict[str, int]
    web_ports: dict[str, int] = field(default_factory=dict)
    phi_key: str = field(default_factory=phi_key_of_environment, repr=False)
    """The key of this stack's PHI digests (``OFFSETSTREAM_PHI_KEY``, shared.phi.configure_key): the
    environment's when it has one (an operator's, the test session's), else random for this stack. Intake and
    notification must share it, so every process of the stack gets it from here."""

    @property
    def state_file(self) -> Path:
        """Where the stack records its PIDs and ports."""
        return Path(self.root) / "state.json"

    def env(self, principal: str = "operator", **extra: str) -> dict[str, str]:
        """Environment for a process that talks to this stack, logged in to Kafka as ``principal`` (a service
        name, ``operator`` for the command line, or ``admin``)."""
        env = dict(os.environ)
        env.update(self.kafka.login_env(principal))
        env.update(
            OFFSETSTREAM_DATABASE_URL=self.postgres.dsn,
            OFFSETSTREAM_DATA_DIR=str(Path(self.root) / "data"),
            OFFSETSTREAM_PHI_KEY=self.phi_key,
        )
        env.update(extra)
        return env

    def exports(self, principal: str = "operator") -> list[str]:
        """``export OFFSETSTREAM_…=…`` lines a shell pastes to run the command line against this stack (the
        broker's passwords are generated on every start, so they cannot be written down in advance)."""
        ours = {k: v for k, v in self.env(principal).items() if k.startswith("OFFSETSTREAM_")}
        return [f"export {key}={shlex.quote(value)}" for key, value in sorted(ours.items())]

    def settings(self, principal: str = "admin", **overrides: object) -> Settings:
        """Settings of an in-process client of this stack (broker login as ``principal``, the database)."""
        defaults: dict[str, object] = {
            "database_url": self.postgres.dsn,
            "data_dir": Path(self.root) / "data",
            "phi_key": self.phi_key,
        }
        return self.kafka.settings(principal, **{**defaults, **overrides})

    def save(self) -> None:
        """Persist the PIDs, ports and the broker's generated passwords (readable by the owner only)."""
        self.state_file.touch(mode=0o600)
        self.state_file.write_text(json.dumps(asdict(self), indent=2))

    @classmethod
    def load(cls, root: Path) -> "Stack":
        """Read a stack recorded by :meth:`save`."""
        raw = json.loads((root / "state.json").read_text())
        return cls(
            name=raw["name"],
            root=raw["root"],
            kafka=KafkaInfo.from_dict(raw["kafka"]),
            postgres=PostgresInfo(**raw["postgres"]),
            services=raw["services"],
            web_ports=raw.get("web_ports", {}),
            phi_key=raw.get("phi_key") or phi_key_of_environment(),
        )

    def start_service(
        self, service: str, *, worker_id: int = 0, extra_env: dict[str, str] | None = None
    ) -> int:
        """Run one stage as its own OS process (``python -m services.<name> worker``); return its PID. The
        staff console (``service="console"``) runs as ``python -m services.console`` under its own Kafka login;
        its port, session key and cookie settings come in ``extra_env``."""
        if service not in (*SERVICES, CONSOLE):
            raise ValueError(f"unknown service {service!r}")
        logs = Path(self.root) / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        label = f"{service}-{worker_id}"
        port = free_port()
        env = self.env(
            service,
            OFFSETSTREAM_WORKER_ID=str(worker_id),
            OFFSETSTREAM_WEB_PORT=str(port),
            **(extra_env or {}),
        )
        out = (logs / f"{label}.log").open("ab")
        command = [sys.executable, "-m", f"services.{service}"]
        proc = subprocess.Popen(
            command if service == CONSOLE else [*command, "worker", "-l", "info"],
            cwd=REPO_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.services[label] = proc.pid
        self.web_ports[label] = port
        self.save()
        return proc.pid

    def stop_service(self, label: str, *, kill: bool = False) -> None:
        """Stop one service process (SIGTERM, or SIGKILL to simulate a crash)."""
        pid = self.services.pop(label, None)
        if pid is not None:
            stop_pid(pid, timeout=2.0 if kill else 30.0, sig=signal.SIGKILL if kill else signal.SIGTERM)
        self.save()

    @property
    def bootstrap(self) -> str:
        """bootstrap.servers of the stack's broker(s), comma-separated."""
        return self.kafka.bootstrap

    @property
    def brokers(self) -> int:
        """How many Kafka nodes the stack runs."""
        return len(self.kafka.nodes)

    def restart_kafka(self) -> None:
        """Restart every broker in place (fault tests)."""
        self.kafka = restart_kafka(self.kafka)
        self.save()

    def kill_broker(self, index: int, *, kill: bool = True) -> None:
        """Stop broker ``index`` (0-based) by its PID: SIGKILL, a crash, unless ``kill`` is false (SIGTERM)."""
        stop_node(self.kafka, index, kill=kill)

    def restart_broker(self, index: int) -> None:
        """Start broker ``index`` again on its data and ports (stopping it first if it still runs)."""
        self.kafka = restart_node(self.kafka, index)
        self.save()

    def restart_postgres(self) -> None:
        """Restart the database in place (fault tests)."""
        self.postgres = restart_postgres(self.postgres)
        self.save()

    def stop(self) -> None:
        """Stop services, then the broker, then the database — each by its PID."""
        for label in list(self.services):
            self.stop_service(label)
        for node in self.kafka.nodes:
            stop_pid(node.pid, timeout=30.0)
        stop_pid(self.postgres.pid, timeout=30.0, sig=signal.SIGINT)
        with contextlib.suppress(FileNotFoundError):
            self.state_file.unlink()


def start_stack(
    root: Path,
    name: str = "local",
    *,
    durable: bool = True,
    brokers: int = 1,
    postgres_settings: Sequence[str] = (),
) -> Stack:
    """Start Kafka and PostgreSQL for one stack under ``root`` (fresh data every time). ``brokers=3`` runs a
    KRaft cluster of three combined nodes (replication factor 3, ``min.insync.replicas=2``) instead of one;
    ``postgres_settings`` are extra server settings (see :func:`cli.local_postgres.start_postgres`)."""
    root = root.resolve()
    root.mkdir(parents=True, exist_ok=True)
    libs = kafka_libs(REPO_ROOT / ".local")
    postgres = start_postgres(root / "postgres", durable=durable, extra=postgres_settings)
    try:
        kafka = start_kafka(root / "kafka", libs, brokers=brokers)
    except Exception:
        stop_pid(postgres.pid, sig=signal.SIGINT)
        raise
    stack = Stack(name=name, root=str(root), kafka=kafka, postgres=postgres, services={})
    stack.save()
    return stack
