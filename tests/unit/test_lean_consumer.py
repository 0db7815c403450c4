"""``shared.lean_consumer``: the fetch loop's hand-over of a record runs inline when it does not wait, and keeps
Faust's race against the flow's suspension when it does (a rebalance must still abandon a blocked delivery)."""

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from mode import Service

from shared.lean_consumer import InlineDelivery


class Fetcher(InlineDelivery, Service):
    """A mode service with the flow event Faust's consumer has, the way the fetch loop calls ``wait_first``."""

    def __init__(self) -> None:
        super().__init__()
        self.suspend_flow = asyncio.Event()

    async def hand_over(self, delivery: "asyncio.Future[object] | object") -> object:
        """What Faust's ``_drain_messages`` does with one record."""
        assert asyncio.iscoroutine(delivery)
        return await self.wait_first(delivery, self.suspend_flow.wait())


@contextmanager
def tasks_made() -> Iterator[list[object]]:
    """Count the tasks the running loop makes inside the block."""
    loop = asyncio.get_running_loop()
    made: list[object] = []

    def factory(loop: asyncio.AbstractEventLoop, coro: object, **kwargs: object) -> "asyncio.Task[object]":
        made.append(coro)
        return asyncio.Task(coro, loop=loop, **kwargs)  # type: ignore[arg-type]

    loop.set_task_factory(factory)  # type: ignore[arg-type]
    try:
        yield made
    finally:
        loop.set_task_factory(None)


async def test_a_delivery_that_does_not_wait_runs_inline_and_makes_no_task() -> None:
    fetcher, queue = Fetcher(), asyncio.Queue[int](maxsize=10)
    with tasks_made() as made:
        results = await fetcher.hand_over(queue.put(1))
    assert made == []  # Faust's own wait_first makes four tasks here
    assert results.done and results.results == [None] and not results.stopped  # type: ignore[attr-defined]
    assert queue.get_nowait() == 1


async def test_a_delivery_that_waits_finishes_as_a_task_with_what_it_waited_for() -> None:
    fetcher, queue = Fetcher(), asyncio.Queue[int](maxsize=1)
    queue.put_nowait(0)  # full: the put must wait for room
    seen: list[int] = []

    async def consumer() -> None:
        for _ in range(3):
            await asyncio.sleep(0)  # bare yields on the way, as asyncio.sleep(0) makes them
        seen.append(queue.get_nowait())

    drain = asyncio.create_task(consumer())
    await fetcher.hand_over(queue.put(1))
    await drain
    assert seen == [0] and queue.get_nowait() == 1


async def test_a_future_s_result_and_error_reach_the_delivery_that_awaited_it() -> None:
    fetcher, loop = Fetcher(), asyncio.get_running_loop()
    answer: asyncio.Future[int] = loop.create_future()
    failure: asyncio.Future[int] = loop.create_future()
    got: list[object] = []

    async def delivery() -> str:
        got.append(await answer)
        try:
            await failure
        except LookupError as exc:
            got.append(str(exc))
        return "done"

    loop.call_soon(answer.set_result, 7)
    loop.call_later(0.01, failure.set_exception, LookupError("no partition"))
    results = await fetcher.hand_over(delivery())
    assert got == [7, "no partition"]
    assert "done" in results.results  # type: ignore[attr-defined]


async def test_suspending_the_flow_abandons_a_delivery_blocked_on_a_full_buffer() -> None:
    fetcher, queue = Fetcher(), asyncio.Queue[int](maxsize=1)
    queue.put_nowait(0)
    cleaned: list[str] = []

    async def delivery() -> None:
        try:
            await queue.put(1)
        finally:
            cleaned.append("delivery unwound")

    asyncio.get_running_loop().call_later(0.01, fetcher.suspend_flow.set)
    await asyncio.wait_for(fetcher.hand_over(delivery()), timeout=2)
    await asyncio.sleep(0)  # mode cancels the losers; let the cancellation run
    assert cleaned == ["delivery unwound"]
    assert queue.qsize() == 1 and queue.get_nowait() == 0  # the blocked record never reached the buffer


async def test_cancelling_the_fetch_loop_cancels_a_blocked_delivery() -> None:
    fetcher, queue = Fetcher(), asyncio.Queue[int](maxsize=1)
    queue.put_nowait(0)
    cancelled: list[bool] = []

    async def delivery() -> None:
        try:
            await queue.put(1)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    loop_task = asyncio.create_task(fetcher.hand_over(delivery()))
    await asyncio.sleep(0.01)
    loop_task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await loop_task
    await asyncio.sleep(0)
    assert cancelled == [True]


async def test_an_error_of_the_delivery_reaches_the_fetch_loop_and_the_flow_wait_is_closed() -> None:
    fetcher = Fetcher()

    async def delivery() -> None:
        raise ValueError("bad record")

    with pytest.raises(ValueError, match="bad record"):
        await fetcher.hand_over(delivery())


async def test_while_the_flow_is_suspended_and_for_other_calls_mode_s_own_wait_first_runs() -> None:
    fetcher, queue = Fetcher(), asyncio.Queue[int](maxsize=10)
    fetcher.suspend_flow.set()
    with tasks_made() as made:
        await fetcher.hand_over(queue.put(1))
    assert len(made) == 4  # mode's path: delivery, flow, stopped, crashed
    other = asyncio.Event()
    other.set()
    with tasks_made() as made:
        await fetcher.wait_first(queue.put(2), other.wait())
    assert len(made) == 4
