"""The stages' garbage collector settings (shared/gc_tuning.py): the start-up heap frozen and young collections
rarer by default, CPython's defaults on request, a clear refusal of a setting that is not a count, and the reason
it is safe: the largest data a stage builds (a claims part and its claims) hold no reference cycles, so reference
counting frees them without the collector.

Each case runs in a fresh interpreter: freezing and thresholds are process-wide, and the test process's own heap
must stay as pytest left it."""

import gc
import json
import os
import subprocess
import sys

import pytest

from contracts.examples import example_envelope
from contracts.topics import CLAIM_PAYMENTS
from shared import claims
from shared.settings import REPO_ROOT

PROBE = """
import gc, json, weakref
from shared import gc_tuning

class Node:
    pass

kept = Node()                       # alive at start-up: frozen
cycle = Node(); cycle.me = cycle    # start-up garbage: collected, not frozen
gone = weakref.ref(cycle)
del cycle
young = gc_tuning.tune()
print(json.dumps({
    "young": young,
    "threshold": gc.get_threshold(),
    "frozen": gc.get_freeze_count(),
    "kept_walked": any(o is kept for o in gc.get_objects()),
    "garbage_freed": gone() is None,
}))
"""


def probe(setting: str | None) -> dict[str, object]:
    env = {k: v for k, v in os.environ.items() if k != "OFFSETSTREAM_GC_YOUNG"}
    if setting is not None:
        env["OFFSETSTREAM_GC_YOUNG"] = setting
    done = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(done.stderr.strip().splitlines()[-1])
    result: dict[str, object] = json.loads(done.stdout)
    return result


def test_by_default_the_start_up_heap_is_frozen_and_young_collections_are_rarer() -> None:
    found = probe(None)
    assert found["young"] == 100_000
    assert found["threshold"] == [100_000, 10, 10]
    assert isinstance(found["frozen"], int) and found["frozen"] > 1_000
    assert found["kept_walked"] is False, "an object alive at start-up is no collection's work any more"
    assert found["garbage_freed"] is True, "start-up garbage is collected, not frozen for good"


def test_a_count_sets_the_young_threshold() -> None:
    found = probe(" 5000 ")
    assert found["young"] == 5_000
    assert found["threshold"] == [5_000, 10, 10]


def test_zero_keeps_cpythons_defaults_and_freezes_nothing() -> None:
    found = probe("0")
    assert found["young"] == 0
    assert found["threshold"] == [700, 10, 10]
    assert found["frozen"] == 0
    assert found["kept_walked"] is True


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("lots", "must be a whole number"),
        ("-1", "must be from 0 to 2147483647"),
        ("2147483648", "must be from 0 to 2147483647"),
    ],
)
def test_a_setting_that_is_no_count_is_refused(setting: str, message: str) -> None:
    with pytest.raises(RuntimeError, match=f"OFFSETSTREAM_GC_YOUNG {message}"):
        probe(setting)


def test_a_parsed_claims_part_and_its_claims_are_freed_without_the_collector() -> None:
    raw = example_envelope(CLAIM_PAYMENTS).to_bytes()
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        gc.collect()
        part = CLAIM_PAYMENTS.parse(raw)
        unbundled = claims.claims_of(part)
        assert unbundled and unbundled[0].payload.model_dump_json()
        del part, unbundled
        assert gc.collect() == 0, "parsing or unbundling a claims part made a reference cycle"
    finally:
        if was_enabled:
            gc.enable()
