"""What the nesting mechanism knows of a loop, without importing greenlet: whether a
context is entered, what is parked on a loop, and pausing the running loop while another
runs in its thread. Imported by ``%load_ext`` (through the shim) and by the runners.
"""

from __future__ import annotations

import asyncio
import contextvars
import sys
from typing import Any

from .._core import _private_api


def context_entered(context: contextvars.Context) -> bool:
    """Whether ``context`` is entered (its ``run()`` is on some stack), so cannot be run.

    A parked nested call stays inside its task's context; contexts have no public flag.
    """
    try:
        context.run(int)
    except RuntimeError:
        return True
    return False


#: The loop attribute holding its parking state (see ``_parking``), read here without
#: importing greenlet.
NESTING_STATE = "_autoawait_runners_nesting"


def reenterable(loop: asyncio.AbstractEventLoop) -> bool:
    """Whether a nested call can run on ``loop`` while it runs (the same-loop strategy):
    asyncio's own loop classes only, whose steps ``_parking`` can drive. (uvloop's compiled
    loop runs its callbacks on its own C stack.)"""
    return isinstance(loop, asyncio.BaseEventLoop)


def nested_calls(loop: asyncio.AbstractEventLoop) -> set[asyncio.Future[Any]]:
    """What the nested calls parked on ``loop`` wait for (tasks of the loop's own)."""
    state = getattr(loop, NESTING_STATE, None)
    if state is None:
        return set()
    return {parked.future for parked in state.parked if parked.ready is not None}


def thread_ends() -> None:
    """Called last by a thread the runners made: parking's greenlets in it are finished
    while they still can be (``_parking.release_spare_drivers``), if parking ever ran."""
    parking = sys.modules.get(f"{__package__}._parking")
    if parking is not None:
        parking.release_spare_drivers()


# -- private loop: pause the running one ---------------------------------------------------


class other_library_unmarked:  # named as a function: used as one, as outer_loop_paused
    """Let a nested loop's code see its own library, not the library running around it.

    trio marks its whole run, and each guest tick, in ``sniffio.thread_local``; curio marks
    its run in ``curio.meta._locals``, where sniffio looks for it. A trio cell's
    ``asyncio.run(main())`` ran ``main`` under trio's mark, so sniffio said "trio" there and
    anyio (httpx, every anyio-based client) sent trio's requests to asyncio ("Task got bad
    yield"); ``anyio.run()`` refused to start in a trio or curio cell ("Already running
    curio in this thread"). Without the extension the cell is outside any run. So the marks
    are taken off for the nested call and put back after it (they are bookkeeping, as the
    running loop is: nothing of trio or curio runs in this thread until the call returns,
    but trio's own guest ticks, which set and restore the mark themselves).
    """

    __slots__ = ("_curio", "_trio")
    _trio: tuple[Any, str] | None
    _curio: Any

    def __enter__(self) -> None:
        # Neither library is imported here: not imported, it left no mark to take off.
        self._trio = self._curio = None
        sniffio = sys.modules.get("sniffio")
        trio_marks: Any = getattr(sniffio, "thread_local", None)
        if getattr(trio_marks, "name", None) is not None:
            self._trio = trio_marks, trio_marks.name
            trio_marks.name = None
        curio_meta = sys.modules.get("curio.meta")
        curio_marks: Any = getattr(curio_meta, "_locals", None)
        if getattr(curio_marks, "running", False):
            self._curio = curio_marks
            curio_marks.running = False

    def __exit__(self, *exc_info: object) -> None:
        if self._trio is not None:
            marks, name = self._trio
            marks.name = name
        if self._curio is not None:
            self._curio.running = True


class outer_loop_paused:  # named as a function: used as one (``with outer_loop_paused():``)
    """Let another loop run in this thread while the running one waits.

    asyncio refuses to run a loop while another one runs in the same thread, and a task may
    not start while another is current. Both are bookkeeping: the running loop is blocked
    in our caller until we return, so nothing of it runs meanwhile. (The asyncio runner
    also uses this to run its session loop from prompt_toolkit's input hook, or inside a
    Jupyter kernel's loop.) The current task is left and re-entered for Python 3.14, where
    it is tracked per thread rather than per loop. Another library's run around it is
    paused the same way (:class:`other_library_unmarked`). (A class: it runs around every
    cell.)
    """

    __slots__ = ("_outer", "_task", "_unmarked")

    def __enter__(self) -> None:
        self._unmarked = other_library_unmarked()
        self._unmarked.__enter__()
        outer = self._outer = _private_api.running_loop()
        task = self._task = asyncio.current_task(outer) if outer is not None else None
        if outer is not None and task is not None:
            _private_api.leave_task(outer, task)
        _private_api.set_running_loop(None)

    def __exit__(self, *exc_info: object) -> None:
        outer, task = self._outer, self._task
        _private_api.set_running_loop(outer)
        if outer is not None and task is not None:
            _private_api.enter_task(outer, task)
        self._unmarked.__exit__()
