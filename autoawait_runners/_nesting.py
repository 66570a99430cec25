"""The nesting shim: ``asyncio.run()`` and ``run_until_complete()`` inside a running loop.

asyncio refuses to start a loop while one runs in the same thread, so code that runs its own
loop (``asyncio.run(main())`` in a notebook, a synchronous library calling
``loop.run_until_complete()``, pytest-asyncio's ``asyncio.Runner``) fails inside a cell. With
the shim on, such a call is served by one of two strategies, chosen by what the caller asked
for:

**same loop** (``asyncio.run(coro)``, ``loop.run_until_complete(coro)`` on the running loop):
the coroutine becomes a task on the loop that is already running, and the caller's stack is
*parked* in a greenlet while a fresh greenlet keeps driving that loop. The loop's other tasks
keep running; the coroutine can await the running loop's futures and tasks; when it is done
the parked stack resumes where it was. Two tasks that nest at once do not wait for each
other: each resumes as soon as its own call is done (nest_asyncio resumes them last in,
first out, because it runs the loop recursively on one stack). Cancelling the caller's task
(``asyncio.timeout``, ``TaskGroup``) cancels the nested call.

**private loop** (``asyncio.Runner().run()``, ``run_until_complete`` on another loop,
``asyncio.run(loop_factory=...)``): the other loop runs to completion in this thread, as it
would with nothing running, while the running loop pauses for the duration of the call. The
call keeps every asyncio semantic (its own loop, clean-up of leftover tasks), which is what
pytest-asyncio's runner needs: its fixtures and tests all live on the runner's loop.

Nothing else changes: asyncio's C ``Task`` and ``Future`` stay (nest_asyncio swaps in the
pure-Python ones for every task of the process), and code that does not nest runs exactly
the code it ran before. Turning the shim off puts back the very objects it replaced.
Greenlet is imported at the first nested call, not before.

**trio** (opt-in, ``nest_on(trio=True)``): ``trio.run()`` inside a ``trio``-runner cell runs
in the cell's task, through the portal the runner then gives each cell (``_portal``).
"""

from __future__ import annotations

import asyncio
import asyncio.events
import asyncio.runners
import asyncio.tasks
import contextlib
import functools
import inspect
import sys
import threading
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from types import FrameType
from typing import TYPE_CHECKING, Any, TypeVar, cast

from ._cell import CellCoroutine

if TYPE_CHECKING:
    from greenlet import greenlet

T = TypeVar("T")

#: How often a parked call checks whether its caller's task was cancelled. Cancelling a task
#: that is in the middle of a step only sets a flag on it; nothing wakes the parked call.
CANCEL_CHECK_INTERVAL = 0.005

STRATEGY = (
    "asyncio.run() and run_until_complete() on the running loop run on that loop "
    "(the caller is parked in a greenlet; the loop's other tasks keep running); "
    "asyncio.Runner and other loops run to completion in this thread, pausing the "
    "running loop"
)


# -- on and off ----------------------------------------------------------------------------

_lock = threading.Lock()
_on = False
_trio_cells = False
#: name -> (owner, attribute, original) of what is patched now.
_patched: dict[str, tuple[Any, str, Any]] = {}
#: name -> the original, for a replacement still running after the shim was turned off.
_seen: dict[str, Any] = {}


def _targets() -> dict[str, tuple[Any, str, Any]]:
    """name -> (owner, attribute, replacement): every object the shim patches.

    ``trio.run`` is among them once trio is imported (it is never imported for this).
    """
    targets = {
        "asyncio.run": (asyncio, "run", _run),
        "asyncio.runners.run": (asyncio.runners, "run", _run),
        "asyncio.Runner.run": (asyncio.Runner, "run", _runner_run),
        "asyncio.BaseEventLoop.run_until_complete": (
            asyncio.BaseEventLoop,
            "run_until_complete",
            _run_until_complete,
        ),
    }
    trio = sys.modules.get("trio")
    if trio is not None and hasattr(trio, "run"):
        targets["trio.run"] = (trio, "run", _trio_run)
    return targets


def _patch() -> None:
    for name, (owner, attribute, replacement) in _targets().items():
        if name not in _patched:
            original = vars(owner)[attribute]
            _patched[name] = (owner, attribute, original)
            _seen.setdefault(name, original)
            setattr(owner, attribute, replacement)


def nest_on(*, trio: bool | None = None) -> None:
    """Turn the shim on (for the whole process; idempotent).

    ``trio=True`` also lets ``trio.run()`` called from a ``trio``-runner cell run in the
    cell's task, at a cost to every cell of that runner (see :func:`trio_cells_nest`);
    ``trio=False`` stops it; None leaves that choice as it was.
    """
    global _on, _trio_cells
    with _lock:
        _on = True
        if trio is not None:
            _trio_cells = trio
        _patch()


def nest_off() -> None:
    """Turn the shim off, putting back the objects it replaced (idempotent).

    Calls already nested finish normally; new ones fail as they would without the shim.
    """
    global _on
    with _lock:
        _on = False
        while _patched:
            _, (owner, attribute, original) = _patched.popitem()
            setattr(owner, attribute, original)


def is_nesting() -> bool:
    """Whether the shim is on."""
    return _on


def trio_cells_nest() -> bool:
    """Whether ``trio``-runner cells run in a portal, so that ``trio.run()`` works in them.

    Off unless asked for (``nest_on(trio=True)``, ``%nest trio on``): a portal costs every
    step of the cell's task two greenlet switches (a tight ``await trio.sleep(0)`` loop in
    a cell runs about 1.3x slower) and every cell about 80 us.
    """
    return _on and _trio_cells


def refresh() -> None:
    """Patch what became patchable since the shim was turned on (trio, once imported)."""
    with _lock:
        if _on:
            _patch()


@contextlib.contextmanager
def nesting() -> Iterator[None]:
    """Turn the shim on for a ``with`` block; afterwards it is as it was before."""
    was_on = is_nesting()
    nest_on()
    try:
        yield
    finally:
        if not was_on:
            nest_off()


def _original(name: str) -> Any:
    # A replacement can still be running after nest_off() (a nested call in progress, or a
    # reference taken while the shim was on); it then calls what the shim had replaced.
    return _seen[name]


# -- the patched entry points --------------------------------------------------------------


def _run(main: Coroutine[Any, Any, T], *, debug: bool | None = None, **kwargs: Any) -> T:
    """``asyncio.run``: on the running loop when one runs in this thread."""
    loop = asyncio.events._get_running_loop()
    if loop is None:
        return _original("asyncio.run")(main, debug=debug, **kwargs)  # type: ignore[no-any-return]
    if kwargs.get("loop_factory") is not None:
        # The caller asked for a loop of its own kind: give it one.
        with outer_loop_paused():
            return _original("asyncio.run")(main, debug=debug, **kwargs)  # type: ignore[no-any-return]
    if not asyncio.iscoroutine(main):
        raise ValueError(f"a coroutine was expected, got {main!r}")
    return cast(T, run_on_running_loop(loop, main))


def _runner_run(self: asyncio.Runner, coro: Coroutine[Any, Any, T], **kwargs: Any) -> T:
    """``asyncio.Runner.run``: a runner's loop is always its own, run privately."""
    if asyncio.events._get_running_loop() is None:
        return _original("asyncio.Runner.run")(self, coro, **kwargs)  # type: ignore[no-any-return]
    with outer_loop_paused():
        return _original("asyncio.Runner.run")(self, coro, **kwargs)  # type: ignore[no-any-return]


def _trio_run(async_fn: Callable[..., Awaitable[T]], *args: Any, **options: Any) -> T:
    """``trio.run``: inside a ``trio``-runner cell, run ``async_fn`` in the cell's task on
    the session's trio loop (through the cell's portal, see ``_portal``)."""
    if _on and "greenlet" in sys.modules:
        from ._portal import current_portal

        portal = current_portal()
        if portal is not None:
            coro = async_fn(*args)
            if not inspect.isawaitable(coro):
                raise TypeError(f"trio.run() expected an async function, got {async_fn!r}")
            return cast(T, portal.await_(coro))
    try:
        return cast(T, _original("trio.run")(async_fn, *args, **options))
    except RuntimeError as exc:
        if _on and not _trio_cells and "from inside a run()" in str(exc):
            hint = "in a cell of the trio runner, %nest trio on runs it on the session loop"
            raise RuntimeError(f"{exc} ({hint})") from None
        raise


def _run_until_complete(self: asyncio.BaseEventLoop, future: Any) -> Any:
    """``loop.run_until_complete``: re-entrant on the running loop, private on another."""
    running = asyncio.events._get_running_loop()
    if running is None:
        return _original("asyncio.BaseEventLoop.run_until_complete")(self, future)
    if running is self:
        return run_on_running_loop(self, future)
    with outer_loop_paused():
        return _original("asyncio.BaseEventLoop.run_until_complete")(self, future)


# -- private loop: pause the running one ---------------------------------------------------


@contextlib.contextmanager
def outer_loop_paused() -> Iterator[None]:
    """Let another loop run in this thread while the running one waits.

    asyncio refuses to run a loop while another one runs in the same thread, and a task may
    not start while another is current. Both are bookkeeping: the running loop is blocked
    in our caller until we return, so nothing of it runs meanwhile. (The asyncio runner
    also uses this to run its session loop from prompt_toolkit's input hook, or inside a
    Jupyter kernel's loop.) The current task is left and re-entered for Python 3.14, where
    it is tracked per thread rather than per loop.
    """
    outer = asyncio.events._get_running_loop()
    task = asyncio.current_task(outer) if outer is not None else None
    if outer is not None and task is not None:
        asyncio.tasks._leave_task(outer, task)
    asyncio.events._set_running_loop(None)
    try:
        yield
    finally:
        asyncio.events._set_running_loop(outer)
        if outer is not None and task is not None:
            asyncio.tasks._enter_task(outer, task)


# -- same loop: park the caller, keep driving the loop ------------------------------------
#
# A nested call happens in the middle of some step of the running loop: the loop's
# `_run_once` is on the stack below the caller. The caller's greenlet is parked (switched
# away from, stack intact) and a *driver* greenlet takes over, calling `_run_once` in a loop.
# When the nested future is done, the parked greenlet is switched back in and its own
# `_run_once` carries on; whichever greenlet was driving until then steps aside. Only one
# greenlet runs at a time, so at every moment exactly one of them drives the loop.
#
# A `_run_once` that was suspended half-way resumes popping the handles it counted when it
# started, some of which other greenlets have run since: before it resumes, the ready queue
# is padded with cancelled handles (which `_run_once` skips) so that it holds at least as
# many handles as that `_run_once` still means to pop (read from its frame).


@dataclass(eq=False)
class _Parked:
    """A caller waiting in a nested call."""

    greenlet: greenlet
    task: asyncio.Task[Any] | None
    future: asyncio.Future[Any]
    ready: int  # handles its `_run_once` still means to pop
    cancels: int  # its task's cancellation requests so far
    waiting: bool = True


@dataclass(eq=False)
class _LoopNesting:
    """The nesting state of one loop."""

    loop: asyncio.AbstractEventLoop
    parked: list[_Parked] = field(default_factory=list)
    wakeups: deque[_Parked] = field(default_factory=deque)
    # Greenlets that were driving the loop when a parked call had to resume, with what their
    # `_run_once` still meant to pop: the driver in charge hands the loop back to them first.
    idle: list[tuple[greenlet, int]] = field(default_factory=list)
    drivers: set[greenlet] = field(default_factory=set)
    cancel_check: asyncio.TimerHandle | None = None
    filler: asyncio.Handle | None = None


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
    import greenlet

    future = asyncio.ensure_future(awaitable, loop=loop)
    if future.done():
        return future.result()
    state: _LoopNesting | None = getattr(loop, _STATE, None)
    if state is None:
        state = _LoopNesting(loop)
        setattr(loop, _STATE, state)
    task = asyncio.current_task(loop)
    here = greenlet.getcurrent()
    parked = _Parked(here, task, future, _still_to_run(loop), task.cancelling() if task else 0)
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
    if cell is not None and future.cancelled():
        try:
            future.result()
        except asyncio.CancelledError as exc:
            raise cell.nested_call_cancelled(exc) from None
    return future.result()


def _cell_of(task: asyncio.Task[Any] | None) -> CellCoroutine[Any] | None:
    """The cell, when ``task`` is an IPython cell run by one of our runners."""
    coro = task.get_coro() if task is not None else None
    return coro if isinstance(coro, CellCoroutine) else None


def _drive(state: _LoopNesting) -> None:
    """A driver greenlet: run the loop until someone else should have it, then finish into
    them (a greenlet that finishes switches to its parent)."""
    import greenlet

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


def _next_holder(state: _LoopNesting, *, failing: bool = False) -> greenlet | None:
    """Who should drive the loop instead of the current driver: a caller whose nested call
    is done, else a greenlet that stepped aside for one (the loop's own ``run_forever``)."""
    woken = _next_woken(state)
    if woken is not None:
        return woken
    if failing:
        for parked in reversed(state.parked):
            if parked.waiting:
                parked.waiting = False
                _pad(state, parked.ready)
                return parked.greenlet
    if state.idle:
        holder, ready = state.idle.pop()
        _pad(state, ready)
        return holder
    return None


def _next_woken(state: _LoopNesting) -> greenlet | None:
    """The next caller whose nested call is done, its ready queue restored."""
    while state.wakeups:
        parked = state.wakeups.popleft()
        if parked.waiting:
            parked.waiting = False
            _pad(state, parked.ready)
            return parked.greenlet
    return None


def _wake(state: _LoopNesting, parked: _Parked, _: asyncio.Future[Any]) -> None:
    """Done callback of a nested future: resume its caller."""
    import greenlet

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
    """How many nested calls are waiting on ``loop`` (for tests and ``%nest``)."""
    state: _LoopNesting | None = getattr(loop, _STATE, None)
    return len(state.parked) if state is not None else 0


__all__ = [
    "STRATEGY",
    "is_nesting",
    "nest_off",
    "nest_on",
    "nesting",
    "outer_loop_paused",
    "run_on_running_loop",
    "trio_cells_nest",
]
