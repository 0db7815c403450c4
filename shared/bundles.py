"""One message that carries many items (a chunk of claims), handled by a batch handler written for items.

Publishing one message per item made the per-message machinery (consumer, stream events, offsets, the
idempotency claim, the broker's per-record work) cost several times what the item's own work did (issue #18).
A producer may therefore bundle items; a consumer whose logic is per item unbundles a batch of bundles into one
flat batch of items, runs its item handler once over it, and gives each bundle the outputs of its items. The
unit of idempotency stays the message: a bundle is claimed once.

The unit of dead-lettering is the item, when the consumer says how an item travels alone (``isolate``): an item
that can never be processed is taken out, the batch runs again without it (in a savepoint, so the failed run
leaves nothing behind), and the item alone goes to the dead-letter topic as the message it would have been on
its own, so ``dlt replay`` re-drives just that item. The bundle's other items are applied, not held back with
it: a claim whose data can never be stored must not keep the 99 claims beside it from being checked for
overpayments. Without ``isolate``, or when a bundle cannot even be unbundled, the bundle is dead-lettered whole,
with its original bytes and a reason naming the item.
"""

import logging
from collections.abc import Callable, Sequence
from functools import partial
from typing import TypeVar

import asyncpg
from pydantic import BaseModel

from contracts.envelope import Envelope
from shared import effects
from shared.effects import after_commit
from shared.failures import is_transient
from shared.messages import EventBatchHandler, FailedInput, Outgoing

log = logging.getLogger(__name__)

T = TypeVar("T")
B = TypeVar("B", bound=BaseModel)
I = TypeVar("I", bound=BaseModel)  # noqa: E741 (the item type, beside B for the bundle)


def consecutive_parts(
    items: Sequence[T], weight: Callable[[T], int], max_weight: int, max_count: int | None = None
) -> list[Sequence[T]]:
    """``items`` cut, in order, into consecutive parts of at most ``max_weight`` total weight and ``max_count``
    items; an item heavier than the bound alone is a part of its own. One rule for how a producer bundles
    (intake's claims parts) and how a consumer bounds a transaction (``shared.stream``'s cut by bytes): a pure
    function of the items, so the same items are always cut the same way."""
    parts: list[Sequence[T]] = []
    start = total = 0
    for at, item in enumerate(items):
        heavy = weight(item)
        if at > start and (at - start == max_count or total + heavy > max_weight):
            parts.append(items[start:at])
            start, total = at, 0
        total += heavy
    if start < len(items):
        parts.append(items[start:])
    return parts


ItemDeadLetter = Callable[[Envelope[B], Envelope[I], Exception, str, dict[str, str]], Outgoing]
"""(bundle, the item as it would travel alone, cause, PHI-free words for the item, its ``location.*``) → the
item's own dead-letter record (``shared.batches.item_dead_letter``)."""


def unbundled(
    unbundle: Callable[[Envelope[B]], Sequence[Envelope[I]]],
    handler: EventBatchHandler[I],
    describe: Callable[[Envelope[B], int], tuple[str, dict[str, str]] | None],
    isolate: "ItemDeadLetter[B, I] | None" = None,
) -> EventBatchHandler[B]:
    """A batch handler of bundles that runs ``handler`` once over all their items, in order: ``unbundle``
    gives a bundle's items, each as the envelope it would have travelled in on its own; ``describe`` says
    which item of a bundle (by index) failed, in PHI-free words and as ``location.*`` headers (None for a
    message that is its own one item: its failure is the message's, as if it had never been unbundled).

    Items see each other's effects in order, as ``handler`` promises for its own inputs, so a batch of bundles
    ends exactly like the same items sent one by one. A :class:`~shared.messages.FailedInput` the handler
    raises at an item that failed for good is, with ``isolate``, that item's own dead letter among its
    bundle's outputs, after a run without it; without ``isolate`` it is raised again at the item's bundle,
    with ``describe``'s words for the item, so the runtime dead-letters that bundle and applies the others.
    A transient failure always propagates (the whole batch is retried)."""

    async def apply(conn: asyncpg.Connection, bundles: Sequence[Envelope[B]]) -> list[list[Outgoing]]:
        items: list[Envelope[I]] = []
        owner: list[tuple[int, int]] = []  # (bundle position, item index in the bundle) of each item
        for position, bundle in enumerate(bundles):
            try:
                carried = unbundle(bundle)
            except Exception as exc:
                raise FailedInput(position, exc) from exc
            items += carried
            owner += [(position, index) for index in range(len(carried))]
        given: list[list[Outgoing]] = [[] for _ in bundles]
        kept = list(range(len(items)))  # the items of this run, by their place in ``items``
        while True:
            try:
                # Only items carried inside a bundle can be taken out alone; a message that is its own item
                # fails as a message, and a run without bundled items needs no savepoint.
                isolated = isolate is not None and any(items[k] is not bundles[owner[k][0]] for k in kept)
                outputs = await _run(conn, handler, [items[k] for k in kept], isolated=isolated)
                break
            except FailedInput as failed:
                flat = kept[failed.position]
                position, index = owner[flat]
                described = describe(bundles[position], index)
                if described is None:
                    raise FailedInput(position, failed.cause) from failed.cause
                where, location = described
                if isolate is None or is_transient(failed.cause):
                    raise FailedInput(
                        position, failed.cause, where=where, location=location
                    ) from failed.cause
                given[position].append(isolate(bundles[position], items[flat], failed.cause, where, location))
                after_commit(
                    partial(log.warning, "%s dead-lettered alone; the rest of its message applied", where)
                )
                kept.remove(flat)
        for flat, owed in zip(kept, outputs, strict=True):
            given[owner[flat][0]] += owed
        return given

    return apply


async def _run(
    conn: asyncpg.Connection, handler: EventBatchHandler[I], items: list[Envelope[I]], *, isolated: bool
) -> list[Sequence[Outgoing]]:
    """One call of ``handler``; when items are isolated, in a savepoint of its own with its deferred effects
    kept apart, so a run that fails at an item leaves neither rows nor metric increments behind."""
    if not isolated:
        return list(await handler(conn, items))
    async with conn.transaction():
        with effects.deferred() as pending:
            outputs = list(await handler(conn, items))
    for effect in pending:  # the run stands: its effects wait for the batch's commit like any other
        after_commit(effect)
    return outputs
