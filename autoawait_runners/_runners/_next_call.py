"""Await, from a cell of any runner, the next call of a callback made in another thread.

A widget's callbacks (``observe``, ``on_click``, ``on_msg``) run in the kernel's main thread,
as widget code expects; a cell awaits in its runner's loop, which may run in another thread,
and whose objects are not thread-safe (an asyncio future set from another thread may not
wake its loop). So the callback hands its arguments over the one thread-safe way each
library has: ``call_soon_threadsafe`` (asyncio), the run's token (trio), a universal event
(curio). Each library's part is imported only when a cell of that library awaits.
"""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Awaitable, Callable
from typing import Any

from .._core import _private_api
from .._core._tracebacks import for_the_user
from ._asyncio_session import resolve_soon

#: Registers a callback; returns what unregisters it.
Subscribe = Callable[[Callable[..., None]], Callable[[], None]]


async def next_call(subscribe: Subscribe) -> tuple[Any, ...]:
    """The arguments of the next call of the callback ``subscribe`` registers, whichever
    thread makes it. The callback is unregistered when this returns, fails or is cancelled
    (a timeout around it)."""
    tell, called = _event_for(_current_library())
    once = _Once(tell)
    unsubscribe = subscribe(once)
    try:
        await called()
    finally:
        unsubscribe()
    assert once.arguments is not None
    return once.arguments


def _current_library() -> str:
    trio = sys.modules.get("trio")
    if trio is not None:
        try:
            trio.lowlevel.current_trio_token()
        except RuntimeError:
            pass
        else:
            return "trio"
    curio_meta = sys.modules.get("curio.meta")
    if curio_meta is not None and curio_meta.curio_running():
        return "curio"
    if _private_api.running_loop() is None:
        raise for_the_user(RuntimeError("await this in a cell (asyncio, trio or curio)"))
    return "asyncio"


class _Once:
    """The callback: keeps the first call's arguments, and says so once."""

    def __init__(self, tell: Callable[[], None]) -> None:
        self.arguments: tuple[Any, ...] | None = None
        self._lock = threading.Lock()
        self._tell = tell

    def __call__(self, *arguments: Any) -> None:
        with self._lock:
            if self.arguments is not None:
                return
            self.arguments = arguments
        self._tell()


def _event_for(library: str) -> tuple[Callable[[], None], Callable[[], Awaitable[Any]]]:
    """An event of ``library``'s own: how to set it from any thread, how to wait for it."""
    if library == "trio":
        import trio

        token = trio.lowlevel.current_trio_token()
        trio_event = trio.Event()

        def tell_trio() -> None:
            with contextlib.suppress(trio.RunFinishedError):  # the run ended: nobody waits
                token.run_sync_soon(trio_event.set)

        return tell_trio, trio_event.wait
    if library == "curio":
        import curio

        curio_event = curio.UniversalEvent()
        return curio_event.set, curio_event.wait
    import asyncio

    loop = asyncio.get_running_loop()
    future = loop.create_future()

    return lambda: resolve_soon(loop, future), lambda: future
