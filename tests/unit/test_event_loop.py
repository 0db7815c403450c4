"""The stages' event loop choice (shared/event_loop.py): uvloop by default, the standard loop on request, and a
clear refusal of anything else (a typo must not silently run the slower loop)."""

import asyncio

import pytest
import uvloop

from shared import event_loop


@pytest.fixture(autouse=True)
def _restore_policy() -> object:
    before = asyncio.get_event_loop_policy()
    yield
    asyncio.set_event_loop_policy(before)


def test_uvloop_is_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OFFSETSTREAM_EVENT_LOOP", raising=False)
    assert event_loop.install() == "uvloop"
    loop = asyncio.new_event_loop()
    try:
        assert isinstance(loop, uvloop.Loop)
    finally:
        loop.close()


def test_asyncio_keeps_the_standard_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    asyncio.set_event_loop_policy(asyncio.DefaultEventLoopPolicy())
    monkeypatch.setenv("OFFSETSTREAM_EVENT_LOOP", " AsyncIO ")
    assert event_loop.install() == "asyncio"
    loop = asyncio.new_event_loop()
    try:
        assert not isinstance(loop, uvloop.Loop)
    finally:
        loop.close()


def test_an_unknown_loop_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OFFSETSTREAM_EVENT_LOOP", "uvlop")
    with pytest.raises(ValueError, match="OFFSETSTREAM_EVENT_LOOP must be one of uvloop, asyncio"):
        event_loop.install()
