"""The local Kafka broker: KRaft, one node or a cluster of N combined nodes (``brokers=3``: replication factor 3,
``min.insync.replicas=2``), assembled from Maven Central jars (``infra/kafka/pom.xml``), bound to 127.0.0.1 on
free ports and secured as in docker-compose.yml: SASL/SCRAM-SHA-512 logins per principal with
passwords generated for each start, KRaft's StandardAuthorizer denying whatever ``shared.kafka_security``'s ACLs
do not allow, and a controller listener taking SASL/PLAIN for ``admin`` only (SCRAM cannot serve it: its
credentials live in the metadata the controller serves)."""

import base64
import secrets
import shutil
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

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


SCRAM = "SCRAM-SHA-512"


@dataclass
class KafkaNode:
    """One KRaft node of the local cluster: broker and controller in one JVM, with its own ports, data
    directory, log and PID."""

    node_id: int
    port: int
    controller_port: int
    pid: int
    home: str

    @property
    def address(self) -> str:
        """host:port of its client listener."""
        return f"127.0.0.1:{self.port}"


@dataclass
class KafkaInfo:
    """What a started broker (or cluster of brokers) clients need, and how to stop each node."""

    nodes: list[KafkaNode]
    users: dict[str, str] = field(default_factory=dict)
    """principal → SCRAM password, generated for this start (never a default), the same on every node."""
    heap: str = "512m"

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> "KafkaInfo":
        """The inverse of ``dataclasses.asdict`` (``Stack.load``)."""
        return cls(
            nodes=[KafkaNode(**node) for node in raw["nodes"]],
            users=dict(raw.get("users", {})),
            heap=str(raw.get("heap", "512m")),
        )

    @property
    def bootstrap(self) -> str:
        """bootstrap.servers for clients: every node, so a client still starts while one of them is down."""
        return ",".join(node.address for node in self.nodes)

    @property
    def replication_factor(self) -> int:
        """Replicas of every topic: three on a cluster of three or more nodes, else one per node."""
        return replication_factor(len(self.nodes))

    @property
    def min_insync_replicas(self) -> int:
        """Replicas that must have a record before an ``acks=all`` send succeeds: two of three, so one node
        may be down without stopping producers and no acknowledged record lives on one disk only."""
        return min_insync_replicas(len(self.nodes))

    def login_env(self, principal: str) -> dict[str, str]:
        """The ``OFFSETSTREAM_KAFKA_*`` variables of a process logging in as ``principal``."""
        return {
            "OFFSETSTREAM_KAFKA_BOOTSTRAP": self.bootstrap,
            "OFFSETSTREAM_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
            "OFFSETSTREAM_KAFKA_SASL_MECHANISM": SCRAM,
            "OFFSETSTREAM_KAFKA_USERNAME": principal,
            "OFFSETSTREAM_KAFKA_PASSWORD": self.users[principal],
            "OFFSETSTREAM_KAFKA_REPLICATION_FACTOR": str(self.replication_factor),
            "OFFSETSTREAM_KAFKA_MIN_INSYNC_REPLICAS": str(self.min_insync_replicas),
        }

    def settings(self, principal: str = ADMIN, **overrides: object) -> Settings:
        """Settings of an in-process client of this broker logging in as ``principal``."""
        login: dict[str, object] = {
            "kafka_bootstrap": self.bootstrap,
            "kafka_security_protocol": "SASL_PLAINTEXT",
            "kafka_sasl_mechanism": SCRAM,
            "kafka_username": principal,
            "kafka_password": self.users[principal],
            "kafka_replication_factor": self.replication_factor,
            "kafka_min_insync_replicas": self.min_insync_replicas,
        }
        return Settings(**{**login, **overrides})  # type: ignore[arg-type]


def replication_factor(brokers: int) -> int:
    """Replicas per topic (internal topics included) on a local cluster of ``brokers`` nodes."""
    return min(3, brokers)


def min_insync_replicas(brokers: int) -> int:
    """``min.insync.replicas`` on a local cluster of ``brokers`` nodes: 2 from three nodes on, else 1."""
    return 2 if brokers >= 3 else 1


def _jaas(module: str, user: str, password: str, **extra: str) -> str:
    options = " ".join(f'{k}="{v}"' for k, v in {"username": user, "password": password, **extra}.items())
    return f"org.apache.kafka.common.security.{module} required {options};"


def _server_properties(
    node_id: int, home: Path, ports: list[tuple[int, int]], admin_password: str
) -> dict[str, str]:
    """server.properties of node ``node_id`` (1-based) of a cluster whose nodes listen on ``ports`` (client,
    controller) — every node is a broker and a voter of the static controller quorum."""
    port, cport = ports[node_id - 1]
    brokers = len(ports)
    rf, min_isr = replication_factor(brokers), min_insync_replicas(brokers)
    voters = ",".join(f"{i}@127.0.0.1:{c}" for i, (_, c) in enumerate(ports, start=1))
    return {
        "process.roles": "broker,controller",
        "node.id": str(node_id),
        "controller.quorum.voters": voters,
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
        "default.replication.factor": str(rf),
        "min.insync.replicas": str(min_isr),
        "offsets.topic.replication.factor": str(rf),
        "offsets.topic.num.partitions": "10",
        "transaction.state.log.replication.factor": str(rf),
        "transaction.state.log.min.isr": str(min_isr),
        "unclean.leader.election.enable": "false",
        "group.initial.rebalance.delay.ms": "0",
        "message.max.bytes": str(16 * 1024 * 1024),
        "replica.fetch.max.bytes": str(16 * 1024 * 1024),
        "log.retention.hours": "-1",
    }


def start_kafka(
    home: Path, libs: Path, *, brokers: int = 1, heap: str = "512m", timeout: float = 90.0
) -> KafkaInfo:
    """Format fresh KRaft stores and start ``brokers`` combined nodes (broker + controller, every one a voter),
    then give every principal its ACLs. One node lives in ``home`` itself; a cluster's node ``i`` in
    ``home/node-<i>``, each with its own ports, data, log and PID. Every node is formatted with the same
    cluster id and the same SCRAM logins (whichever node becomes the active controller first writes them into
    the metadata log); the ACLs are created once the quorum has elected a leader and every broker has
    registered, so topics with replication factor 3 can be created right after."""
    if brokers < 1:
        raise ValueError("brokers must be at least 1")
    home = home.resolve()
    if home.exists():
        shutil.rmtree(home)
    homes = [home] if brokers == 1 else [home / f"node-{i}" for i in range(1, brokers + 1)]
    ports = [(free_port(), free_port()) for _ in homes]
    users = {principal: secrets.token_hex(24) for principal in PRINCIPALS}
    cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode()[:22]
    formats = []
    for node_id, node_home in enumerate(homes, start=1):
        (node_home / "logs").mkdir(parents=True)
        props = _server_properties(node_id, node_home, ports, users[ADMIN])
        config = node_home / "server.properties"
        config.touch(mode=0o600)  # it holds the admin password
        config.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
        (node_home / "log4j.properties").write_text(
            "log4j.rootLogger=INFO, file\n"
            "log4j.appender.file=org.apache.log4j.FileAppender\n"
            f"log4j.appender.file.File={node_home / 'logs' / 'server.log'}\n"
            "log4j.appender.file.layout=org.apache.log4j.PatternLayout\n"
            "log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n\n"
            "log4j.logger.kafka=INFO\nlog4j.logger.org.apache.kafka=INFO\n"
        )
        scram = (f"--add-scram={SCRAM}=[name={user},password={password}]" for user, password in users.items())
        formats.append(
            subprocess.Popen(
                [
                    *_kafka_java(node_home, libs, "256m"),
                    "kafka.tools.StorageTool",
                    "format",
                    f"--cluster-id={cluster_id}",
                    "-c",
                    str(config),
                    *scram,
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        )
    for proc in formats:
        out, _ = proc.communicate()
        if proc.returncode != 0:
            raise InfraError(f"Kafka storage format failed: {out[-3000:]}")
    nodes: list[KafkaNode] = []
    try:
        for node_id, (node_home, (port, cport)) in enumerate(zip(homes, ports, strict=True), start=1):
            pid = _spawn_kafka(node_home, libs, heap)
            nodes.append(KafkaNode(node_id, port, cport, pid, str(node_home)))
        for node in nodes:
            _wait_for_node(node, timeout)
        info = KafkaInfo(nodes=nodes, users=users, heap=heap)
        _create_acls(info, timeout)
        _wait_for_brokers(info, len(nodes), timeout)
    except BaseException:
        for node in nodes:
            stop_pid(node.pid)
        raise
    return info


def _create_acls(info: KafkaInfo, timeout: float) -> None:
    """Give every principal its ACLs (shared.kafka_security), retrying while the quorum finishes starting."""
    import asyncio

    from aiokafka.errors import KafkaError

    deadline = time.monotonic() + timeout
    while True:
        try:
            asyncio.run(create_acls(info.settings(ADMIN)))
            return
        except (KafkaError, OSError) as exc:
            if time.monotonic() > deadline:
                raise InfraError(
                    f"could not create the Kafka ACLs ({exc!r}); see {info.nodes[0].home}/logs"
                ) from exc
            time.sleep(0.5)


def _wait_for_brokers(info: KafkaInfo, count: int, timeout: float) -> None:
    """Block until the cluster's metadata lists ``count`` live (registered, unfenced) brokers."""
    import asyncio

    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.errors import KafkaError

    from shared.kafka_security import client_kwargs

    async def live() -> int:
        admin = AIOKafkaAdminClient(**client_kwargs(info.settings(ADMIN)))
        await admin.start()
        try:
            described = await admin.describe_cluster()
            return len(described["brokers"])
        finally:
            await admin.close()

    deadline = time.monotonic() + timeout
    seen = 0
    while True:
        try:
            seen = asyncio.run(live())
        except (KafkaError, OSError):
            seen = 0
        if seen >= count:
            return
        if time.monotonic() > deadline:
            raise InfraError(
                f"only {seen} of {count} Kafka brokers registered; see {info.nodes[0].home}/logs"
            )
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


def _spawn_kafka(home: Path, libs: Path, heap: str) -> int:
    """Run a node on its already formatted store; return its PID at once."""
    stdout = (home / "logs" / "stdout.log").open("ab")
    proc = subprocess.Popen(
        [*_kafka_java(home, libs, heap), "kafka.Kafka", str(home / "server.properties")],
        stdout=stdout,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    (home / "kafka.pid").write_text(str(proc.pid))
    return proc.pid


def _wait_for_node(node: KafkaNode, timeout: float) -> None:
    home = Path(node.home)
    wait_for_port(node.port, timeout, f"Kafka broker {node.node_id}", home / "logs" / "server.log", node.pid)


def restart_kafka(info: KafkaInfo, *, timeout: float = 90.0) -> KafkaInfo:
    """Stop every node (SIGTERM, clean shutdown) and start them again on the same data, ports and topics."""
    for node in info.nodes:
        stop_pid(node.pid, timeout=60.0)
    libs = kafka_libs(REPO_ROOT / ".local")
    nodes = [replace(node, pid=_spawn_kafka(Path(node.home), libs, info.heap)) for node in info.nodes]
    for node in nodes:
        _wait_for_node(node, timeout)
    return replace(info, nodes=nodes)


def stop_node(info: KafkaInfo, index: int, *, kill: bool = True) -> None:
    """Stop node ``info.nodes[index]`` by its PID: SIGKILL (a crash: no controlled shutdown, no leadership
    handed over) unless ``kill`` is false (SIGTERM, a clean shutdown)."""
    node = info.nodes[index]
    stop_pid(node.pid, timeout=2.0 if kill else 60.0, sig=signal.SIGKILL if kill else signal.SIGTERM)


def restart_node(info: KafkaInfo, index: int, *, timeout: float = 90.0) -> KafkaInfo:
    """Start node ``info.nodes[index]`` again (after :func:`stop_node`, or stop it first) on its data and
    ports; it recovers its log, rejoins the quorum and catches up its replicas."""
    node = info.nodes[index]
    stop_pid(node.pid, timeout=60.0)
    libs = kafka_libs(REPO_ROOT / ".local")
    restarted = replace(node, pid=_spawn_kafka(Path(node.home), libs, info.heap))
    _wait_for_node(restarted, timeout)
    nodes = list(info.nodes)
    nodes[index] = restarted
    return replace(info, nodes=nodes)
