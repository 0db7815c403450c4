"""Separate per-claim work from the time-proportional floor across ``e2e_bench`` runs of the same feed.

On a shared machine the window of a run (first publish → quiet) stretches with the load, and every process tree
spends CPU in proportion to the window whatever it processes (timers, heartbeats, offset commits, polling). Runs of
the same feed and code give, per tree, CPU = work + floor × window; a least-squares line through them gives the
work (the load-independent part, reported per 1 000 claims) and the floor (ms per second). A run with a changed
setting is then judged by its residual against the baseline line at its own window.

    python -m devtools.bench.cpu_fit BASELINE.log [BASELINE.log ...] -- [VARIANT.log ...]

Each log is the printed output of one ``e2e_bench`` run (one worker count).
"""

import re
import sys
from pathlib import Path

ROW = re.compile(r"^\s{2}(\S+)\s+([\d.]+)\s+[\d,]+\s+\d+%")
WINDOW = re.compile(r"first publish → quiet, ([\d.,]+) s")
CLAIMS = re.compile(r"^claim payments\s+([\d,]+)", re.M)


def read(path: Path) -> tuple[int, float, dict[str, float]]:
    """(claims, window seconds, tree → CPU seconds) of one run's output."""
    text = path.read_text()
    found = CLAIMS.search(text)
    window = WINDOW.search(text)
    if found is None or window is None:
        raise SystemExit(f"{path}: not an e2e_bench output")
    claims = int(found.group(1).replace(",", ""))
    rows = {m.group(1): float(m.group(2)) for m in (ROW.match(line) for line in text.splitlines()) if m}
    rows.pop("total", None)
    rows["total"] = sum(rows.values())
    return claims, float(window.group(1).replace(",", "")), rows


def fit(points: list[tuple[float, float]]) -> tuple[float, float]:
    """Least-squares (intercept, slope) of y on x."""
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    slope = sum((x - mx) * (y - my) for x, y in points) / sxx if sxx else 0.0
    return my - slope * mx, slope


def main(args: list[str]) -> int:
    split = args.index("--") if "--" in args else len(args)
    base = [read(Path(a)) for a in args[:split]]
    variants = [(Path(a).stem, read(Path(a))) for a in args[split + 1 :]]
    claims = base[0][0]
    trees = list(base[0][2])
    print(
        f"{len(base)} baseline runs, windows {', '.join(f'{w:.0f}' for _, w, _ in base)} s, {claims:,} claims"
    )
    print(f"  {'tree':<16} {'work, ms / 1 000 claims':>24} {'floor, ms/s':>12}")
    lines = {}
    for tree in trees:
        work, floor = fit([(w, rows[tree]) for _, w, rows in base])
        lines[tree] = (work, floor)
        print(f"  {tree:<16} {work * 1e6 / claims:>24,.0f} {floor * 1000:>12.0f}")
    for name, (_, window, rows) in variants:
        print(f"\n{name} (window {window:.0f} s): CPU against the baseline line at that window")
        for tree in trees:
            work, floor = lines[tree]
            expected = work + floor * window
            got = rows.get(tree, 0.0)
            print(f"  {tree:<16} {got:>8.2f} s vs {expected:>8.2f} s  {100 * (got / expected - 1):>+6.0f} %")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
