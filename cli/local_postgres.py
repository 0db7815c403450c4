"""The local PostgreSQL cluster: Debian's server binaries, ``initdb`` into the stack's data folder, bound to
127.0.0.1 on a free port and run as the ``postgres`` system user when started by root."""

import hashlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cli.processes import InfraError, free_port, stop_pid, wait_for_port


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


def start_postgres(
    home: Path, *, durable: bool = True, extra: Sequence[str] = (), timeout: float = 60.0
) -> PostgresInfo:
    """initdb a fresh cluster in ``home`` (owned by the DB user), start it, create the project database.

    ``durable=False`` (tests, the bench) turns off fsync, full-page writes and synchronous commit: faster on a
    shared development disk, but no production server runs so. ``extra`` are further ``postgresql.auto.conf``
    lines (the bench's ``BENCH_PGSTAT`` preloads ``pg_stat_statements`` with them)."""
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
        # Every stage runs its statements as prepared statements whose generic plan PostgreSQL picks on the
        # tables as they are then; a stack that starts empty plans its look-ups as sequential scans and keeps
        # those plans until an ANALYZE of the table invalidates them. With the default one-minute naptime the
        # first minute of a fresh ledger (every test, every bench run) ran on plans made for empty tables:
        # 2.1 ms instead of 0.09 ms per PHI token look-up (devtools/bench/README.md, session 10).
        "autovacuum_naptime=5s",
    ]
    if not durable:
        settings += ["fsync=off", "synchronous_commit=off", "full_page_writes=off"]
    settings += extra
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
