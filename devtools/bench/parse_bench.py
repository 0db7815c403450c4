"""``make bench-parse``: how fast our 835 parser reads a large file, how much memory it needs, and how it
compares with a widely used open-source reader (linuxforhealth-x12, in its own venv: it needs pydantic < 2).

Three files are generated deterministically and streamed to ``.local/bench/`` (never held in memory by the
writer): ``BENCH_PARSE_SMALL`` / ``BENCH_PARSE_CLAIMS`` / ``BENCH_PARSE_LARGE`` claims (default 20 000 /
100 000 / 300 000) in transactions of 5 000 claims, each claim with 1–3 service lines and CAS, about one
reversal per 50 claims, one PLB segment (two WO and one L6 pair) per transaction. Amounts are random cents,
which is harder on the parser's memo tables than real remittances. Each measurement runs in a fresh child
process so its peak RSS (``ru_maxrss``) is its own.

"Our parser" = the full ``X12Parser.parse_stream`` on the file read in 1 MiB blocks, the way ``offsetstream
parse`` reads it: a first pass for the SHA-256, then envelope checks, every balancing rule, and every contract
object (remittance, claim payments with service lines, PLB pairs) built; the timing covers both passes. It
runs twice per file: compiled by mypyc (what ``make setup`` builds and the services use) and from source
(``OFFSETSTREAM_X12_NATIVE=0``); the largest file only compiled. The peak RSS across the three sizes shows
whether memory is flat (one transaction plus one block is held, whatever the file size). The peer builds its
pydantic v1 models (it does not balance). One local patch is applied to the peer: its 1000A loop keeps
``PER`` as a single segment, so without the patch it rejects every 835 carrying the required ``PER*BL``
(shown below).
"""

import io
import json
import os
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

from devtools.generate import iter_transactions, write_interchange
from shared.settings import REPO_ROOT

ROOT = REPO_ROOT / ".local" / "bench"
PEER_VENV = ROOT / "peer-venv"
PER_TXN = 5_000

OURS = """
import hashlib, json, resource, sys, time
from pathlib import Path
from services.intake.x12 import NATIVE, X12Parser
from services.intake.feeds import ParsedRemittance
path = Path(sys.argv[1])
def blocks():
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            yield block
t0 = time.perf_counter()
digest = hashlib.sha256()
for block in blocks():
    digest.update(block)
claims = errors = 0
parser = X12Parser()
for result in parser.parse_stream(blocks(), file_name=path.name, file_sha256=digest.hexdigest(), tenant_id="bench"):
    if isinstance(result, ParsedRemittance):
        claims += len(result.claims)
    else:
        errors += 1
seconds = time.perf_counter() - t0
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"seconds": seconds, "claims": claims, "errors": errors, "rss_kib": rss, "native": NATIVE}))
"""

PEER = """
import json, resource, sys, time
from linuxforhealth.x12.parsing import match
from linuxforhealth.x12.v5010.x12_835_005010X221A1 import parsing as p835
from linuxforhealth.x12.v5010.x12_835_005010X221A1.parsing import TransactionLoops
if sys.argv[2] == "patched":
    @match("N1", conditions={"entity_identifier_code": "PR"})
    def set_payer_identification_loop(context, segment_data):
        loop = {"ref_segment": [], "per_segment": []}
        context.transaction_data[TransactionLoops.PAYER_IDENTIFICATION] = loop
        context.set_loop_context(TransactionLoops.PAYER_IDENTIFICATION, loop)
    p835.set_payer_identification_loop = set_payer_identification_loop
from linuxforhealth.x12.io import X12ModelReader
t0 = time.perf_counter()
claims = 0
try:
    with X12ModelReader(sys.argv[1]) as reader:
        for model in reader.models():
            claims += sum(len(loop.loop_2100) for loop in model.loop_2000)
    error = None
except Exception as exc:
    error = f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}"
seconds = time.perf_counter() - t0
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"seconds": seconds, "claims": claims, "error": error, "rss_kib": rss}))
"""


def build(claims: int) -> tuple[Path, int]:
    """Write (once) a file of ``claims`` claims, one transaction at a time; return it and its segments."""
    path = ROOT / f"parse-{claims}.835"
    meta = path.with_suffix(".json")
    if path.exists() and meta.exists():
        return path, int(json.loads(meta.read_text())["segments"])
    ROOT.mkdir(parents=True, exist_ok=True)
    envelope = io.StringIO()
    write_interchange(envelope, "01312", "000000777", date(2026, 7, 6), [[]])
    isa, gs, ge, iea = envelope.getvalue().splitlines()
    count = max(1, claims // PER_TXN)
    segments = 4
    with path.open("w", encoding="ascii", newline="") as out:
        out.write(f"{isa}\n{gs}\n")
        for segs, _ in iter_transactions(count, claims // count, seed=claims):
            segments += len(segs)
            out.write("\n".join(segs) + "\n")
        out.write(ge.replace("GE*0*", f"GE*{count}*") + f"\n{iea}\n")
    meta.write_text(json.dumps({"segments": segments}))
    return path, segments


def measure(python: Path, script: str, *args: str, native: bool = True) -> dict[str, object]:
    """Run one measurement in a fresh process (its own peak RSS) and read its JSON line; ``native=False``
    runs our reader from source even when its compiled build is current."""
    env = {**os.environ, "OFFSETSTREAM_X12_NATIVE": "1" if native else "0"}
    done = subprocess.run(
        [str(python), "-c", script, *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )
    if done.returncode:
        raise RuntimeError(f"{python.name} {args}: {done.stderr[-2000:]}")
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def peer_python() -> Path | None:
    """The peer venv's interpreter, created on first use (``pip install linuxforhealth-x12 'pydantic<2'``)."""
    python = PEER_VENV / "bin" / "python"
    if not python.exists():
        print(f"creating {PEER_VENV} (linuxforhealth-x12, pydantic<2) ...", flush=True)
        subprocess.run(["python3", "-m", "venv", str(PEER_VENV)], check=True)
        install = [str(PEER_VENV / "bin" / "pip"), "install", "-q", "linuxforhealth-x12", "pydantic<2"]
        if subprocess.run(install, check=False).returncode:
            return None
    return python


FLAT_MIB = 5
"""Peak RSS growth per 100 000 claims between the two largest files still called flat (the file itself grows
by about 33 MiB per 100 000 claims; what remains is the memo tables filling to their caps and allocator
noise)."""


def main() -> int:
    small = int(os.environ.get("BENCH_PARSE_SMALL", "20000"))
    big = int(os.environ.get("BENCH_PARSE_CLAIMS", "100000"))
    large = int(os.environ.get("BENCH_PARSE_LARGE", "300000"))
    ours = Path(sys.executable)
    one, five, fifteen = os.getloadavg()
    print(f"load average at start: {one:.2f} {five:.2f} {fifteen:.2f} ({os.cpu_count()} CPUs)")
    rows = {}
    for claims in (small, big, large):
        t0 = time.perf_counter()
        path, segments = build(claims)
        size = path.stat().st_size / 1e6
        print(
            f"file {path.name}: {size:.1f} MB, {segments:,} segments (written in {time.perf_counter() - t0:.1f} s)"
        )
        for native in (True, False) if claims != large else (True,):
            best = min(
                (measure(ours, OURS, str(path), native=native) for _ in range(3)),
                key=lambda r: float(str(r["seconds"])),
            )
            if native:
                rows[claims] = (path, segments, best)
            secs = float(str(best["seconds"]))
            how = "compiled (mypyc)" if best["native"] else "from source     "
            print(
                f"  offsetstream {how} {secs:6.2f} s  {segments / secs:>10,.0f} segments/s  "
                f"{int(str(best['claims'])) / secs:>8,.0f} claims/s  "
                f"peak RSS {int(str(best['rss_kib'])) / 1024:,.0f} MiB"
                f"  ({best['claims']} claims, {best['errors']} errors; best of 3 fresh processes)"
            )
    (s_path, _, s_best), (_, _, b_best), (_, _, l_best) = rows[small], rows[big], rows[large]
    mib = {claims: int(str(best["rss_kib"])) / 1024 for claims, (_, _, best) in rows.items()}
    growth = (mib[large] - mib[big]) / (max(large - big, 1) / 100_000)
    verdict = "flat" if growth <= FLAT_MIB else "NOT flat"
    print(
        f"memory: peak RSS {mib[small]:,.0f} / {mib[big]:,.0f} / {mib[large]:,.0f} MiB at "
        f"{small:,} / {big:,} / {large:,} claims; {growth:+,.1f} MiB per 100,000 claims from {big:,} to "
        f"{large:,} (the file: {rows[large][0].stat().st_size / 1.048576e6 * 100_000 / large:,.0f} MiB per "
        f"100,000 claims): {verdict} (up to {FLAT_MIB} MiB per 100,000 claims counts as flat). The parser "
        "holds one transaction and one 1 MiB block, never the file; its memo tables grow to fixed caps "
        "(values.AMOUNT_LIMIT, MEMO_LIMIT) and start over when full."
    )
    python = peer_python()
    if python is None:
        print("peer: could not install linuxforhealth-x12; no comparison")
        return 0
    unpatched = measure(python, PEER, str(s_path), "unpatched")
    print(f"peer linuxforhealth-x12 as released, {small:,}-claim file: {unpatched['error'] or 'ok'}")
    peer = measure(python, PEER, str(s_path), "patched")
    if peer["error"]:
        print(f"peer (patched) failed: {peer['error']}")
        return 0
    psecs = float(str(peer["seconds"]))
    peer_rate = int(str(peer["claims"])) / psecs
    small_rate = int(str(s_best["claims"])) / float(str(s_best["seconds"]))
    big_rate = int(str(b_best["claims"])) / float(str(b_best["seconds"]))
    large_rate = int(str(l_best["claims"])) / float(str(l_best["seconds"]))
    print(
        f"peer linuxforhealth-x12 (PER patch) on the {small:,}-claim file: {psecs:.1f} s, {peer_rate:,.0f} claims/s, "
        f"peak RSS {int(str(peer['rss_kib'])) / 1024:,.0f} MiB ({peer['claims']} claims; not run at {big:,}: "
        "per-claim rates compared)"
    )
    print(
        f"speed ratio (claims/s): offsetstream at {big:,} claims / peer = {big_rate / peer_rate:.1f}×; "
        f"at {large:,}: {large_rate / peer_rate:.1f}×; same {small:,}-claim file: {small_rate / peer_rate:.1f}×"
    )
    one, five, fifteen = os.getloadavg()
    print(f"load average at end: {one:.2f} {five:.2f} {fifteen:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
