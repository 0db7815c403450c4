"""CPU time of process trees from ``/proc`` (Linux), for the end-to-end bench's CPU-ms per 1 000 claim payments.

A tree's CPU time is the ``utime + stime`` of its root and every live descendant (all threads included: a JVM
broker's GC and network threads count) plus ``cutime + cstime`` of each of them, the CPU of descendants that
already exited and were reaped. The difference of two snapshots is therefore what the tree spent between them,
whether a child (a PostgreSQL backend, an autovacuum worker) lived through the whole window, started in it, or
ended in it. Only a child that exited and is not yet reaped by its parent at the second snapshot is missed until
it is; PostgreSQL's postmaster reaps at once.

CPU-seconds do not depend on how busy the machine is the way wall time does (a process waiting for a core
accumulates none), which is why the bench reports them; they still grow somewhat on a loaded machine (cache and
TLB misses after every context switch), so the load average is printed beside them.
"""

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from cli.local_infra import Stack

TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Proc:
    pid: int
    ppid: int
    ticks: int
    """utime + stime + cutime + cstime, in clock ticks."""


def read_proc(pid: int) -> Proc | None:
    """One process's times from ``/proc/<pid>/stat`` (None when it is gone)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # the command name (field 2) may hold spaces and parentheses: split after its last ')'
    fields = raw.rsplit(")", 1)[1].split()
    # fields[0] is field 3 (state); utime, stime, cutime, cstime are fields 14–17
    ppid = int(fields[1])
    utime, stime, cutime, cstime = (int(f) for f in fields[11:15])
    return Proc(pid, ppid, utime + stime + cutime + cstime)


def all_procs() -> dict[int, Proc]:
    """Every process visible in ``/proc`` now."""
    found: dict[int, Proc] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            proc = read_proc(int(entry.name))
            if proc is not None:
                found[proc.pid] = proc
    return found


def tree_ticks(roots: Iterable[int], procs: Mapping[int, Proc]) -> int:
    """Clock ticks of the processes ``roots`` and all their descendants (each counted once)."""
    children: dict[int, list[int]] = {}
    for proc in procs.values():
        children.setdefault(proc.ppid, []).append(proc.pid)
    seen: set[int] = set()
    todo = [pid for pid in roots if pid in procs]
    total = 0
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        total += procs[pid].ticks
        todo.extend(children.get(pid, ()))
    return total


def snapshot(groups: Mapping[str, Iterable[int]]) -> dict[str, float]:
    """label → CPU seconds so far of the process trees rooted at that label's PIDs."""
    procs = all_procs()
    return {label: tree_ticks(pids, procs) / TICKS for label, pids in groups.items()}


def self_seconds() -> float:
    """CPU seconds of this process (all threads) so far."""
    times = os.times()
    return times.user + times.system


def load_average() -> str:
    """The 1-, 5- and 15-minute load averages, as ``uptime`` prints them."""
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} / {five:.2f} / {fifteen:.2f}"


@dataclass
class CpuMeter:
    """CPU seconds spent by labelled process trees between :meth:`start` and :meth:`stop`."""

    groups: dict[str, list[int]]
    started: dict[str, float] | None = None
    spent: dict[str, float] | None = None

    def start(self) -> None:
        self.started = snapshot(self.groups)

    def stop(self) -> dict[str, float]:
        if self.started is None:
            raise RuntimeError("CpuMeter.stop before start")
        ended = snapshot(self.groups)
        self.spent = {label: ended[label] - self.started[label] for label in self.groups}
        return self.spent


def stack_groups(stack: Stack) -> dict[str, list[int]]:
    """label → root PIDs of a running local stack: each service process (``intake-0`` …), ``kafka`` (every
    broker node's JVM; a 3-broker cluster is summed under one label) and ``postgres`` (the postmaster, whose tree
    holds every backend and auxiliary process)."""
    groups: dict[str, list[int]] = {label: [pid] for label, pid in sorted(stack.services.items())}
    groups["kafka"] = [node.pid for node in stack.kafka.nodes]
    groups["postgres"] = [stack.postgres.pid]
    return groups
