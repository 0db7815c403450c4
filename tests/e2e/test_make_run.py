"""The README's first command, as a user runs it: `offsetstream run` on the bundled example files."""

import os
import re
import subprocess
import sys

import pytest

from shared.settings import REPO_ROOT

pytestmark = pytest.mark.integration


def test_make_run_prints_the_reconciliation_of_the_examples() -> None:
    env = {**os.environ, "OFFSETSTREAM_TODAY": "2026-11-23"}
    done = subprocess.run(
        [sys.executable, "-m", "shared.cli", "run"],
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
    # the deferred WO receivable, recovered 21 days later: settled, balance 0
    assert re.search(
        r"2226183201000\s+01312\s+settled\s+2026-08-03\s+100\.00\s+100\.00\s+0\.00\s+0\.00\s+0\.00", out
    )
    # recouped on day 42: period 1 interest (2.88) paid first, then 0.03 a period on the 2.88 principal left
    assert re.search(
        r"FCN26080300017\s+01312\s+partially_recovered\s+2026-08-03\s+300\.00\s+297\.12\s+2\.94\s+2\.88\s+2\.94",
        out,
    )
    assert re.search(
        r"FCN26100500042\s+01312\s+open\s+2026-10-05\s+75\.00\s+0\.00\s+0\.72\s+0\.00\s+75\.72", out
    )
    assert re.search(r"EFT260914001\s+2026-09-14\s+180\.00\s+180\.00\s+0\.00", out)
    assert "0 duplicates, 0 bad signatures" in out
    # it stopped what it started
    assert not (REPO_ROOT / ".local" / "run" / "state.json").exists()
