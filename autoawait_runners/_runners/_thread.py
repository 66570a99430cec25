"""The ``thread`` runner: an asyncio loop in a dedicated thread, always running.

Every cell, plain or not, runs as a task in that thread; the main thread waits for it. The
loop never stops between cells, whatever the front end does with the main thread (a
``--simple-prompt`` terminal, a GUI event loop, a kernel), so background tasks always make
progress. The price: cells do not run in the main thread (signal handlers, some GUI
toolkits and libraries that insist on the main thread will notice), and Ctrl-C reaches a
busy cell only when it next runs Python code (a blocking call in the cell ends at its own
pace). The thread plumbing is shared with the trio and curio runners (``_dedicated_thread``).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from .._core import _ctrl_c
from .._core._cell import cancelled_before_it_ran
from ._asyncio_session import (
    AsyncioSession,
    AsyncioSessionRunner,
    raised_by_a_task,
)
from ._base import GuiHook
from ._dedicated_thread import DedicatedThreadRunner, SubmittedCell


class AsyncioThreadRunner(DedicatedThreadRunner, AsyncioSessionRunner):
    """An asyncio loop in its own thread, for the session."""

    name = "thread"
    description = "an asyncio loop in its own thread, always running; cells run there"

    _stopped: threading.Event  # set when the session ends, made by _serve

    def _serve(self, ready: Callable[[], None]) -> None:
        session = self._session = AsyncioSession(self.name, loop_factory=self.loop_factory)
        self._watch_the_loop(session.loop)  # closed with the session (Runner.close)
        asyncio.set_event_loop(session.loop)
        session.loop.call_soon(ready)
        stopped = self._stopped = threading.Event()
        try:
            while not stopped.is_set():
                # Until the session ends: a cell that stopped the loop (loop.stop()) would
                # lose its tasks and the cells waiting on it (F4); a task's KeyboardInterrupt
                # or SystemExit (Ctrl-C aimed at a busy cell that yielded just before it
                # landed, too) is the task's failure, reported, not the loop's (F1).
                _ctrl_c.run_past_interrupts(session.loop.run_forever, survives=raised_by_a_task)
        finally:
            session.close()

    def _submit(self, submitted: SubmittedCell) -> None:
        session = self._session
        assert session is not None
        tasks: list[asyncio.Task[Any]] = []

        def start() -> None:
            if submitted.users:
                task = session.create_cell_task(submitted.cell)
            else:
                task = asyncio.Task(submitted.cell, loop=session.loop)
            tasks.append(task)
            task.add_done_callback(lambda _: _pass_outcome(task, submitted))

        def cancel() -> None:
            # Callbacks run in order: by the time this one runs, the task exists (unless
            # the hand-over itself was interrupted).
            session.loop.call_soon_threadsafe(lambda: tasks and tasks[0].cancel())

        submitted.cancel = cancel
        session.loop.call_soon_threadsafe(start)

    def call_soon_where_cells_run(self, callback: Callable[[], None]) -> bool:
        session = self._session
        if session is None or self._inside_cell():
            return False
        try:
            session.loop.call_soon_threadsafe(callback)
        except RuntimeError:  # the session ended meanwhile: its loop is closed
            return False
        return True

    def _request_stop(self) -> None:
        session = self._session
        assert session is not None

        stopped = self._stopped

        async def stop() -> None:
            self._cancelled = await session.cancel_background()
            self._left_running += session.left_running
            stopped.set()
            session.loop.stop()

        session.loop.call_soon_threadsafe(lambda: session.loop.create_task(stop()))

    def _reset(self) -> None:
        self._session = None

    def _wait_in_gui(self, gui: GuiHook, fds: Sequence[int]) -> Coroutine[Any, Any, None]:
        from ._gui_wait import until_readable

        return until_readable(fds, gui)


def _pass_outcome(task: asyncio.Task[Any], submitted: SubmittedCell) -> None:
    if task.cancelled():
        # Ctrl-C reaches a running cell as KeyboardInterrupt, which IPython shows as the
        # cell's; cancelled outright, the task never ran the cell (or ended in IPython's own
        # code): say so, rather than a bare CancelledError in the runner's frames.
        started = submitted.cell.started
        submitted.fail(KeyboardInterrupt() if started else cancelled_before_it_ran())
    elif (exc := task.exception()) is not None:
        submitted.fail(exc)
    else:
        submitted.succeed(task.result())


_runner = AsyncioThreadRunner()


def get_runner() -> AsyncioThreadRunner:
    """Entry point: the session's thread runner (one object per process)."""
    return _runner
