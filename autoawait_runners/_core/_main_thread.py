"""What only the main thread may do, asked for from another thread.

Python lets only the main thread set a signal handler (or the signal wake-up fd), and runs
handlers only there. A runner whose loop lives in a thread of its own runs every cell in that
thread, so code that needs the main thread for a moment (``loop.add_signal_handler``, see
``_loop_signals``) asks it through :func:`call_in_main_thread`, which finds the main thread
where it is:

- waiting for a cell (a terminal cell of a loop-thread runner): it wakes every
  ``SIGNAL_POLL`` anyway, to let a signal handler run, and then runs the calls asked for
  (:func:`serve_calls`, inside :class:`serving_calls`);
- running an asyncio loop (the terminal's prompt between cells, a Jupyter kernel's loop,
  also while it waits for a cell, parked in it): the call is one of that loop's callbacks;
- anywhere else (busy in code of its own): nothing can reach it; the call is refused, and the
  caller fails as it would without the extension.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from typing import Any

from . import _private_api
from ._messages import SHUTDOWN_TIMEOUT

#: The thread Python runs signal handlers in (and the one trio-guest runs trio in).
MAIN_THREAD_ID = threading.main_thread().ident


def call_in(loop: Any, function: Callable[[], object]) -> bool:
    """Run ``function()`` in the thread of ``loop``; whether it ran within the shutdown
    timeout (a loop busy in other code may run it later)."""
    done = threading.Event()

    def call() -> None:
        try:
            function()
        finally:
            done.set()

    try:
        loop.call_soon_threadsafe(call)
    except RuntimeError:  # closed
        return False
    return done.wait(SHUTDOWN_TIMEOUT)


#: Calls asked for, run by the main thread where it waits for a cell (append and popleft
#: are atomic); the waits in progress, innermost last: the loop through which each one
#: serves, or None for one that runs :func:`serve_calls` (main thread only).
_asked: deque[Callable[[], None]] = deque()
_serving: list[Any] = []


class serving_calls:  # named as a function: used as one (``with serving_calls():``)
    """The main thread waits here: it runs :func:`serve_calls` each time it wakes, or with
    ``through``, it runs that asyncio loop meanwhile (a kernel's, parked in it), where the
    calls are callbacks. (A parked loop's ``run_forever`` is not on the stack the system
    sees, so it cannot be found as below.)"""

    __slots__ = ("_through",)

    def __init__(self, through: Any = None) -> None:
        self._through = through

    def __enter__(self) -> None:
        _serving.append(self._through)

    def __exit__(self, *exc_info: object) -> None:
        _serving.pop()
        if not _serving:
            serve_calls()  # none is left waiting: asked for just now, it still runs


def serve_calls() -> None:
    """Run the calls asked for so far (main thread, from a wait of :class:`serving_calls`)."""
    while _asked:
        _asked.popleft()()


def call_in_main_thread(function: Callable[[], object]) -> bool:
    """Run ``function()`` in the main thread and wait for it; whether it ran (see above).
    An exception it raises is raised here. A call the main thread does not get to within
    the shutdown timeout never runs."""
    if threading.get_ident() == MAIN_THREAD_ID:
        function()
        return True
    outcome: list[BaseException | None] = []
    claimed = threading.Lock()  # by the call when it runs, or by the asker giving up
    done = threading.Event()

    def call() -> None:
        if not claimed.acquire(blocking=False):
            return  # given up on
        try:
            function()
        except BaseException as exc:  # the asker's: raised in its thread
            outcome.append(exc)
        else:
            outcome.append(None)
        finally:
            done.set()

    if _serving:  # first: a loop found below a wait that serves is not running now
        through = _serving[-1]
        if through is None:
            _asked.append(call)
            done.wait(SHUTDOWN_TIMEOUT)
        else:
            call_in(through, call)
    else:
        loop = _private_api.loop_running_in(MAIN_THREAD_ID)
        if loop is None:
            return False
        call_in(loop, call)
    if claimed.acquire(blocking=False):
        return False  # it never ran, and now never will
    done.wait()  # running: it ends soon
    error = outcome[0]
    if error is not None:
        raise error
    return True
