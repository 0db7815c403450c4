"""The event loop a stage process runs on: uvloop unless ``OFFSETSTREAM_EVENT_LOOP=asyncio``.

A stage's CPU is mostly the event loop's own work around many small I/O operations: every SQL statement, Kafka
fetch, produce and commit, and webhook request is a socket write and a wake-up, and the loop runs thousands of
callbacks a second between them (py-spy under the 40 000-claim burst: the selector and socket writes were 20-50 %
of matching's and notification's samples). uvloop (libuv, the loop asyncpg's authors wrote it for) does that work
in C; the futures, tasks and everything above them stay asyncio's, so the code runs unchanged. The policy must be
set before anything creates a loop, so each stage's ``__main__`` calls :func:`install` first. ``asyncio`` keeps
the standard library's loop (for a platform without uvloop's wheels, or to rule it out when chasing a fault).
"""

import asyncio
import os

CHOICES = ("uvloop", "asyncio")


def install() -> str:
    """Set the event loop policy named by ``OFFSETSTREAM_EVENT_LOOP`` (default uvloop); the name of the one set."""
    choice = os.environ.get("OFFSETSTREAM_EVENT_LOOP", "uvloop").strip().lower() or "uvloop"
    if choice not in CHOICES:
        raise ValueError(f"OFFSETSTREAM_EVENT_LOOP must be one of {', '.join(CHOICES)}, not {choice[:20]!r}")
    if choice == "uvloop":
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return choice
