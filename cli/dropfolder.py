"""A watched drop folder: payer files that land in a folder (an SFTP inbox) are published to the intake topic.

Why polling with ``os.scandir`` and no inotify library: it works the same on network mounts and every OS, adds no
dependency, and a few seconds of latency is nothing next to a payer's weekly 835 cycle.

A file is published only once its size and mtime are unchanged across two polls, because an SFTP upload writes
in place and a half-written 835 would be rejected (or worse, parse as a shorter valid file). Empty files are
never published — an upload often creates the file before the first byte arrives.

After publishing, the file moves to ``processed/``; if it can never be published (too large, unreadable, a
non-retriable broker error) it moves to ``failed/`` with ``<name>.error.txt`` saying why. A broker that is merely
unreachable leaves the file where it is and it is retried on the next poll: moving every file of a Kafka outage
to ``failed/`` would only give staff manual work. A crash between publishing and moving re-sends the file after a
restart, which is harmless: the event id is derived from (tenant, SHA-256), so the intake stage skips it.
"""

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from aiokafka import AIOKafkaProducer

from contracts.topics import INTAKE
from services.intake.publish import FileRefused, load_payee_directory, raw_file_messages
from shared import kafka_security
from shared.kafka import MAX_MESSAGE_BYTES
from shared.settings import Settings

log = logging.getLogger(__name__)

Publisher = Callable[[str, bytes, bytes], Awaitable[None]]
"""``await publisher(topic, key, value)``; raising means the file was not published."""

PROCESSED = "processed"
FAILED = "failed"
IN_PROGRESS_SUFFIXES = (".part", ".partial", ".filepart", ".tmp", ".temp", ".crdownload", ".lock")
"""Names SFTP/FTP clients give a file while uploading it, before renaming it to its final name."""


class PermanentPublishError(Exception):
    """The file can never be published as it is (the message is shown in the ``.error.txt`` sidecar)."""


def is_transient(exc: BaseException) -> bool:
    """Broker unreachable or slow: retry on the next poll instead of failing the file."""
    if isinstance(exc, PermanentPublishError):
        return False
    if isinstance(exc, ConnectionError | TimeoutError):
        return True
    return bool(getattr(exc, "retriable", False))  # aiokafka marks retriable errors with this flag


@dataclass(frozen=True)
class Observation:
    """What one poll saw of a file; equal observations on consecutive polls mean the upload has finished."""

    size: int
    mtime_ns: int


@dataclass
class PollReport:
    """What one poll did, by file name (for the CLI and tests)."""

    published: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    waiting: list[str] = field(default_factory=list)
    retrying: list[str] = field(default_factory=list)


class KafkaPublisher:
    """The production publisher: one idempotent producer, started on first use (so a broker that is down at
    start-up only delays publishing) and restarted after a failure."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._producer: AIOKafkaProducer | None = None

    async def __call__(self, topic: str, key: bytes, value: bytes) -> None:
        if self._producer is None:
            producer = AIOKafkaProducer(
                **kafka_security.client_kwargs(self.settings),
                max_request_size=MAX_MESSAGE_BYTES,
                acks="all",
                enable_idempotence=True,
            )
            try:
                await producer.start()
            except BaseException:
                await producer.stop()
                raise
            self._producer = producer
        try:
            await self._producer.send_and_wait(topic, value=value, key=key)
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        """Stop the producer, if started."""
        producer, self._producer = self._producer, None
        if producer is not None:
            await producer.stop()


class DropFolder:
    """Publishes stable files of ``folder`` to ``remit.intake.v1`` for one tenant, then moves them aside."""

    def __init__(
        self,
        folder: Path,
        tenant_id: str,
        *,
        settings: Settings | None = None,
        publisher: Publisher | None = None,
        interval: float = 2.0,
        format_hint: str | None = None,
        payees: Mapping[str, str] | None = None,
    ) -> None:
        self.folder = folder
        self.tenant_id = tenant_id
        self.interval = interval
        self.format_hint = format_hint
        self.payees = payees if payees is not None else load_payee_directory(settings) if settings else {}
        self._kafka: KafkaPublisher | None = None
        if publisher is not None:
            self._publish = publisher
        elif settings is not None:
            self._kafka = KafkaPublisher(settings)
            self._publish = self._kafka
        else:
            raise ValueError("DropFolder needs settings (to reach Kafka) or a publisher")
        self._seen: dict[str, Observation] = {}
        # Published but not yet moved (the move failed): only the move is retried, the file is not re-sent.
        self._unmoved: dict[str, Observation] = {}
        self._stop = asyncio.Event()

    @property
    def processed_dir(self) -> Path:
        """Where published files go."""
        return self.folder / PROCESSED

    @property
    def failed_dir(self) -> Path:
        """Where files that can never be published go, each with an ``.error.txt`` sidecar."""
        return self.folder / FAILED

    def _scan(self) -> dict[str, Observation]:
        found: dict[str, Observation] = {}
        with os.scandir(self.folder) as entries:
            for entry in entries:
                name = entry.name
                if name.startswith(".") or name.lower().endswith(IN_PROGRESS_SUFFIXES):
                    continue
                if not entry.is_file(follow_symlinks=False):  # sub-folders (processed/, failed/), links
                    continue
                st = entry.stat(follow_symlinks=False)
                found[name] = Observation(st.st_size, st.st_mtime_ns)
        return found

    async def poll_once(self) -> PollReport:
        """Look at the folder once; publish and move every file that is unchanged since the previous poll."""
        report = PollReport()
        self.processed_dir.mkdir(parents=True, exist_ok=True)
        self.failed_dir.mkdir(parents=True, exist_ok=True)
        current = await asyncio.to_thread(self._scan)
        previous, self._seen = self._seen, current
        for name, seen in sorted(current.items()):
            if previous.get(name) != seen or seen.size == 0:
                report.waiting.append(name)
                continue
            outcome = await self._handle(name, seen)
            getattr(report, outcome).append(name)
            if outcome != "retrying":
                self._seen.pop(name, None)
        return report

    async def _handle(self, name: str, seen: Observation) -> str:
        path = self.folder / name
        if self._unmoved.get(name) == seen:
            return await self._move_published(path, seen)
        try:
            content = await asyncio.to_thread(path.read_bytes)
            st = path.stat()
            if Observation(st.st_size, st.st_mtime_ns) != seen or len(content) != seen.size:
                self._seen[name] = Observation(st.st_size, st.st_mtime_ns)
                return "waiting"  # still being written after all: wait for two more equal polls
            try:
                messages = raw_file_messages(
                    content, name, self.tenant_id, "drop_folder", self.format_hint, self.payees
                )
            except FileRefused as problem:
                raise PermanentPublishError(str(problem)) from None
            for key, value in messages:  # a retry after a failure sends every part again: same ids
                await self._publish(INTAKE.name, key, value)
        except FileNotFoundError:
            return "waiting"  # renamed or removed by the uploader between scan and read
        except Exception as exc:
            if is_transient(exc):
                log.warning("drop folder: %s not published yet (%s), retrying next poll", name, exc)
                return "retrying"
            log.error("drop folder: %s failed: %s: %s", name, type(exc).__name__, exc)
            await asyncio.to_thread(self._move_failed, path, exc)
            return "failed"
        log.info("drop folder: published %s for tenant %s", name, self.tenant_id)
        return await self._move_published(path, seen)

    async def _move_published(self, path: Path, seen: Observation) -> str:
        try:
            moved = await asyncio.to_thread(_move_unique, path, self.processed_dir)
        except OSError as exc:
            log.error("drop folder: %s was published but cannot be moved: %s", path.name, exc)
            self._unmoved[path.name] = seen
            return "retrying"
        self._unmoved.pop(path.name, None)
        log.info("drop folder: moved %s to %s", path.name, moved)
        return "published"

    def _move_failed(self, path: Path, exc: BaseException) -> None:
        moved = _move_unique(path, self.failed_dir)
        stamp = datetime.now(UTC).isoformat(timespec="seconds")
        moved.with_name(moved.name + ".error.txt").write_text(
            f"{stamp} could not publish {path.name} for tenant {self.tenant_id}\n"
            f"{type(exc).__name__}: {exc}\n"
            f"Fix the cause, then move the file back into {self.folder} to retry.\n"
        )

    def stop(self) -> None:
        """Ask :meth:`run` to finish the current poll and return."""
        self._stop.set()

    async def run(self, on_report: Callable[[PollReport], None] | None = None) -> None:
        """Poll every ``interval`` seconds until SIGINT/SIGTERM or :meth:`stop`.

        A signal never interrupts a file half-way: the current poll finishes (publish, then move), so the
        folder and the topic agree when the process exits.
        """
        if not self.folder.is_dir():
            raise FileNotFoundError(f"no such folder: {self.folder}")
        loop = asyncio.get_running_loop()
        handled: list[signal.Signals] = []
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, self._stop.set)
                handled.append(sig)
        try:
            while not self._stop.is_set():
                try:
                    report = await self.poll_once()
                except OSError as exc:  # folder unmounted for a moment: keep watching
                    log.warning("drop folder: cannot read %s: %s", self.folder, exc)
                else:
                    if on_report is not None:
                        on_report(report)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), self.interval)
        finally:
            for sig in handled:
                loop.remove_signal_handler(sig)
            await self.close()

    async def close(self) -> None:
        """Release the Kafka producer (if this folder created one)."""
        if self._kafka is not None:
            await self._kafka.close()


def _move_unique(path: Path, directory: Path) -> Path:
    """Move without ever overwriting: payers reuse names (``remit.835``), so a second one gets ``remit-1.835``."""
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / path.name
    counter = 0
    while target.exists():
        counter += 1
        target = directory / f"{path.stem}-{counter}{path.suffix}"
    path.rename(target)
    return target
