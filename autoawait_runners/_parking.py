"""Parking: run a coroutine to completion on the asyncio loop that is running below us.

The same-loop strategy of the nesting shim (``_nesting``), also used by ``embed()``. A
nested call happens in the middle of some step of the running loop: the loop's `_run_once`
is on the stack below the caller. The caller's greenlet is parked (switched away from,
stack intact) and a *driver* greenlet takes over, calling `_run_once` in a loop. When the
nested future is done, the parked greenlet is switched back in and its own `_run_once`
carries on; whichever greenlet was driving until then steps aside. Only one greenlet runs
at a time, so at every moment exactly one of them drives the loop.

A `_run_once` that was suspended half-way resumes popping the handles it counted when it
started, some of which other greenlets have run since: before it resumes, the ready queue is
padded with cancelled handles (which `_run_once` skips) so that it holds at least as many
handles as that `_run_once` still means to pop (read from its frame).
"""

from __future__ import annotations

import asyncio
import asyncio.tasks
import contextlib
import functools
import sys
from collections import deque
from types import FrameType
from typing import Any

import greenlet

from ._cell import CellCoroutine

#: How often a parked call checks whether its caller's task was cancelled. Cancelling a task
#: that is in the middle of a step only sets a flag on it; nothing wakes the parked call.
CANCEL_CHECK_INTERVAL = 0.005


class _Parked:
    """A caller waiting in a nested call."""

    __slots__ = ("cancels", "future", "greenlet", "ready", "task", "waiting")

    def __init__(
        self,
        holder: greenlet.greenlet,
        task: asyncio.Task[Any] | None,
        future: asyncio.Future[Any],
        ready: int,
    ) -> None:
        self.greenlet = holder
        self.task = task
        self.future = future
        self.ready = ready  # handles its `_run_once` still means to pop
        self.cancels = task.cancelling() if task is not None else 0  # requests so far
        self.waiting = True


class _LoopNesting:
    """The nesting state of one loop."""

    __slots__ = ("cancel_check", "drivers", "filler", "idle", "loop", "parked", "wakeups")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.parked: list[_Parked] = []
        self.wakeups: deque[_Parked] = deque()
        # Greenlets that were driving the loop when a parked call had to resume, with what
        # their `_run_once` still meant to pop: the driver in charge hands back to them.
        self.idle: list[tuple[greenlet.greenlet, int]] = []
        self.drivers: set[greenlet.greenlet] = set()
        self.cancel_check: asyncio.TimerHandle | None = None
        self.filler: asyncio.Handle | None = None


#: The loop attribute holding its nesting state (on the loop, so it goes with the loop).
_STATE = "_autoawait_runners_nesting"


def run_on_running_loop(loop: asyncio.AbstractEventLoop, awaitable: Any) -> Any:
    """Run ``awaitable`` to completion on ``loop``, which is running in this thread and
    somewhere below us on the stack; other tasks of the loop keep running meanwhile."""
    if not isinstance(loop, asyncio.BaseEventLoop):
        raise RuntimeError(
            f"the nesting shim cannot re-enter a running {type(loop).__qualname__} "
            "(only asyncio's own event loops); run this code in a thread instead"
        )
    future = asyncio.ensure_future(awaitable, loop=loop)
    if future.done():
        return future.result()
    state: _LoopNesting | None = getattr(loop, _STATE, None)
    if state is None:
        state = _LoopNesting(loop)
        setattr(loop, _STATE, state)
    task = asyncio.current_task(loop)
    here = greenlet.getcurrent()
    parked = _Parked(here, task, future, _still_to_run(loop))
    state.parked.append(parked)
    future.add_done_callback(functools.partial(_wake, state, parked))
    _check_cancellation_soon(state)
    if task is not None:
        asyncio.tasks._leave_task(loop, task)
    root = here
    while root.parent is not None:
        root = root.parent
    driver = greenlet.greenlet(functools.partial(_drive, state), parent=root)
    state.drivers.add(driver)
    cell = _cell_of(task)
    try:
        with cell.in_nested_call() if cell is not None else contextlib.nullcontext():
            driver.switch()
    except BaseException:
        future.cancel()
        raise
    finally:
        parked.waiting = False
        state.parked.remove(parked)
        if task is not None:
            asyncio.tasks._enter_task(loop, task)
        if not state.parked and not state.drivers:
            _forget(state)
    try:
        return future.result()
    except asyncio.CancelledError as exc:
        if cell is None:
            raise
        raise cell.nested_call_cancelled(exc) from None


def _cell_of(task: asyncio.Task[Any] | None) -> CellCoroutine[Any] | None:
    """The cell, when ``task`` is an IPython cell run by one of our runners."""
    coro = task.get_coro() if task is not None else None
    return coro if isinstance(coro, CellCoroutine) else None


def _drive(state: _LoopNesting) -> None:
    """A driver greenlet: run the loop until someone else should have it, then finish into
    them (a greenlet that finishes switches to its parent)."""
    me = greenlet.getcurrent()
    loop = state.loop
    try:
        while True:
            target = _next_holder(state)
            if target is not None:
                me.parent = target
                return
            try:
                loop._run_once()  # type: ignore[attr-defined]
            except greenlet.GreenletExit:
                raise
            except BaseException:
                # Ctrl-C, SystemExit: raise it where a caller waits, the most recent first.
                target = _next_holder(state, failing=True)
                if target is None:
                    raise
                me.parent = target
                raise
    finally:
        state.drivers.discard(me)


def _next_holder(state: _LoopNesting, *, failing: bool = False) -> greenlet.greenlet | None:
    """Who should drive the loop instead of the current driver: a caller whose nested call
    is done, else a greenlet that stepped aside for one (the loop's own ``run_forever``)."""
    woken = _next_woken(state)
    if woken is not None:
        return woken
    if failing:
        for parked in reversed(state.parked):
            if parked.waiting:
                return _resume(state, parked)
    if state.idle:
        holder, ready = state.idle.pop()
        _pad(state, ready)
        return holder
    return None


def _next_woken(state: _LoopNesting) -> greenlet.greenlet | None:
    """The next caller whose nested call is done, its ready queue restored."""
    while state.wakeups:
        parked = state.wakeups.popleft()
        if parked.waiting:
            return _resume(state, parked)
    return None


def _resume(state: _LoopNesting, parked: _Parked) -> greenlet.greenlet:
    """Make a parked caller the next to run: no longer waiting, its ready queue restored."""
    parked.waiting = False
    _pad(state, parked.ready)
    return parked.greenlet


def _wake(state: _LoopNesting, parked: _Parked, _: asyncio.Future[Any]) -> None:
    """Done callback of a nested future: resume its caller."""
    state.wakeups.append(parked)
    me = greenlet.getcurrent()
    if me in state.drivers:
        return  # the driver hands over after this iteration
    # The loop's own greenlet (or a foreign one) is driving: it steps aside now, in the
    # middle of its iteration, and a driver hands the loop back to it later.
    while True:
        ready = _still_to_run(state.loop)
        woken = _next_woken(state)
        if woken is None:
            return
        state.idle.append((me, ready))
        woken.switch()


_RUN_ONCE = asyncio.BaseEventLoop._run_once.__code__  # type: ignore[attr-defined]


def _still_to_run(loop: asyncio.AbstractEventLoop) -> int:
    """How many handles the ``_run_once`` running us still means to pop from the ready
    queue: ``for i in range(ntodo): handle = self._ready.popleft()`` (3.11 to 3.14)."""
    frame: FrameType | None = sys._getframe(1)
    while frame is not None:
        if frame.f_code is _RUN_ONCE:
            local = frame.f_locals
            if local.get("self") is loop:
                ntodo, i = local.get("ntodo"), local.get("i")
                if isinstance(ntodo, int) and isinstance(i, int):
                    return ntodo - i - 1
                break
        frame = frame.f_back
    # Not called from a step of the loop, or asyncio changed: the whole queue is safe.
    return len(loop._ready)  # type: ignore[attr-defined]


def _pad(state: _LoopNesting, length: int) -> None:
    ready: deque[asyncio.Handle] = state.loop._ready  # type: ignore[attr-defined]
    missing = length - len(ready)
    if missing <= 0:
        return
    if state.filler is None:
        state.filler = asyncio.Handle(_nothing, (), state.loop)
        state.filler.cancel()
    ready.extendleft([state.filler] * missing)


def _nothing() -> None:
    pass


def _check_cancellation_soon(state: _LoopNesting) -> None:
    if state.cancel_check is None:
        state.cancel_check = state.loop.call_later(
            CANCEL_CHECK_INTERVAL, _check_cancellation, state
        )


def _check_cancellation(state: _LoopNesting) -> None:
    """Cancel the nested call of each parked caller whose task was cancelled meanwhile.

    A task cancelled in the middle of a step (a parked caller is in the middle of one) only
    records the request; we pass it on to the call it waits for, as asyncio passes a
    cancellation on to the future a task awaits.
    """
    state.cancel_check = None
    for parked in state.parked:
        task = parked.task
        if task is None or not parked.waiting:
            continue
        requested = task.cancelling()
        if requested > parked.cancels:
            parked.cancels = requested
            parked.future.cancel()
            cell = _cell_of(task)
            if cell is not None:
                cell.absorb_stale_cancellation(task)
    if state.parked:
        _check_cancellation_soon(state)


def _forget(state: _LoopNesting) -> None:
    if state.cancel_check is not None:
        state.cancel_check.cancel()
    if getattr(state.loop, _STATE, None) is state:
        delattr(state.loop, _STATE)


def parked_calls(loop: asyncio.AbstractEventLoop) -> int:
    """How many nested calls are waiting on ``loop`` (for tests)."""
    state: _LoopNesting | None = getattr(loop, _STATE, None)
    return len(state.parked) if state is not None else 0


__all__ = ["parked_calls", "run_on_running_loop"]
