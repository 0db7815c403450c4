"""The PostgreSQL repository as one batch of the matching stage uses it: the same ledger, the statements sent
per batch rather than per message.

The stage handles a batch of messages in one transaction on one connection (``shared.messages.BatchHandler``)
and the engine still handles them one at a time, through this repository, which lives for one run of one
batch. Most statements a message used to send re-read what an earlier message of the batch had read or written
(the receivable it locked, the money on it, the keys of a receivable opened a moment before) or wrote a row
nothing reads before the batch ends (a history line, a key, a pair, an allocation). So the repository:

* locks a receivable once (``SELECT ... FOR UPDATE``, held to commit as before) and keeps the row; the port's
  writes to it change the kept row by the rules of ``memory.rows`` and it is written once when the batch
  ends (one ``INSERT`` for the receivables opened, one ``UPDATE ... FROM unnest`` for those changed);
* reads the money of a kept receivable once (allocations with their pairs' places, interest postings) and
  answers ``dated_money``, ``recovery_schedule`` and ``recovered_totals`` from it; allocations saved are
  inserted, and changed splits updated, once per batch;
* holds back pairs, keys and history lines (one ``INSERT`` each per batch, in the order they came: the
  history's ``seq`` numbers them as before), and answers ``resolve`` (every candidate key of a pair in one
  statement), ``receivable_keys`` and ``sibling_pairs`` from what the ledger said plus what the batch added;
* keeps every pair it read (locked) or wrote as it stands, so that a change to one (a parked recovery
  re-matched, money awaiting a refund, a refund acknowledged) is made in memory and written once per batch
  (one ``UPDATE ... FROM unnest``) instead of sent, and what was read ahead stays good: the engine's re-match
  loop reads those pairs back at once, and forgetting them made every later message of the batch read its
  sibling pairs, parked recoveries and money again; a netting given back on a kept receivable is cancelled in
  its kept money.

Every other method of the port runs its own SQL as before, after writing what is held back for the tables it
reads (:data:`READS`; a writer: every table), so every read sees every earlier write of the batch exactly as
the per-message version did; after a method that changed allocations, pairs or postings in SQL, the kept money
is read again.
A write the database would refuse (a balance below zero, an allocation id twice) is sent at once, so it still
fails on the message that made it. State lives in the instance, and the batch handler makes one per run: a
run the runtime repeats to isolate a failing input starts from the ledger, never from what a failed run kept.
"""

import functools
import inspect
from collections.abc import Awaitable, Callable
from typing import Any

from services.matching.store import PgMatchingRepository
from services.matching.store.batch._state import (
    ALLOCATIONS,
    EVERY_TABLE,
    HISTORY,
    KEYS,
    PAIRS,
    RECEIVABLES,
    BatchState,
)
from services.matching.store.batch.ahead import BatchAhead
from services.matching.store.batch.money import BatchMoney
from services.matching.store.batch.receivables import BatchReceivables

__all__ = ["BatchMatchingRepository"]

UNTOUCHED = frozenset(
    {
        "refund_credits",
        "keep_refund_credit",
        "forwarding",
        "forwarding_balances",
        "work_item_action_known",
        "record_work_item_action",
        "assign",
    }
)
"""Methods whose tables (refund credits, forwarding balances, work items) the batch neither holds back nor
keeps: they run as they are."""
READS: dict[str, tuple[str, ...]] = {
    "forwarding_applications": (PAIRS,),
    "netting_remittances": (ALLOCATIONS,),
    "recorded_refunds": (ALLOCATIONS, PAIRS),
    "period_postings": (),
    "latest_business_date": (HISTORY,),
    "find_by_key": (KEYS, RECEIVABLES),
    "over_recovered": (ALLOCATIONS, RECEIVABLES),
}
"""Methods that only read (and may lock) rows, with the tables they read that the batch may hold writes back
for: those are written first. (Interest postings are never held back.)"""
TAKE_BACK = frozenset({"displace_offsets_after"})
"""Writers that read allocations and pairs and change them only when they return what they took back: the
kept money is read again only then (``withdraw_guesses``, which every evidence runs, does the same)."""


class BatchMatchingRepository(BatchReceivables, BatchMoney, BatchAhead):
    """The matching ledger for one run of one batch (see the module docstring)."""


def _after_flush(name: str, tables: tuple[str, ...], changes_money: bool) -> Callable[..., Awaitable[Any]]:
    """``PgMatchingRepository``'s method, run after what is held back for ``tables`` is written (and followed,
    when it changed allocations, pairs or postings in SQL, by reading the kept money again)."""
    plain = getattr(PgMatchingRepository, name)

    @functools.wraps(plain)
    async def run(self: BatchState, *args: Any, **kwargs: Any) -> Any:
        await self.flush(*tables)
        result = await plain(self, *args, **kwargs)
        if changes_money and (name not in TAKE_BACK or result):
            await self.forget_money()
        return result

    return run


def _wrap_the_rest() -> None:
    """Every public method of the port the batch does not answer itself runs after a flush; a method added to
    the port later is covered without a change here (as a writer of every table, the safe assumption)."""
    own = {name for cls in (BatchReceivables, BatchMoney, BatchAhead, BatchState) for name in vars(cls)}
    for name, _ in inspect.getmembers(PgMatchingRepository, inspect.iscoroutinefunction):
        if name.startswith("_") or name in own or name in UNTOUCHED or name == "flush":
            continue
        if name in READS:
            wrapped = _after_flush(name, READS[name], changes_money=False)
        elif name in TAKE_BACK:
            wrapped = _after_flush(name, (PAIRS, ALLOCATIONS), changes_money=True)
        else:
            wrapped = _after_flush(name, EVERY_TABLE, changes_money=True)
        setattr(BatchMatchingRepository, name, wrapped)


_wrap_the_rest()
