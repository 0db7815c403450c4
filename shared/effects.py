"""Side effects outside the database (metric increments, log lines about what was done) that must happen only
for work that was committed.

A batch is applied in one transaction, and a part of it may run more than once before it commits: when one
input fails, the batch is rolled back and re-run in parts to isolate it (``shared.batches``). A handler that
counted an overpayment on its first, rolled-back run would count it again on the re-run. So handlers do not
touch their metrics directly; they call :func:`after_commit`, and the runtime keeps the effects of each run
that was kept and performs them once the transaction has committed.

Outside a batch (a test calling a handler on its own connection, a timer's work) there is nothing to wait for
and the effect happens at once."""

import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar

log = logging.getLogger(__name__)

Effect = Callable[[], object]

_PENDING: ContextVar[list[Effect] | None] = ContextVar("offsetstream_after_commit", default=None)


def after_commit(effect: Effect) -> None:
    """Perform ``effect`` once the work in progress commits (at once when no batch is in progress)."""
    pending = _PENDING.get()
    if pending is None:
        effect()
    else:
        pending.append(effect)


@contextmanager
def deferred() -> Iterator[list[Effect]]:
    """Collect the effects :func:`after_commit` is given inside this block into the list it yields, instead of
    performing them; the caller keeps or drops the list, and performs it with :func:`perform` after its
    commit."""
    pending: list[Effect] = []
    token = _PENDING.set(pending)
    try:
        yield pending
    finally:
        _PENDING.reset(token)


def perform(effects: Sequence[Effect]) -> None:
    """Perform committed effects in order. One that raises is logged and skipped: the work is committed
    already, and a broken metric must not make the batch look failed (it would be retried as a duplicate)."""
    for effect in effects:
        try:
            effect()
        except Exception:
            log.exception("an after-commit effect failed; the committed work stands")
