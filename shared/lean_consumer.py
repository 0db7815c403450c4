"""Faust's consumer without four asyncio tasks per message.

Faust's fetch loop hands every record to the stream as ``wait_first(callback(message), suspend_flow.wait())``:
``mode``'s ``wait_first`` wraps each argument, and the service's ``stopped`` and ``crashed`` events, in a task of
its own, waits for the first, and cancels the other three. That is four tasks made and three cancelled for every
record, although the delivery almost always finishes at once: the stream's buffer has room, so putting the event
there never waits. A profile of notification under the bench put ``wait_first`` at 9 % of the process and
matching's at 6 % (``devtools/bench/README.md``, session 11).

:class:`LeanConsumer` runs the delivery inline until it first has to wait. If it finishes (the usual case) no task
is made at all. If it has to wait (the buffer is full, the flow is being suspended), the rest of it continues as a
task and Faust's own ``wait_first`` races it against the suspension exactly as before, so a rebalance still
abandons a blocked delivery. Everything else in Faust's consumer is untouched.
"""

from asyncio import Event
from collections.abc import Coroutine, Generator
from types import CoroutineType
from typing import Any

import faust
from faust.transport.drivers import aiokafka as faust_aiokafka
from mode.services import Service, WaitArgT, WaitResults


class InlineDelivery(Service):
    """A ``mode`` service (Faust's consumer) whose fetch loop's hand-over of a record runs inline when it does
    not wait. The service must have ``suspend_flow``, the event Faust's consumer sets to suspend its flow."""

    suspend_flow: Event

    async def wait_first(
        self,
        *coros: WaitArgT,
        timeout: Any = None,  # noqa: ASYNC109 (mode's signature, overridden; mode types it Seconds)
    ) -> WaitResults:
        """Faust's fetch loop's ``wait_first(delivery, suspend_flow.wait())`` without tasks when the delivery
        completes at once; every other call is ``mode``'s own."""
        if not _is_delivery(coros, timeout, self.suspend_flow):
            return await super().wait_first(*coros, timeout=timeout)
        delivery, flow_wait = coros
        assert isinstance(delivery, Coroutine) and isinstance(flow_wait, Coroutine)
        try:
            waiting_on = delivery.send(None)
        except StopIteration as finished:
            flow_wait.close()
            return WaitResults([delivery], [finished.value], False)
        except BaseException:
            flow_wait.close()
            raise
        # It has to wait: let the rest run as a task, raced against the flow's suspension as Faust does.
        return await super().wait_first(_resumed(delivery, waiting_on), flow_wait, timeout=timeout)


class LeanConsumer(InlineDelivery, faust_aiokafka.Consumer):
    """Faust's aiokafka consumer whose per-record hand-over to the stream runs inline when it does not wait."""


class LeanTransport(faust_aiokafka.Transport):
    """Faust's aiokafka transport making :class:`LeanConsumer` consumers."""

    Consumer = LeanConsumer


def use_lean_consumer(app: faust.App) -> None:
    """Make the app's consumer a :class:`LeanConsumer` (before anything has made its consumer)."""
    app.transport = LeanTransport(app.conf.broker_consumer, app)


def _is_delivery(coros: tuple[WaitArgT, ...], timeout: Any, suspend_flow: Event) -> bool:
    """Whether this is the fetch loop's call: two coroutines, the second the flow's ``wait()``, no timeout, and
    the flow not suspended now (then mode's path is kept, which returns at once)."""
    if timeout is not None or len(coros) != 2 or suspend_flow.is_set():
        return False
    delivery, flow_wait = coros
    return (
        isinstance(delivery, CoroutineType)
        and isinstance(flow_wait, CoroutineType)
        and flow_wait.cr_code is type(suspend_flow).wait.__code__
    )


async def _resumed(coro: Coroutine[Any, Any, Any], waiting_on: Any) -> Any:
    """Drive a coroutine that was started by hand and yielded ``waiting_on`` to the end, as the task running it
    would: wait for what it waits on, then resume it; the awaited future's outcome (a result, an error, or a
    cancellation this task's own cancellation caused) reaches the coroutine through that future, as in asyncio."""
    while True:
        if waiting_on is not None:
            try:
                await _settled(waiting_on)
            except BaseException as exc:  # this task was cancelled while the future was not
                waiting_on = coro.throw(exc)
                continue
        else:
            await _yield_once()
        try:
            waiting_on = coro.send(None)
        except StopIteration as finished:
            return finished.value


async def _settled(future: Any) -> None:
    """Wait until the future is done without raising its outcome (the coroutine that awaits it reads it)."""
    # The coroutine's own ``await`` marked it as blocking; a task clears that mark when it takes the future on,
    # and awaiting a future still marked is refused.
    future._asyncio_future_blocking = False
    try:
        await future
    except BaseException:
        if not future.done():
            raise


class _Yield:
    """One bare yield to the event loop, what ``asyncio.sleep(0)`` does."""

    def __await__(self) -> Generator[None, None, None]:
        yield None


async def _yield_once() -> None:
    await _Yield()
