"""Garbage collection tuned for a long-running stage process: the start-up heap frozen, young collections rarer.

CPython runs a young-generation collection every 700 net container allocations, and now and then a full one
that walks every tracked object of the process. A stage allocates containers by the hundred thousand a second
(the X12 reader's segments and claims, pydantic's models and dicts, asyncpg's records) and holds a large heap
that never becomes garbage (Faust, aiokafka, pydantic's schemas, the loaded plugins): py-spy under the
80 000-claim burst put 22 % of intake's busy samples in ``gc_collect_main``, 9 % of interest's and 6 % of
matching's, nearly all of it walking objects that were alive and stayed alive. Tuned, reading 120 of the bench's
payer files in one process takes 9-12 % less CPU (``python -m devtools.bench.gc_bench``), and the stages used up
to a fifth less each (detection most) with the same peak memory (devtools/bench/README.md, session 13). Nothing
the stages allocate relies on the cycle collector to be freed promptly: their data are trees freed by reference
counting (a unit test checks a parsed claims part), and the cycles that do occur (asyncio's futures, an
exception caught with its traceback) are few and small, so collecting them a little later costs a little memory,
not correctness. The one such cycle that held a whole batch, a refused record's error kept with its traceback in
the handler's list of answers, is cut where it was made (``shared.messages.refusal``). The X12 reader still
reads a large transaction with the collector paused; it leaves out only its hand-over to the oldest generation,
which would thaw what is frozen here (``services/intake/x12/parser.py``).

:func:`tune` is called once by ``Stage.run`` (each stage's worker), after the stage is built and before it runs:
``gc.freeze()`` moves everything alive then (modules, the app, its agents and settings) to the permanent
generation, which no collection walks again, and the young generation's threshold goes from 700 to
:data:`YOUNG` allocations. ``OFFSETSTREAM_GC_YOUNG`` overrides it (0 keeps CPython's defaults and freezes
nothing: to rule the tuning out when chasing a memory fault).
"""

import gc
import os

YOUNG = 100_000
"""Net container allocations between young collections (CPython's default is 700)."""
_MOST = 2**31 - 1  # what gc.set_threshold takes (a C int)


def tune() -> int:
    """Freeze the start-up heap and set the young threshold (``OFFSETSTREAM_GC_YOUNG``, default
    :data:`YOUNG`); the threshold set, or 0 when the defaults are kept."""
    text = os.environ.get("OFFSETSTREAM_GC_YOUNG", "").strip() or str(YOUNG)
    try:
        young = int(text)
    except ValueError:
        raise ValueError(f"OFFSETSTREAM_GC_YOUNG must be a whole number, not {text[:20]!r}") from None
    if not 0 <= young <= _MOST:
        raise ValueError(f"OFFSETSTREAM_GC_YOUNG must be from 0 to {_MOST}, not {young}")
    if young == 0:
        return 0
    gc.collect()  # what start-up left as garbage goes now, not into the permanent generation
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(young, middle, old)
    return young
