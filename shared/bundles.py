"""One message that carries many items (a chunk of claims), handled by a batch handler written for items.

Publishing one message per item made the per-message machinery (consumer, stream events, offsets, the
idempotency claim, the broker's per-record work) cost several times what the item's own work did (issue #18).
A producer may therefore bundle items; a consumer whose logic is per item unbundles a batch of bundles into one
flat batch of items, runs its item handler once over it, and gives each bundle the outputs of its items. The
unit of idempotency and of dead-lettering stays the message: a bundle is claimed once, and a bundle with an
item that can never be processed is dead-lettered whole, with its original bytes and a reason naming the item,
while the other bundles of the batch are applied.
"""

from collections.abc import Callable, Sequence
from typing import TypeVar

import asyncpg
from pydantic import BaseModel

from contracts.envelope import Envelope
from shared.messages import EventBatchHandler, FailedInput, Outgoing

B = TypeVar("B", bound=BaseModel)
I = TypeVar("I", bound=BaseModel)  # noqa: E741 (the item type, beside B for the bundle)


def unbundled(
    unbundle: Callable[[Envelope[B]], Sequence[Envelope[I]]],
    handler: EventBatchHandler[I],
    describe: Callable[[Envelope[B], int], tuple[str, dict[str, str]]],
) -> EventBatchHandler[B]:
    """A batch handler of bundles that runs ``handler`` once over all their items, in order: ``unbundle``
    gives a bundle's items, each as the envelope it would have travelled in on its own; ``describe`` says
    which item of a bundle (by index) failed, in PHI-free words and as ``location.*`` headers.

    Items see each other's effects in order, as ``handler`` promises for its own inputs, so a batch of bundles
    ends exactly like the same items sent one by one. A :class:`~shared.messages.FailedInput` the handler
    raises at an item is raised again at the item's bundle, with ``describe``'s words for the item, so the
    runtime isolates and dead-letters that bundle and applies the others."""

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
        try:
            outputs = await handler(conn, items)
        except FailedInput as failed:
            position, index = owner[failed.position]
            where, location = describe(bundles[position], index)
            raise FailedInput(position, failed.cause, where=where, location=location) from failed.cause
        given: list[list[Outgoing]] = [[] for _ in bundles]
        for (position, _), owed in zip(owner, outputs, strict=True):
            given[position] += owed
        return given

    return apply
