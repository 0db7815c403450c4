"""The README's first command, as a user runs it: `offsetstream run` on the bundled example files.

The figures it must print come from the README itself (its business date, its receivables and forwarding
balance table, and the "still owed" of each example), so a README that drifts from what the pipeline computes
fails here instead of misleading a reader.
"""

import json
import os
import re
import signal
import subprocess
import sys
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import pytest

from cli.local_infra import Stack
from shared.settings import REPO_ROOT, SERVICES

pytestmark = pytest.mark.integration

RECEIVABLE_COLUMNS = (
    "status",
    "determined",
    "principal",
    "principal recovered",
    "interest accrued",
    "interest recovered",
    "still owed",
)
FORWARDING_COLUMNS = ("opened on", "opened", "applied", "open")
"""The printed headers, in the README's words (the README's tables use the same)."""


def readme_example() -> tuple[str, dict[str, tuple[str, ...]], dict[str, tuple[str, ...]], dict[str, str]]:
    """From README.md: the business date of the example figures, the receivable rows (reference → the
    columns above), the forwarding balance rows, and each example's bold "**N still owed**" figure."""
    text = (REPO_ROOT / "README.md").read_text()
    section = text[text.index("What `make run` prints") : text.index("## Commands for staff")]
    [business_date] = re.findall(r"business\s+date \*\*(\d{4}-\d{2}-\d{2})\*\*", section)
    assert f"OFFSETSTREAM_TODAY={business_date} make run" in section
    tables: dict[str, dict[str, tuple[str, ...]]] = {}
    for line in section.splitlines():
        cells = [c.strip().strip("`") for c in line.strip().strip("|").split("|")]
        if not line.startswith("|") or set(cells[0]) <= {"-", ":"}:
            continue
        if cells[0] in ("receivable", "forwarding balance"):
            table = tables.setdefault(cells[0], {})
            continue
        table[cells[0]] = tuple(cells[1:])
    owed = dict(
        re.findall(r"^- `(\w+)` — .*?\*\*(?:settled, )?([\d.]+) still owed\*\*", section, re.M | re.S)
    )
    return business_date, tables["receivable"], tables["forwarding balance"], owed


def printed_table(out: str, title: str, columns: tuple[str, ...]) -> dict[str, tuple[str, ...]]:
    """Rows of one table of the reconciliation `offsetstream run` prints: first column → the named columns."""
    start = out.index(f"\n{title}") + 1
    block = [line for line in out[start:].split("\n\n", 1)[0].splitlines()[1:] if line.startswith("  ")]
    rule = next(i for i, line in enumerate(block) if set(line.strip()) <= {"-", " "} and line.strip())
    # columns are the runs of dashes under the headers (headers and values may hold single spaces)
    spans = [m.span() for m in re.finditer(r"-+", block[rule])]
    headers = [block[rule - 1][a:b].strip() for a, b in spans]
    assert set(columns) <= set(headers), headers
    rows = [
        dict(zip(headers, (line[a:b].strip() for a, b in spans), strict=True)) for line in block[rule + 1 :]
    ]
    return {row[headers[0]]: tuple(row[c] for c in columns) for row in rows}


def test_the_readme_example_is_consistent_with_itself() -> None:
    """Every figure the README states once in prose is the one in its table, and each balance is the
    closed form of its columns (no stack needed: fails fast when someone edits one place only)."""
    _, receivables, _, owed = readme_example()
    assert set(owed) == set(receivables)
    for reference, row in receivables.items():
        principal, recovered, accrued, paid, balance = (Decimal(v) for v in row[2:])
        assert principal + accrued - recovered - paid == Decimal(balance), reference
        assert Decimal(owed[reference]) == balance, reference
    section = (REPO_ROOT / "README.md").read_text().split("## Commands for staff")[0]
    number = r"(\d+(?:\.\d+)?)"
    worked = re.findall(rf"{number} × {number} % × 30/360 = {number}(?: → {number})?", section)
    assert len(worked) >= 3
    # DOMAIN.md §3: principal × annual rate × 30/360 per period, rounded to the cent
    for principal_text, rate, exact, rounded in worked:
        interest = Decimal(principal_text) * Decimal(rate) / 100 * 30 / 360
        if rounded:
            assert interest == Decimal(exact)
        assert interest.quantize(Decimal("0.01"), ROUND_HALF_UP) == Decimal(rounded or exact)


def test_make_run_prints_the_reconciliation_of_the_readme_example() -> None:
    business_date, receivables, forwarding, _ = readme_example()
    env = {**os.environ, "OFFSETSTREAM_TODAY": business_date}
    logs = REPO_ROOT / ".local" / "run" / "logs"
    before = {log.name: log.stat().st_size for log in logs.glob("*-0.log")}  # logs of earlier runs stay
    done = subprocess.run(
        [sys.executable, "-m", "cli.main", "run"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=420,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    assert "4 files processed" in out
    assert f"as of {business_date} (business date)" in out
    assert printed_table(out, "Receivables", ("reference", *RECEIVABLE_COLUMNS)) == {
        reference: (reference, *row) for reference, row in receivables.items()
    }
    assert printed_table(out, "Forwarding balances", ("reference", *FORWARDING_COLUMNS)) == {
        reference: (reference, *row) for reference, row in forwarding.items()
    }
    assert "0 duplicates, 0 bad signatures" in out
    # each service says what it did, one line per batch; the topics had leaders before anything published
    for log in sorted(logs / f"{service}-0.log" for service in SERVICES):  # the stages (no console here)
        text = log.read_bytes()[before.get(log.name, 0) :].decode(errors="replace")
        assert " batch of " in text, log.name
        assert "NotLeaderForPartitionError" not in text, log.name
    # it stopped what it started
    assert not (REPO_ROOT / ".local" / "run" / "state.json").exists()


def test_run_keep_stops_everything_it_started_on_sigterm() -> None:
    """``offsetstream run --keep`` stopped by SIGTERM (``kill``, ``timeout``, a supervisor), not Ctrl-C, stops
    the broker, PostgreSQL and the service processes it started, as Ctrl-C does."""
    state = REPO_ROOT / ".local" / "run" / "state.json"
    run = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "run", "--keep"],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert run.stdout is not None
        seen: list[str] = []
        for line in run.stdout:
            seen.append(line)
            if "Ctrl-C to stop" in line:
                break
        else:
            raise AssertionError("run --keep ended before it was ready:\n" + "".join(seen[-40:]))
        recorded = json.loads(state.read_text())
        pids = [
            *recorded["services"].values(),
            recorded["postgres"]["pid"],
            *(node["pid"] for node in recorded["kafka"]["nodes"]),
        ]
        assert all(alive(pid) for pid in pids)
        run.send_signal(signal.SIGTERM)
        assert run.wait(timeout=120) == 143
        assert not state.exists()
        assert [pid for pid in pids if alive(pid)] == []
    finally:
        if run.poll() is None:
            run.kill()
        if state.exists():  # what a failed run left behind must not outlive the test
            Stack.load(state.parent).stop()


def alive(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie waiting for its parent."""
    try:
        status = (Path("/proc") / str(pid) / "status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status
