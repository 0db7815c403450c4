"""``python -m devtools.bench.gc_bench``: what the cyclic collector costs a stage reading payer files, with
CPython's defaults and with the stages' tuning (``shared.gc_tuning``).

Each setting runs in a fresh process that imports the intake stage (its modules, pydantic's schemas, Faust: the
heap a stage holds), applies the setting, then reads the bench's generated payer files
(``.local/bench/feed-*/**/*.835``, written by ``make bench``; up to ``FILES``) with ``X12Parser`` as intake does,
``ROUNDS`` times. Printed: the median CPU seconds (``time.process_time``) of a round and the collections it set
off, per setting. ``OFFSETSTREAM_GC_YOUNG`` is what the tuned process reads, as a stage does.
"""

import json
import os
import subprocess
import sys

from shared.settings import REPO_ROOT

FILES = 120
ROUNDS = 6

PROBE = """
import gc, glob, json, statistics, sys, time
import services.intake.app  # noqa: F401 - the stage's heap
from services.intake.x12 import X12Parser
from shared import gc_tuning
files = sorted(glob.glob(sys.argv[2] + "/feed-*/**/*.835", recursive=True))[: int(sys.argv[3])]
blobs = [open(f, "rb").read() for f in files]
if sys.argv[1] == "tuned":
    gc_tuning.tune()
parser = X12Parser()
collections = [0]
gc.callbacks.append(lambda phase, info: collections.__setitem__(0, collections[0] + (phase == "start")))
seconds = []
for _ in range(int(sys.argv[4])):
    started = time.process_time()
    for blob in blobs:
        read = list(parser.parse(blob, file_name="f.835", file_sha256="0" * 64, tenant_id="bench"))
        del read
    seconds.append(time.process_time() - started)
print(json.dumps({"files": len(blobs), "seconds": statistics.median(seconds), "collections": collections[0]}))
"""


def measure(setting: str) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, setting, str(REPO_ROOT / ".local" / "bench"), str(FILES), str(ROUNDS)],
        cwd=REPO_ROOT,
        env={**os.environ, "OFFSETSTREAM_EVENT_LOOP": "asyncio"},
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, float] = json.loads(done.stdout.splitlines()[-1])
    return result


def main() -> int:
    default, tuned = measure("default"), measure("tuned")
    if not default["files"]:
        print("no payer files under .local/bench/feed-*: run `make bench` first", file=sys.stderr)
        return 1
    print(f"{int(default['files'])} payer files, median of {ROUNDS} rounds, CPU seconds a round:")
    for name, r in (("CPython's defaults", default), ("shared.gc_tuning", tuned)):
        print(f"  {name:<20} {r['seconds']:.3f} s   {int(r['collections'])} collections in all rounds")
    print(f"  tuned / defaults     {tuned['seconds'] / default['seconds']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
