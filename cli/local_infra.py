"""Start and stop the real local infrastructure without Docker: a KRaft Kafka broker and a PostgreSQL cluster.

Both bind 127.0.0.1 on free ports, keep their data under ``<data_dir>/<stack>/`` (ignored by git), write logs to
files and are stopped by the PID they were started with. ``make run``, the test harness and the benchmark all use
this module, so what the tests prove is what the README's command runs.

The broker is secured as in docker-compose.yml (docs/security.md "Kafka"): clients log in with SASL/SCRAM-SHA-512,
one principal per service plus ``operator`` (the command line) and ``admin`` (the super user, topics and ACLs), with
passwords generated for each start; KRaft's StandardAuthorizer denies whatever ``shared.kafka_security``'s ACLs do
not allow. The controller listener takes SASL/PLAIN for ``admin`` only (SCRAM cannot serve it: its credentials
live in the metadata the controller serves).
"""

import base64
import contextlib
import hashlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

from shared.kafka_security import ADMIN, PRINCIPALS, create_acls
from shared.settings import REPO_ROOT, SERVICES, Settings

KAFKA_POM = REPO_ROOT / "infra" / "kafka" / "pom.xml"


class InfraError(RuntimeError):
    """A local server could not be prepared or did not become ready; the message names its log file."""


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float, what: str, log_file: Path, pid: int | None = None) -> None:
    """Block until something accepts connections on the port, or fail naming the log to read."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pid is not None and not pid_alive(pid):
            raise InfraError(f"{what} exited during start-up; see {log_file}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        time.sleep(0.2)
    raise InfraError(f"{what} not ready on port {port} after {timeout:.0f}s; see {log_file}")


def pid_alive(pid: int) -> bool:
    """True while the process exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return False
    return True


def stop_pid(pid: int, timeout: float = 20.0, sig: int = signal.SIGTERM) -> None:
    """Signal a process group leader, wait, and SIGKILL it if it lingers."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, sig)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and pid_alive(pid):
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        time.sleep(0.1)
    if pid_alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)


# --- Kafka ------------------------------------------------------------------------------------------------------


def kafka_libs(data_dir: Path) -> Path:
    """The broker's jars, resolved from Maven Central on first use (infra/kafka/pom.xml is the manifest)."""
    libs = data_dir / "kafka" / "libs"
    marker = libs / ".complete"
    if marker.exists() and marker.read_text() == KAFKA_POM.read_text():
        return libs
    if shutil.which("mvn") is None:
        raise InfraError(
            "Maven (mvn) is needed to fetch the Kafka jars; install it with apt-get install maven"
        )
    if libs.exists():
        shutil.rmtree(libs)
    libs.mkdir(parents=True)
    result = subprocess.run(
        [
            "mvn",
            "-q",
            "-B",
            "-f",
            str(KAFKA_POM),
            "dependency:copy-dependencies",
            f"-DoutputDirectory={libs}",
            "-DincludeScope=runtime",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise InfraError(
            f"mvn could not resolve the Kafka jars:\n{result.stdout[-2000:]}{result.stderr[-2000:]}"
        )
    marker.write_text(KAFKA_POM.read_text())
    return libs


@dataclass
class KafkaInfo:
    """What a started broker's clients need, and how to stop it."""

    port: int
    controller_port: int
    pid: int
    home: str
    users: dict[str, str] = field(default_factory=dict)
    """principal → SCRAM password, generated for this broker (never a default)."""

    @property
    def bootstrap(self) -> str:
        """bootstrap.servers for clients."""
        return f"127.0.0.1:{self.port}"

    def login_env(self, principal: str) -> dict[str, str]:
        """The ``OFFSETSTREAM_KAFKA_*`` variables of a process logging in as ``principal``."""
        return {
            "OFFSETSTREAM_KAFKA_BOOTSTRAP": self.bootstrap,
            "OFFSETSTREAM_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
            "OFFSETSTREAM_KAFKA_SASL_MECHANISM": SCRAM,
            "OFFSETSTREAM_KAFKA_USERNAME": principal,
            "OFFSETSTREAM_KAFKA_PASSWORD": self.users[principal],
        }

    def settings(self, principal: str = ADMIN, **overrides: object) -> Settings:
        """Settings of an in-process client of this broker logging in as ``principal``."""
        login: dict[str, object] = {
            "kafka_bootstrap": self.bootstrap,
            "kafka_security_protocol": "SASL_PLAINTEXT",
            "kafka_sasl_mechanism": SCRAM,
            "kafka_username": principal,
            "kafka_password": self.users[principal],
        }
        return Settings(**{**login, **overrides})  # type: ignore[arg-type]


SCRAM = "SCRAM-SHA-512"


def _jaas(module: str, user: str, password: str, **extra: str) -> str:
    options = " ".join(f'{k}="{v}"' for k, v in {"username": user, "password": password, **extra}.items())
    return f"org.apache.kafka.common.security.{module} required {options};"


def start_kafka(home: Path, libs: Path, *, heap: str = "512m", timeout: float = 90.0) -> KafkaInfo:
    """Format a fresh KRaft single-node (broker+controller) store in ``home`` and start the broker."""
    home = home.resolve()
    if home.exists():
        shutil.rmtree(home)
    (home / "logs").mkdir(parents=True)
    port, cport = free_port(), free_port()
    users = {principal: secrets.token_hex(24) for principal in PRINCIPALS}
    admin_password = users[ADMIN]
    props = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@127.0.0.1:{cport}",
        "listeners": f"CLIENT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{cport}",
        "advertised.listeners": f"CLIENT://127.0.0.1:{port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "CLIENT",
        "listener.security.protocol.map": "CLIENT:SASL_PLAINTEXT,CONTROLLER:SASL_PLAINTEXT",
        "sasl.mechanism.inter.broker.protocol": SCRAM,
        "sasl.mechanism.controller.protocol": "PLAIN",
        "listener.name.client.sasl.enabled.mechanisms": SCRAM,
        f"listener.name.client.{SCRAM.lower()}.sasl.jaas.config": _jaas(
            "scram.ScramLoginModule", ADMIN, admin_password
        ),
        "listener.name.controller.sasl.enabled.mechanisms": "PLAIN",
        "listener.name.controller.plain.sasl.jaas.config": _jaas(
            "plain.PlainLoginModule", ADMIN, admin_password, **{f"user_{ADMIN}": admin_password}
        ),
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "super.users": f"User:{ADMIN}",
        "allow.everyone.if.no.acl.found": "false",
        "log.dirs": str(home / "data"),
        "num.partitions": "3",
        "auto.create.topics.enable": "false",
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "10",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "group.initial.rebalance.delay.ms": "0",
        "message.max.bytes": str(16 * 1024 * 1024),
        "replica.fetch.max.bytes": str(16 * 1024 * 1024),
        "log.retention.hours": "-1",
    }
    config = home / "server.properties"
    config.touch(mode=0o600)  # it holds the admin password
    config.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
    log4j = home / "log4j.properties"
    log4j.write_text(
        "log4j.rootLogger=INFO, file\n"
        "log4j.appender.file=org.apache.log4j.FileAppender\n"
        f"log4j.appender.file.File={home / 'logs' / 'server.log'}\n"
        "log4j.appender.file.layout=org.apache.log4j.PatternLayout\n"
        "log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n\n"
        "log4j.logger.kafka=INFO\nlog4j.logger.org.apache.kafka=INFO\n"
    )
    java = _kafka_java(home, libs, heap)
    cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode()[:22]
    fmt = subprocess.run(
        [
            *java,
            "kafka.tools.StorageTool",
            "format",
            f"--cluster-id={cluster_id}",
            "-c",
            str(config),
            *(f"--add-scram={SCRAM}=[name={user},password={password}]" for user, password in users.items()),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if fmt.returncode != 0:
        raise InfraError(f"Kafka storage format failed: {fmt.stdout[-1500:]}{fmt.stderr[-1500:]}")
    pid = _launch_kafka(home, libs, heap, port, timeout)
    info = KafkaInfo(port=port, controller_port=cport, pid=pid, home=str(home), users=users)
    try:
        _create_acls(info, timeout)
    except BaseException:
        stop_pid(pid)
        raise
    return info


def _create_acls(info: KafkaInfo, timeout: float) -> None:
    """Give every principal its ACLs (shared.kafka_security), retrying while the broker finishes starting."""
    import asyncio

    from aiokafka.errors import KafkaError

    deadline = time.monotonic() + timeout
    while True:
        try:
            asyncio.run(create_acls(info.settings(ADMIN)))
            return
        except (KafkaError, OSError) as exc:
            if time.monotonic() > deadline:
                raise InfraError(f"could not create the Kafka ACLs ({exc!r}); see {info.home}/logs") from exc
            time.sleep(0.5)


def _kafka_java(home: Path, libs: Path, heap: str) -> list[str]:
    return [
        "java",
        f"-Xmx{heap}",
        f"-Xms{heap}",
        "-XX:+UseG1GC",
        "-Djava.awt.headless=true",
        f"-Dlog4j.configuration=file:{home / 'log4j.properties'}",
        f"-Dkafka.logs.dir={home / 'logs'}",
        "-cp",
        f"{libs}/*",
    ]


def _launch_kafka(home: Path, libs: Path, heap: str, port: int, timeout: float) -> int:
    """Run the broker on an already formatted store; return its PID once it accepts connections."""
    stdout = (home / "logs" / "stdout.log").open("ab")
    proc = subprocess.Popen(
        [*_kafka_java(home, libs, heap), "kafka.Kafka", str(home / "server.properties")],
        stdout=stdout,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    (home / "kafka.pid").write_text(str(proc.pid))
    wait_for_port(port, timeout, "Kafka broker", home / "logs" / "server.log", proc.pid)
    return proc.pid


def restart_kafka(info: KafkaInfo, *, heap: str = "512m", timeout: float = 90.0) -> KafkaInfo:
    """Stop the broker (SIGTERM, clean shutdown) and start it again on the same data, ports and topics."""
    stop_pid(info.pid, timeout=60.0)
    libs = kafka_libs(REPO_ROOT / ".local")
    pid = _launch_kafka(Path(info.home), libs, heap, info.port, timeout)
    return KafkaInfo(
        port=info.port, controller_port=info.controller_port, pid=pid, home=info.home, users=info.users
    )


# --- PostgreSQL -------------------------------------------------------------------------------------------------


def pg_bindir() -> Path:
    """Directory of Debian's PostgreSQL server binaries (highest version installed)."""
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    if candidates:
        return candidates[-1].parent
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    raise InfraError("PostgreSQL server binaries not found; install them with apt-get install postgresql")


def _reachable_by_db_owner(home: Path) -> Path:
    """``home``, or a folder under the temp dir when the ``postgres`` user cannot reach it (a checkout under
    /root, say): the server runs as that user and must be able to open its own data directory."""
    if os.geteuid() != 0:
        return home
    home.parent.mkdir(parents=True, exist_ok=True)
    probe = subprocess.run(["runuser", "-u", "postgres", "--", "test", "-x", str(home.parent)], check=False)
    if probe.returncode == 0:
        return home
    digest = hashlib.sha256(str(home).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"offsetstream-pg-{digest}"


def _as_db_owner(cmd: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: run its tools as the ``postgres`` user when we are root."""
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *cmd]
    return cmd


@dataclass
class PostgresInfo:
    """A started PostgreSQL cluster: its port, PID and the DSN of the project's database."""

    port: int
    pid: int
    home: str
    database: str = "offsetstream"
    user: str = "offsetstream"

    @property
    def dsn(self) -> str:
        """asyncpg/libpq DSN over TCP on 127.0.0.1."""
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{self.database}"


def start_postgres(home: Path, *, durable: bool = True, timeout: float = 60.0) -> PostgresInfo:
    """initdb a fresh cluster in ``home`` (owned by the DB user), start it, create the project database."""
    home = _reachable_by_db_owner(home.resolve())
    if home.exists():
        shutil.rmtree(home)
    data = home / "data"
    home.mkdir(parents=True)
    if os.geteuid() == 0:
        shutil.chown(home, "postgres", "postgres")
    bindir = pg_bindir()
    log_file = home / "postgres.log"
    init = subprocess.run(
        _as_db_owner(
            [
                str(bindir / "initdb"),
                "-D",
                str(data),
                "-U",
                "offsetstream",
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
                "--no-sync",
            ]
        ),
        capture_output=True,
        text=True,
        check=False,
    )
    if init.returncode != 0:
        raise InfraError(f"initdb failed: {init.stderr[-1500:]}")
    port = free_port()
    settings = [
        f"port={port}",
        "listen_addresses='127.0.0.1'",
        f"unix_socket_directories='{home}'",
        "max_connections=200",
        "shared_buffers=256MB",
        "log_min_messages=warning",
    ]
    if not durable:
        settings += ["fsync=off", "synchronous_commit=off", "full_page_writes=off"]
    with (data / "postgresql.auto.conf").open("a") as conf:
        conf.write("".join(f"{line}\n" for line in settings))
    if os.geteuid() == 0:
        subprocess.run(["chown", "-R", "postgres:postgres", str(home)], check=True)
    pid = _launch_postgres(home, port, timeout)
    info = PostgresInfo(port=port, pid=pid, home=str(home))
    deadline = time.monotonic() + timeout
    while True:
        created = subprocess.run(
            _as_db_owner(
                [
                    str(bindir / "createdb"),
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(port),
                    "-U",
                    "offsetstream",
                    "offsetstream",
                ]
            ),
            capture_output=True,
            text=True,
            check=False,
        )
        if created.returncode == 0 or "already exists" in created.stderr:
            return info
        if time.monotonic() > deadline:
            raise InfraError(f"createdb failed: {created.stderr[-1000:]}; see {log_file}")
        time.sleep(0.3)


def _launch_postgres(home: Path, port: int, timeout: float) -> int:
    """Run the server on an initialised data directory; return its PID once it accepts connections."""
    log_file = home / "postgres.log"
    proc = subprocess.Popen(
        _as_db_owner([str(pg_bindir() / "postgres"), "-D", str(home / "data")]),
        stdout=log_file.open("ab"),
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    (home / "postgres.pid").write_text(str(proc.pid))
    deadline = time.monotonic() + timeout
    wait_for_port(port, timeout, "PostgreSQL", log_file, proc.pid)
    # The port opens before recovery ends ("the database system is starting up"): wait until it takes sessions.
    ready = [str(pg_bindir() / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(port)]
    while subprocess.run(ready, check=False).returncode != 0:
        if time.monotonic() > deadline:
            raise InfraError(f"PostgreSQL did not accept connections within {timeout:.0f} s; see {log_file}")
        time.sleep(0.1)
    return proc.pid


def restart_postgres(info: PostgresInfo, *, timeout: float = 60.0) -> PostgresInfo:
    """Stop the server (fast shutdown: open connections are cut, as in a real failover) and start it again."""
    stop_pid(info.pid, timeout=60.0, sig=signal.SIGINT)
    pid = _launch_postgres(Path(info.home), info.port, timeout)
    return PostgresInfo(port=info.port, pid=pid, home=info.home, database=info.database, user=info.user)


# --- the whole stack ---------------------------------------------------------------------------------------------


@dataclass
class Stack:
    """A running local broker + database (+ service processes), recorded in ``state.json`` for ``infra down``."""

    name: str
    root: str
    kafka: KafkaInfo
    postgres: PostgresInfo
    services: dict[str, int]
    web_ports: dict[str, int] = field(default_factory=dict)

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
        )
        env.update(extra)
        return env

    def settings(self, principal: str = "admin", **overrides: object) -> Settings:
        """Settings of an in-process client of this stack (broker login as ``principal``, the database)."""
        defaults: dict[str, object] = {
            "database_url": self.postgres.dsn,
            "data_dir": Path(self.root) / "data",
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
            kafka=KafkaInfo(**raw["kafka"]),
            postgres=PostgresInfo(**raw["postgres"]),
            services=raw["services"],
            web_ports=raw.get("web_ports", {}),
        )

    def start_service(
        self, service: str, *, worker_id: int = 0, extra_env: dict[str, str] | None = None
    ) -> int:
        """Run one stage as its own OS process (``python -m services.<name> worker``); return its PID."""
        if service not in SERVICES:
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
        proc = subprocess.Popen(
            [sys.executable, "-m", f"services.{service}", "worker", "-l", "info"],
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

    def restart_kafka(self) -> None:
        """Restart the broker in place (fault tests)."""
        self.kafka = restart_kafka(self.kafka)
        self.save()

    def restart_postgres(self) -> None:
        """Restart the database in place (fault tests)."""
        self.postgres = restart_postgres(self.postgres)
        self.save()

    def stop(self) -> None:
        """Stop services, then the broker, then the database — each by its PID."""
        for label in list(self.services):
            self.stop_service(label)
        stop_pid(self.kafka.pid, timeout=30.0)
        stop_pid(self.postgres.pid, timeout=30.0, sig=signal.SIGINT)
        with contextlib.suppress(FileNotFoundError):
            self.state_file.unlink()


def start_stack(root: Path, name: str = "local", *, durable: bool = True) -> Stack:
    """Start Kafka and PostgreSQL for one stack under ``root`` (fresh data every time)."""
    root = root.resolve()
    root.mkdir(parents=True, exist_ok=True)
    libs = kafka_libs(REPO_ROOT / ".local")
    postgres = start_postgres(root / "postgres", durable=durable)
    try:
        kafka = start_kafka(root / "kafka", libs)
    except Exception:
        stop_pid(postgres.pid, sig=signal.SIGINT)
        raise
    stack = Stack(name=name, root=str(root), kafka=kafka, postgres=postgres, services={})
    stack.save()
    return stack
