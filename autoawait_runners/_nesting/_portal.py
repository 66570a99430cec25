"""A portal: a coroutine whose synchronous code can await, for nesting ``trio.run()``.

trio's scheduler cannot be re-entered from inside one of its tasks (it is a generator that
is itself running the task's step), so the asyncio shim's trick of parking the caller and
driving the loop from another greenlet does not work for trio. What does work is to run
every step of the task in a greenlet of its own from the start: then synchronous code deep
inside a step can switch out to the task's outermost frame, which awaits on its behalf and
switches back with the result. That is greenback's design; this is the small part of it the
trio runner needs, applied to cells only (a cell's steps pay two greenlet switches each;
background tasks pay nothing).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Coroutine, Generator
from typing import Any, TypeVar

import greenlet

from .._core._nested_call import NestedCallWaiter

T = TypeVar("T")

# What the portal's greenlet and its driver pass each other.
_SEND, _THROW = "send", "throw"  # resume the wrapped coroutine
_VALUE, _ERROR = "value", "error"  # resume synchronous code waiting in await_()
_YIELD, _AWAIT = "yield", "await"  # from the greenlet: yield this, or await this for me


class _PortalGreenlet(greenlet.greenlet):  # type: ignore[misc]
    portal: Portal[Any]


class Portal(Coroutine[Any, Any, T]):
    """Wraps a coroutine so that synchronous code running inside it can :func:`await_`.

    ``cell`` is the IPython cell the coroutine runs, told when it waits in a nested call
    (so Ctrl-C cancels rather than raises in the loop). ``error_hook`` maps an exception the
    awaited code raised to what the synchronous caller sees (the trio runner turns the
    cell's own cancellation into KeyboardInterrupt).
    """

    __slots__ = ("_awaiting", "_cell", "_coro", "_error_hook", "_greenlet")

    def __init__(
        self,
        coro: Coroutine[Any, Any, T],
        *,
        cell: NestedCallWaiter | None = None,
        error_hook: Callable[[BaseException], BaseException] | None = None,
    ) -> None:
        self._coro = coro
        self._cell = cell
        self._error_hook = error_hook
        self._greenlet = _PortalGreenlet(self._body)
        self._greenlet.portal = self
        self._awaiting: Generator[Any, Any, Any] | None = None

    @property
    def coroutine(self) -> Coroutine[Any, Any, T]:
        """The coroutine wrapped."""
        return self._coro

    @property
    def cell(self) -> NestedCallWaiter | None:
        """The cell the coroutine runs, if it runs one."""
        return self._cell

    # -- inside the greenlet ---------------------------------------------------------------

    def _body(self, kind: str, payload: Any) -> None:
        coro = self._coro
        while True:
            # StopIteration (the coroutine returned) and any other exception end the
            # greenlet and propagate to the driver's send()/throw(): the coroutine protocol.
            yielded = coro.send(payload) if kind == _SEND else coro.throw(payload)
            kind, payload = self._greenlet.parent.switch(_YIELD, yielded)

    def await_(self, awaitable: Any) -> Any:
        """Called by synchronous code in the greenlet: wait for ``awaitable`` in the task."""
        cell = self._cell
        with cell.in_nested_call(awaitable) if cell is not None else contextlib.nullcontext():
            kind, payload = self._greenlet.parent.switch(_AWAIT, awaitable)
        if kind == _ERROR:
            raise payload
        return payload

    # -- the coroutine protocol, called by the library's scheduler --------------------------

    def send(self, value: Any) -> Any:
        if self._awaiting is not None:
            return self._drive(_SEND, value)
        return self._enter(_SEND, value)

    def throw(self, typ: Any, val: Any = None, tb: Any = None) -> Any:
        exc = typ if isinstance(typ, BaseException) else typ(*(() if val is None else (val,)))
        if tb is not None:
            exc = exc.with_traceback(tb)
        if self._awaiting is not None:
            return self._drive(_THROW, exc)
        return self._enter(_THROW, exc)

    def close(self) -> None:
        self._coro.close()

    def __await__(self) -> Generator[Any, None, T]:
        # trio wraps a coroutine object without a frame in a coroutine of its own that
        # awaits it: `yield from` then calls our send() and throw().
        return self  # type: ignore[return-value]

    def __next__(self) -> Any:
        return self.send(None)

    def _enter(self, kind: str, payload: Any) -> Any:
        """Switch into the greenlet; return what the task should yield to the scheduler.

        The greenlet runs in the task's own context, the very object, not a greenlet's
        empty one: what the code reads and sets there is the task's (a cell's variables,
        the session's, a kernel's output routing)."""
        driver = greenlet.getcurrent()
        self._greenlet.parent = driver
        self._greenlet.gr_context = driver.gr_context
        what, item = self._greenlet.switch(kind, payload)
        return self._until_yield(what, item)

    def _drive(self, kind: str, payload: Any) -> Any:
        what, item = self._step_awaiting(kind, payload)
        return self._until_yield(what, item)

    def _until_yield(self, what: str, item: Any) -> Any:
        while what == _AWAIT:
            # Synchronous code in the greenlet waits for `item`: drive it from here.
            try:
                self._awaiting = item.__await__()
            except BaseException as exc:  # not awaitable: the caller's mistake, raised there
                self._greenlet.parent = greenlet.getcurrent()
                what, item = self._greenlet.switch(_ERROR, exc)
                continue
            what, item = self._step_awaiting(_SEND, None)
        return item

    def _step_awaiting(self, kind: str, payload: Any) -> tuple[str, Any]:
        """One step of the awaited object; when it is done, resume the synchronous code."""
        awaiting = self._awaiting
        assert awaiting is not None
        try:
            yielded = awaiting.send(payload) if kind == _SEND else awaiting.throw(payload)
        except StopIteration as stop:
            resume: tuple[str, Any] = (_VALUE, stop.value)
        except BaseException as exc:
            hook = self._error_hook
            resume = (_ERROR, hook(exc) if hook is not None else exc)
        else:
            return _YIELD, yielded
        self._awaiting = None
        self._greenlet.parent = greenlet.getcurrent()
        return self._greenlet.switch(*resume)  # type: ignore[no-any-return]


def current_portal() -> Portal[Any] | None:
    """The portal whose greenlet is running now, if any."""
    current = greenlet.getcurrent()
    return current.portal if isinstance(current, _PortalGreenlet) else None
