"""Parking: run a coroutine to completion on an asyncio loop without unwinding the caller.

The same-loop strategy of the nesting shim (``_nesting``), also used by ``embed()`` and by
the ``asyncio`` runner to run its session loop. Two kinds of caller wait here:

- **a nested call**, made in the middle of some step of the running loop (its `_run_once` is
  on the stack below the caller): :func:`run_on_running_loop`;
- **an outside caller**, code the loop is not running (the ``asyncio`` runner waiting for a
  cell, or for input at the prompt): :func:`run_from_outside`. The loop then runs in
  greenlets of its own, so a background task parked in a nested call sits on one of *their*
  stacks, never on the caller's: the cell and the prompt never wait for it (DESIGN N7).

A waiting caller's greenlet is parked (switched away from, stack intact) and a *driver*
greenlet takes over, calling `_run_once` in a loop. When the awaited future is done, the
parked greenlet is switched back in and carries on; whichever greenlet was driving until then
steps aside. Only one greenlet runs at a time, so at every moment exactly one of them drives
the loop.

A `_run_once` that was suspended half-way resumes popping the handles it counted when it
started, some of which other greenlets have run since: before it resumes, the ready queue is
padded with cancelled handles (which `_run_once` skips) so that it holds at least as many
handles as that `_run_once` still means to pop (read from its frame).

A nested call parks inside a ``Context.run()``: the step of its task runs in the task's
context, which stays *entered* until the call returns. A handle of another task that shares
that context (ipykernel 7 runs every message's handler in one) cannot enter it meanwhile:
asyncio would report a RuntimeError and drop the step, and the task would never run. While
nested calls are parked, the loop's exception handler is therefore looked at first
(:meth:`_LoopNesting.handle_exception`): such a handle runs at once, in that context made
the driver's current one (``gr_context``) rather than entered, exactly as it would have run
between two steps of the parked task. Setting it aside until the parked call ends would
deadlock a cell that waits for it: ipykernel hands a widget's message to the kernel through
such a task. A handle whose context is entered elsewhere is set aside, and queued again, in
order, whenever a parked caller resumes. Nothing is checked when nothing fails, so nesting
costs no more per handle.
"""

from __future__ import annotations

import asyncio
import asyncio.tasks
import contextlib
import functools
import sys
import threading
from collections import deque
from collections.abc import Callable
from types import FrameType
from typing import Any

import greenlet

from .._core import _ctrl_c, _private_api
from .._core._nested_call import taker_of, waiter_of
from .._core._tracebacks import for_the_user
from ._loops import NESTING_STATE, context_entered, outer_loop_paused, reenterable

#: How often a parked call checks whether its caller's task was cancelled. Cancelling a task
#: that is in the middle of a step only sets a flag on it; nothing wakes the parked call.
CANCEL_CHECK_INTERVAL = 0.005


class _Parked:
    """A caller waiting for a future: inside a step of the loop (a nested call), or outside
    the loop (``ready`` is None)."""

    __slots__ = ("cancels", "future", "greenlet", "ready", "task", "waiting")

    def __init__(
        self,
        holder: greenlet.greenlet,
        task: asyncio.Task[Any] | None,
        future: asyncio.Future[Any],
        ready: int | None,
    ) -> None:
        self.greenlet = holder
        self.task = task
        self.future = future
        self.ready = ready  # handles its `_run_once` still means to pop
        self.cancels = task.cancelling() if task is not None else 0  # requests so far
        self.waiting = True


class _LoopNesting:
    """The nesting state of one loop."""

    __slots__ = (
        "cancel_check",
        "deferred",
        "drivers",
        "filler",
        "hooks",
        "idle",
        "loop",
        "nested",
        "owner",
        "parked",
        "survives",
        "wakeups",
    )

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.parked: list[_Parked] = []
        self.nested = 0  # how many of them wait inside a step (hold a context)
        self.deferred: list[asyncio.Handle] = []
        self.wakeups: deque[_Parked] = deque()
        # Greenlets that were driving the loop when a parked call had to resume, with what
        # their `_run_once` still meant to pop: the driver in charge hands back to them.
        self.idle: list[tuple[greenlet.greenlet, int]] = []
        self.drivers: set[greenlet.greenlet] = set()
        self.owner: greenlet.greenlet | None = None  # runs run_forever for outside callers
        self.cancel_check: asyncio.TimerHandle | None = None
        self.filler = asyncio.Handle(_nothing, (), loop)
        self.filler.cancel()
        # The async generator hooks of the loop's own greenlets, for an outside caller to
        # put back when it hands the loop over (run_forever set them in the loop's greenlet).
        # A plain tuple: the garbage collector does not look inside the struct sequence
        # sys.get_asyncgen_hooks() returns, so the loop's own hooks held in one kept this
        # state, and the loop, alive after the loop was closed.
        self.hooks: tuple[Any, ...] | None = None
        self.survives: Callable[[BaseException], bool] | None = None  # see run_from_outside

    def park(self, parked: _Parked) -> None:
        self.parked.append(parked)
        if parked.ready is None:
            return
        self.nested += 1
        # An instance attribute, found before the class's method (see the module docstring).
        _private_api.shadow_exception_handler(self.loop, self.handle_exception)

    def unpark(self, parked: _Parked) -> None:
        parked.waiting = False
        self.parked.remove(parked)
        if parked.ready is None:
            return
        self.nested -= 1
        if self.nested == 0:
            _private_api.unshadow_exception_handler(self.loop)
            # After what is queued now: the caller's step, still inside the context, ends
            # before the loop's next iteration.
            self.requeue_deferred()

    def handle_exception(self, context: dict[str, Any]) -> None:
        """The loop's exception handler while nested calls are parked: a handle that could
        not enter its context, held by one of them, is set aside instead of dropped."""
        handle = context.get("handle")
        exc = context.get("exception")
        if isinstance(exc, RuntimeError) and isinstance(handle, asyncio.Handle):
            held = _private_api.handle_context(handle)
            if self.held_by_a_parked_call(held):
                self.run_in_held_context(handle, held)
                return
            if context_entered(held):
                self.deferred.append(handle)
                return
        type(self.loop).call_exception_handler(self.loop, context)

    def held_by_a_parked_call(self, held: Any) -> bool:
        """Whether a nested call parked in this thread is inside the context ``held``."""
        here = greenlet.getcurrent()
        return any(
            parked.ready is not None
            and parked.greenlet is not here
            and parked.greenlet.gr_context is held
            for parked in self.parked
        )

    def run_in_held_context(self, handle: asyncio.Handle, held: Any) -> None:
        """Run ``handle``'s callback here, in the context a parked call is inside: made the
        current one for the while, not entered (entering it again is what failed). What it
        does to the context's variables, the parked call sees, as between two steps."""
        driver = greenlet.getcurrent()
        own = driver.gr_context
        callback, args = _private_api.handle_callback(handle)
        driver.gr_context = held
        try:
            callback(*args)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:  # as Handle._run reports it, past this handler
            type(self.loop).call_exception_handler(
                self.loop,
                {
                    "message": f"Exception in callback {handle!r}",
                    "exception": exc,
                    "handle": handle,
                },
            )
        finally:
            driver.gr_context = own

    def requeue_deferred(self) -> None:
        """Queue the handles set aside again (after those queued now): a caller resumes,
        and the context it held is free once its step returns."""
        if self.deferred:
            deferred, self.deferred = self.deferred, []
            _private_api.ready_queue(self.loop).extend(deferred)

    def in_use(self) -> bool:
        return bool(self.parked or self.drivers or self.idle)


def _state_of(loop: asyncio.AbstractEventLoop) -> _LoopNesting:
    if not reenterable(loop):
        raise for_the_user(
            RuntimeError(
                f"the nesting shim cannot re-enter a running {type(loop).__qualname__} "
                "(only asyncio's own event loops); run this code in a thread instead"
            )
        )
    state: _LoopNesting | None = getattr(loop, NESTING_STATE, None)
    if state is None:
        state = _LoopNesting(loop)
        setattr(loop, NESTING_STATE, state)
    return state


def _new_greenlet(run: Callable[[], Any]) -> Any:
    """A driver, or the owner: children of the thread's main greenlet."""
    root = greenlet.getcurrent()
    while root.parent is not None:
        root = root.parent
    kind = _Driver if run is _driver_main else greenlet.greenlet
    return kind(run, parent=root)


def run_on_running_loop(loop: asyncio.AbstractEventLoop, awaitable: Any) -> Any:
    """Run ``awaitable`` to completion on ``loop``, which is running in this thread and
    somewhere below us on the stack; other tasks of the loop keep running meanwhile."""
    try:
        state = _state_of(loop)
    except RuntimeError:
        if asyncio.iscoroutine(awaitable):
            awaitable.close()  # refused: it must not warn "never awaited" cells later
        raise
    task = asyncio.current_task(loop)
    taker = taker_of(task)
    if taker is not None:
        return taker.take_nested_call(loop, awaitable)
    future = asyncio.ensure_future(awaitable, loop=loop)
    if future.done():
        return future.result()
    parked = _Parked(greenlet.getcurrent(), task, future, _still_to_run(loop))
    state.park(parked)
    future.add_done_callback(functools.partial(_wake, state, parked))
    if task is not None:
        _private_api.leave_task(loop, task)
    driver = _driver_for(state)
    cell = waiter_of(task)
    try:
        with cell.in_nested_call(future) if cell is not None else contextlib.nullcontext():
            driver.switch()
    except BaseException:
        future.cancel()
        raise
    finally:
        state.unpark(parked)
        if task is not None:
            _private_api.enter_task(loop, task)
        if not state.in_use():
            _forget(state)
    try:
        return future.result()
    except asyncio.CancelledError as exc:
        if cell is None:
            raise
        raise cell.nested_call_cancelled(exc) from None


def run_nested_call(loop: asyncio.AbstractEventLoop, awaitable: Any) -> Any:
    """A nested ``asyncio.run()``, ``run_until_complete()`` or ``anyio.run()`` on ``loop``,
    running in this thread: :func:`run_on_running_loop`, with the loop's async generator
    hooks in place while it waits, as the loop's own ``run_forever`` would put them. (The
    hooks in place may be another library's: a trio-guest cell's are trio's, which take
    the generators first iterated in the cell's trio task, the nested call's too, for
    trio's to close.)"""
    if not isinstance(loop, asyncio.BaseEventLoop):
        return run_on_running_loop(loop, awaitable)  # which says why it cannot
    hooks = sys.get_asyncgen_hooks()
    sys.set_asyncgen_hooks(*_private_api.asyncgen_hooks_of(loop))
    try:
        return run_on_running_loop(loop, awaitable)
    finally:
        sys.set_asyncgen_hooks(*hooks)


def run_from_outside(
    loop: asyncio.AbstractEventLoop,
    awaitable: Any,
    *,
    survives: Callable[[BaseException], bool] | None = None,
) -> Any:
    """Run ``loop`` until ``awaitable`` is done, from code the loop is not running (another
    loop may be running below it: it is paused meanwhile, see ``outer_loop_paused``).

    Between calls the loop stays where it was, inside its own greenlets: ``run_forever`` in
    one (the *owner*), and a driver for each nested call parked in a step. A call returns as
    soon as its awaitable is done, whatever is parked. :func:`finish_outside` stops it.

    asyncio lets a KeyboardInterrupt or SystemExit that a task raises end ``run_forever``
    (the task keeps it as its exception too); ``survives(exc)`` true runs the loop on.
    """
    state = _state_of(loop)
    state.survives = survives
    future = asyncio.ensure_future(awaitable, loop=loop)
    parked = _Parked(greenlet.getcurrent(), None, future, None)
    state.park(parked)
    future.add_done_callback(functools.partial(_wake, state, parked))
    try:
        with _in_the_loop(state):
            while not future.done():
                target = _next_holder(state)
                if target is None:
                    target = _new_holder(state)
                target.switch()
    finally:
        state.unpark(parked)
        if not state.in_use():
            _forget(state)
    return future.result()


def _new_holder(state: _LoopNesting) -> greenlet.greenlet:
    """A greenlet to run the loop: the owner if the loop is not running (again, if a cell
    stopped it), else a driver (the owner is parked in a nested call)."""
    owner = state.owner
    if owner is None or owner.dead:
        # run_forever sets up what a running loop needs (the running loop, async generator
        # hooks, its thread), and puts it back when the loop stops.
        owner = state.owner = _new_greenlet(functools.partial(_run_forever, state))
        owner.parent = greenlet.getcurrent()  # where run_forever returns to
        return owner
    return _driver_for(state)


def _run_forever(state: _LoopNesting) -> None:
    """The owner's body: the loop's ``run_forever``, started again after an exception that
    ``state.survives`` lets pass (its task, which holds it, is reported by the session)."""
    _ctrl_c.run_past_interrupts(
        state.loop.run_forever, survives=lambda exc: bool(state.survives and state.survives(exc))
    )


class _in_the_loop:
    """Around switches from outside into the loop's greenlets: the running loop and the
    async generator hooks are theirs while they run, the caller's when it runs. (A class:
    it runs around every cell of the asyncio runner.)"""

    __slots__ = ("_own_hooks", "_paused", "_state")

    def __init__(self, state: _LoopNesting) -> None:
        self._state = state
        self._paused = outer_loop_paused()

    def __enter__(self) -> None:
        self._paused.__enter__()
        self._own_hooks = sys.get_asyncgen_hooks()
        state = self._state
        if state.loop.is_running():
            _private_api.set_running_loop(state.loop)
            if state.hooks is not None:
                sys.set_asyncgen_hooks(*state.hooks)

    def __exit__(self, exc_type: object, *exc_info: object) -> None:
        try:
            if exc_type is None and self._state.loop.is_running():
                self._state.hooks = tuple(sys.get_asyncgen_hooks())  # see _LoopNesting
            sys.set_asyncgen_hooks(*self._own_hooks)
        finally:
            self._paused.__exit__()


def finish_outside(loop: asyncio.AbstractEventLoop) -> bool:
    """Stop the ``run_forever`` that :func:`run_from_outside` left running, so the loop can
    be closed; False if it cannot be stopped (its greenlet is parked in a nested call)."""
    state: _LoopNesting | None = getattr(loop, NESTING_STATE, None)
    owner = state.owner if state is not None else None
    if state is None or owner is None or owner.dead:
        return True
    stepped_aside = [entry for entry in state.idle if entry[0] is owner]
    if not stepped_aside:
        return False
    state.idle.remove(stepped_aside[0])
    _pad(state, stepped_aside[0][1])
    loop.stop()
    owner.parent = greenlet.getcurrent()
    with _in_the_loop(state):
        owner.switch()
    if not state.in_use():
        _forget(state)
    return bool(owner.dead)


class _Driver(greenlet.greenlet):  # type: ignore[misc]
    """A greenlet that drives a loop for parked callers (see :func:`_drive`); when it hands
    the loop over it waits, as a spare, to drive again: starting a greenlet costs about
    ten times as much as switching to one."""

    state: _LoopNesting | None = None


#: Spare drivers, per thread (a greenlet runs only in the thread that made it).
_spares = threading.local()
MAX_SPARE_DRIVERS = 4


def _driver_for(state: _LoopNesting) -> _Driver:
    spares: list[_Driver] = getattr(_spares, "drivers", None) or []
    driver = spares.pop() if spares else _new_greenlet(_driver_main)
    driver.state = state
    state.drivers.add(driver)
    return driver


def _driver_main() -> None:
    me = greenlet.getcurrent()
    while True:
        assert me.state is not None
        target = _drive(me.state)
        me.state = None
        spares = _spares.__dict__.setdefault("drivers", [])
        if len(spares) >= MAX_SPARE_DRIVERS:
            me.parent = target  # finish into it
            return
        spares.append(me)
        target.switch()


def release_spare_drivers() -> None:
    """Finish this thread's spare drivers; for a thread that is about to end.

    A greenlet can be finished only in its own thread: once that has ended, greenlet no
    longer unwinds a suspended one, and keeps what it holds (a session of the ``thread``
    runner that made a nested call kept its spare driver, and the thread's main greenlet).
    """
    spares: list[_Driver] = getattr(_spares, "drivers", None) or []
    here = greenlet.getcurrent()
    while spares:
        driver = spares.pop()
        driver.parent = here  # where it returns to as it ends
        driver.throw(greenlet.GreenletExit)


def _drive(state: _LoopNesting) -> greenlet.greenlet:
    """Run the loop until someone else should have it; return who."""
    me = greenlet.getcurrent()
    loop = state.loop
    try:
        while True:
            _check_cancellation(state)
            target = _next_holder(state)
            if target is not None:
                return target
            try:
                _private_api.run_once(loop)
            except greenlet.GreenletExit:
                raise
            except BaseException:
                # Ctrl-C, SystemExit: raise it where a caller waits, the most recent first
                # (this driver ends: the exception goes to its parent).
                target = _next_holder(state, failing=True)
                if target is None:
                    raise
                me.parent = target
                raise
    finally:
        state.drivers.discard(me)


def _next_holder(state: _LoopNesting, *, failing: bool = False) -> greenlet.greenlet | None:
    """Who should drive the loop instead of the current driver: a caller whose call is done,
    else a greenlet that stepped aside for one (the loop's own ``run_forever``)."""
    target = _next_woken(state)
    if target is None and failing:
        for parked in reversed(state.parked):
            if parked.waiting:
                target = _resume(state, parked)
                break
    if target is None and state.idle:
        target, ready = state.idle.pop()
        _pad(state, ready)
    if target is not None and any(p.waiting and p.ready is not None for p in state.parked):
        # The greenlet taking over may drive the loop itself (run_forever), without the
        # drivers' checks between iterations: a timer makes them for the calls still parked.
        _check_cancellation_soon(state)
    return target


def _next_woken(state: _LoopNesting) -> greenlet.greenlet | None:
    """The next caller whose call is done, its ready queue restored.

    Its future's done callback (:func:`_wake`) says so one loop iteration after the future
    is done; a driver looks at the futures themselves between iterations, and saves it.
    """
    while state.wakeups:
        parked = state.wakeups.popleft()
        if parked.waiting:
            return _resume(state, parked)
    for parked in state.parked:
        if parked.waiting and parked.future.done():
            return _resume(state, parked)
    return None


def _resume(state: _LoopNesting, parked: _Parked) -> greenlet.greenlet:
    """Make a parked caller the next to run: no longer waiting, its ready queue restored."""
    parked.waiting = False
    if parked.ready is not None:
        _pad(state, parked.ready)
        state.requeue_deferred()
    return parked.greenlet


def _wake(state: _LoopNesting, parked: _Parked, _: asyncio.Future[Any]) -> None:
    """Done callback of an awaited future: resume its caller."""
    state.wakeups.append(parked)
    me = greenlet.getcurrent()
    if me in state.drivers:
        return  # the driver hands over after this iteration
    # The loop's own greenlet (or a foreign one) is driving: it steps aside now, in the
    # middle of its iteration, and a driver (or an outside caller) hands the loop back to
    # it later.
    while True:
        ready = _still_to_run(state.loop)
        woken = _next_woken(state)
        if woken is None:
            return
        state.idle.append((me, ready))
        woken.switch()


def _still_to_run(loop: asyncio.AbstractEventLoop) -> int:
    """How many handles the ``_run_once`` running us still means to pop from the ready
    queue: ``for i in range(ntodo): handle = <ready queue>.popleft()`` (3.11 to 3.15)."""
    frame: FrameType | None = _private_api.caller_frame(1)
    while frame is not None:
        if frame.f_code is _private_api.RUN_ONCE_CODE:
            local = frame.f_locals
            if local.get("self") is loop:
                ntodo, i = local.get("ntodo"), local.get("i")
                if isinstance(ntodo, int) and isinstance(i, int):
                    return ntodo - i - 1
                break
        frame = frame.f_back
    # Not called from a step of the loop, or asyncio changed: the whole queue is safe.
    return len(_private_api.ready_queue(loop))


def _pad(state: _LoopNesting, length: int) -> None:
    ready = _private_api.ready_queue(state.loop)
    missing = length - len(ready)
    if missing > 0:
        ready.extendleft([state.filler] * missing)


def _nothing() -> None:
    pass


def _check_cancellation_soon(state: _LoopNesting) -> None:
    if state.cancel_check is None:
        state.cancel_check = state.loop.call_later(
            CANCEL_CHECK_INTERVAL, _check_cancellation_again, state
        )


def _check_cancellation_again(state: _LoopNesting) -> None:
    state.cancel_check = None
    _check_cancellation(state)
    if any(p.waiting and p.ready is not None for p in state.parked):
        _check_cancellation_soon(state)


def _check_cancellation(state: _LoopNesting) -> None:
    """Cancel the nested call of each parked caller whose task was cancelled meanwhile.

    A task cancelled in the middle of a step (a parked caller is in the middle of one) only
    records the request; we pass it on to the call it waits for, as asyncio passes a
    cancellation on to the future a task awaits. Drivers check between iterations.
    """
    for parked in state.parked:
        task = parked.task
        if task is None or not parked.waiting:
            continue
        requested = task.cancelling()
        if requested > parked.cancels:
            parked.cancels = requested
            parked.future.cancel()
            cell = waiter_of(task)
            if cell is not None:
                cell.absorb_stale_cancellation(task)


def _forget(state: _LoopNesting) -> None:
    """Nothing waits on the loop any more. The state stays on it for the next nested call
    (making it anew each time costs a tenth of a call)."""
    if state.cancel_check is not None:
        state.cancel_check.cancel()
        state.cancel_check = None


def parked_calls(loop: asyncio.AbstractEventLoop) -> int:
    """How many nested calls are waiting on ``loop`` (for tests)."""
    state: _LoopNesting | None = getattr(loop, NESTING_STATE, None)
    return len(state.parked) if state is not None else 0


__all__ = [
    "finish_outside",
    "parked_calls",
    "release_spare_drivers",
    "run_from_outside",
    "run_nested_call",
    "run_on_running_loop",
]
