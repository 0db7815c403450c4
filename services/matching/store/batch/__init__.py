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
  statement), ``receivable_keys`` and ``sibling_pairs`` from what the ledger said plus what the batch added.

Every other method of the port runs its own SQL as before, after writing everything held back (:data:`READS`
and the writers below), so every read sees every earlier write of the batch exactly as the per-message
version did; after a method that changes allocations, pairs or postings in SQL, the kept money is read again.
A write the database would refuse (a balance below zero, an allocation id twice) is sent at once, so it still
fails on the message that made it. State lives in the instance, and the batch handler makes one per run: a
run the runtime repeats to isolate a failing input starts from the ledger, never from what a failed run kept.
"""

import functools
import inspect
from collections.abc import Awaitable, Callable
from typing import Any

from services.matching.store import PgMatchingRepository
from services.matching.store.batch._state import BatchState
from services.matching.store.batch.money import BatchMoney
from services.matching.store.batch.receivables import BatchReceivables

__all__ = ["BatchMatchingRepository"]

UNTOUCHED = frozenset(
    {
        "take_pending_actions",
        "park_action",
        "refund_credits",
        "keep_refund_credit",
        "forwarding",
        "forwarding_balances",
        "work_item_action_known",
        "record_work_item_action",
        "assign",
    }
)
"""Methods whose tables (pending actions, refund credits, forwarding balances, work items) the batch neither
holds back nor keeps: they run as they are."""
READS = frozenset(
    {
        "parked_recoveries",
        "deferral_in",
        "netting_remittances",
        "recorded_refunds",
        "period_postings",
        "forwarding_applications",
        "latest_business_date",
        "find_by_key",
        "open_candidates",
        "over_recovered",
        "lock_pair",
    }
)
"""Methods that read (and may lock) rows the batch holds back: everything held back is written first."""


class BatchMatchingRepository(BatchReceivables, BatchMoney):
    """The matching ledger for one run of one batch (see the module docstring)."""


def _after_flush(name: str, changes_money: bool) -> Callable[..., Awaitable[Any]]:
    """``PgMatchingRepository``'s method, run after everything held back is written (and followed, when it
    changes allocations, pairs or postings in SQL, by reading the kept money again)."""
    plain = getattr(PgMatchingRepository, name)

    @functools.wraps(plain)
    async def run(self: BatchState, *args: Any, **kwargs: Any) -> Any:
        await self.flush()
        result = await plain(self, *args, **kwargs)
        if changes_money:
            await self.forget_money()
        return result

    return run


def _wrap_the_rest() -> None:
    """Every public method of the port the batch does not answer itself runs after a flush; a method added to
    the port later is covered without a change here (as a writer, the safe assumption)."""
    own = {name for cls in (BatchReceivables, BatchMoney, BatchState) for name in vars(cls)}
    for name, _ in inspect.getmembers(PgMatchingRepository, inspect.iscoroutinefunction):
        if name.startswith("_") or name in own or name in UNTOUCHED or name == "flush":
            continue
        setattr(BatchMatchingRepository, name, _after_flush(name, changes_money=name not in READS))


_wrap_the_rest()
