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
the code it ran before. Turning the shim off puts back the very objects it replaced. The
parking mechanism lives in ``_parking``, imported (with greenlet) at the first nested call:
this module is imported by ``%load_ext``.

**trio** (opt-in, ``nest_on(trio=True)``): ``trio.run()`` inside a ``trio``-runner cell runs
in the cell's task, through the portal the runner then gives each cell (``_portal``).
"""

from __future__ import annotations

import asyncio
import asyncio.events
import asyncio.runners
import asyncio.tasks
import contextlib
import inspect
import sys
import threading
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from typing import Any, TypeVar, cast

T = TypeVar("T")

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
    from ._parking import run_on_running_loop

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
        from ._parking import run_on_running_loop

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


__all__ = [
    "STRATEGY",
    "is_nesting",
    "nest_off",
    "nest_on",
    "nesting",
    "outer_loop_paused",
    "trio_cells_nest",
]
