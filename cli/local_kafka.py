"""The local Kafka broker: KRaft, one node, assembled from Maven Central jars (``infra/kafka/pom.xml``), bound to
127.0.0.1 on a free port and secured as in docker-compose.yml: SASL/SCRAM-SHA-512 logins per principal with
passwords generated for each start, KRaft's StandardAuthorizer denying whatever ``shared.kafka_security``'s ACLs
do not allow, and a controller listener taking SASL/PLAIN for ``admin`` only (SCRAM cannot serve it: its
credentials live in the metadata the controller serves)."""

import base64
import secrets
import shutil
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from cli.processes import InfraError, free_port, stop_pid, wait_for_port
from shared.kafka_security import ADMIN, PRINCIPALS, create_acls
from shared.settings import REPO_ROOT, Settings

KAFKA_POM = REPO_ROOT / "infra" / "kafka" / "pom.xml"


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
