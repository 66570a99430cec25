"""The ``thread`` runner: an asyncio loop in a dedicated thread, always running.

Every cell, plain or not, runs as a task in that thread; the main thread waits for it. The
loop never stops between cells, whatever the front end does with the main thread (a
``--simple-prompt`` terminal, a GUI event loop, a kernel), so background tasks always make
progress. The price: cells do not run in the main thread (signal handlers, some GUI
toolkits and libraries that insist on the main thread will notice), and Ctrl-C reaches a
busy cell only when it next runs Python code (a blocking call in the cell ends at its own
pace).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import signal
import threading
from collections.abc import Coroutine
from typing import Any

from ._asyncio_session import (
    SHUTDOWN_TIMEOUT,
    AsyncioSession,
    AsyncioSessionRunner,
    translate_cancellation,
)
from ._cell import CellCoroutine
from ._runner import RunnerUnavailable, say


class ThreadRunner(AsyncioSessionRunner):
    """An asyncio loop in its own thread, for the session."""

    name = "thread"
    description = "an asyncio loop in its own thread, always running; cells run there"

    def __init__(self) -> None:
        super().__init__()
        self._thread: threading.Thread | None = None

    @property
    def thread(self) -> threading.Thread | None:
        """The thread the loop runs in, or None when the runner is closed."""
        return self._thread

    def _startup(self) -> None:
        session = AsyncioSession(self.name)
        running = threading.Event()
        thread = threading.Thread(
            target=self._thread_main,
            args=(session.loop, running),
            name="autoawait_runners-thread",
            daemon=True,  # exiting IPython must never wait on it; close() joins it
        )
        thread.start()
        if not running.wait(SHUTDOWN_TIMEOUT * 10):
            session.loop.call_soon_threadsafe(session.loop.stop)
            raise RunnerUnavailable("the thread runner's loop did not start")
        self._session, self._thread = session, thread

    @staticmethod
    def _thread_main(loop: asyncio.AbstractEventLoop, running: threading.Event) -> None:
        # Ctrl-C is the main thread's business: with SIGINT blocked here (and in the executor
        # threads started from here, which inherit the mask), the kernel delivers it to a
        # thread that can run the handler at once.
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        asyncio.set_event_loop(loop)
        loop.call_soon(running.set)
        while True:
            try:
                loop.run_forever()
                return
            except KeyboardInterrupt:
                # Ctrl-C aimed at a busy cell that yielded just before it landed: the loop
                # itself must survive it.
                continue

    def _inside_cell(self) -> bool:
        return self._thread is not None and threading.get_ident() == self._thread.ident

    def _run_cell(self, coro: Coroutine[Any, Any, Any]) -> Any:
        session, thread = self._session, self._thread
        assert session is not None and thread is not None and thread.ident is not None
        cell = CellCoroutine(coro, translate_cancellation)
        # A bare lock is the cheapest hand-back from the loop thread. SIGINT is blocked in
        # the loop thread (see _thread_main), so Ctrl-C lands here, in the main thread, and
        # the default handler's KeyboardInterrupt interrupts the wait: no handler of our own
        # to install per cell.
        finished = threading.Lock()
        finished.acquire()
        tasks: list[asyncio.Task[Any]] = []

        def start() -> None:
            task = session.create_cell_task(cell)
            tasks.append(task)
            task.add_done_callback(lambda _: finished.release())

        def cancel() -> None:
            session.loop.call_soon_threadsafe(lambda: tasks[0].cancel())

        session.loop.call_soon_threadsafe(start)
        while True:
            try:
                finished.acquire()
                break
            except KeyboardInterrupt:
                if cell.interrupt(cancel=cancel, cell_thread=thread.ident):
                    continue
                # Abandoned: one last cancellation, then stop waiting whatever happens.
                if not cell.executing:
                    cell.pending_interrupt = True
                    cancel()
                if not finished.acquire(timeout=SHUTDOWN_TIMEOUT):
                    say(
                        "the cell ignored Ctrl-C and still runs in the runner's thread; "
                        "later cells wait for it"
                        if cell.executing
                        else "the cell ignored cancellation; its task was left pending"
                    )
                raise
        return tasks[0].result()

    def _shutdown(self) -> int:
        session, thread = self._session, self._thread
        self._session = self._thread = None
        assert session is not None and thread is not None
        loop = session.loop
        cancelled = 0
        try:
            future = asyncio.run_coroutine_threadsafe(session.cancel_background(), loop)
            cancelled = future.result(timeout=SHUTDOWN_TIMEOUT * 3)
        except concurrent.futures.TimeoutError:
            say("the thread runner's loop is blocked; its tasks could not be cancelled")
        finally:
            loop.call_soon_threadsafe(loop.stop)
        thread.join(SHUTDOWN_TIMEOUT * 2)
        if thread.is_alive():
            say("the thread runner's thread is blocked and was left running")
        else:
            session.close()
        return cancelled


_runner = ThreadRunner()


def get_runner() -> ThreadRunner:
    """Entry point: the session's thread runner (one object per process)."""
    return _runner
