"""What the nesting mechanism knows of a loop, without importing greenlet: whether a
context is entered, what is parked on a loop, and pausing the running loop while another
runs in its thread. Imported by ``%load_ext`` (through the shim) and by the runners.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections.abc import Iterator
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


def nested_calls(loop: asyncio.AbstractEventLoop) -> set[asyncio.Future[Any]]:
    """What the nested calls parked on ``loop`` wait for (tasks of the loop's own)."""
    state = getattr(loop, NESTING_STATE, None)
    if state is None:
        return set()
    return {parked.future for parked in state.parked if parked.ready is not None}


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
    outer = _private_api.running_loop()
    task = asyncio.current_task(outer) if outer is not None else None
    if outer is not None and task is not None:
        _private_api.leave_task(outer, task)
    _private_api.set_running_loop(None)
    try:
        yield
    finally:
        _private_api.set_running_loop(outer)
        if outer is not None and task is not None:
            _private_api.enter_task(outer, task)
