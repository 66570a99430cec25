"""The ``trio-guest`` runner: the trio session in the main thread, as a guest of the session's
asyncio loop (trio's guest mode, ``trio.lowlevel.start_guest_run``).

The ``trio`` runner runs its ``trio.run`` in a thread of its own, so its cells cannot do
what only the main thread may: ``signal.signal``, GUI toolkits (Tk, Qt), callbacks that
widget code expects in the thread that made the widget. Here the cells run in the main
thread. trio's scheduling runs as callbacks of an asyncio loop: the ``asyncio`` runner's
own session loop in a terminal (run by the prompt's input hook while the prompt is idle,
so background tasks run between cells), a Jupyter kernel's loop (which runs between cells
anyway). Only trio's wait for I/O and timers runs in a worker thread, as guest mode does.

What the session is (the session nursery, the cells' context, ``%tasks``) is the ``trio``
runner's (``TrioSession``); what runs the loop is the ``asyncio`` runner's. This module
only starts and ends the guest run, and waits for a cell while the loop runs.

What it costs: trio, idle between cells, waits for I/O in its worker thread; a cell wakes
that thread, which wakes the main one, so a cell costs more than under the ``trio`` runner
(see benchmarks/README.md). Ctrl-C: the cell's, as under every runner (``_ctrl_c``); trio's own
SIGINT handler is kept out, as in the ``trio`` runner's thread, where trio installs none.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import signal
import threading
from collections.abc import Callable, Coroutine
from typing import Any

from .._core import _ctrl_c, _private_api
from .._core._main_thread import MAIN_THREAD_ID
from .._core._messages import SHUTDOWN_TIMEOUT
from ._asyncio import AsyncioRunner
from ._asyncio_session import resolve, resolve_soon
from ._base import RunnerUnavailable, TaskRow
from ._dedicated_thread import START_TIMEOUT, SubmittedCell
from ._trio import TrioSession


class TrioGuestRunner(TrioSession, AsyncioRunner):
    """The trio session in the main thread, as a guest of the session's asyncio loop."""

    name = "trio-guest"
    description = (
        "trio in the main thread, a guest of the session's asyncio loop; a session nursery"
    )
    #: Every cell runs in trio, so that it sees it (R3).
    plain_cells_apart = False
    in_a_thread = "trio"

    def __init__(self) -> None:
        super().__init__()
        #: Resolved when the guest run ends.
        self._guest_done: asyncio.Future[Any] | None = None
        #: The cells handed to the run, which its end releases.
        self._waiting: set[SubmittedCell] = set()
        #: Set once the run's main task is up (see _now_ready).
        self._run_is_up = threading.Event()
        self._run_is_up_lock = threading.Lock()
        self._run_is_up_waiters: list[Callable[[], object]] = []

    def _startup(self) -> None:
        try:
            import trio  # noqa: F401
        except ImportError as exc:
            raise RunnerUnavailable(f"trio cannot be imported ({exc})") from None
        super()._startup()

    def _guest_here(self) -> asyncio.Future[Any]:
        """Start the guest run on the session loop, unless it runs; return what its end
        resolves. At the first cell (the session loop is made there, see
        ``AsyncioRunner._session_here``), and again after a run that crashed."""
        if self._guest_done is not None and not self._guest_done.done():
            return self._guest_done
        if threading.get_ident() != MAIN_THREAD_ID:
            # A kernel's subshell, before any cell of the main shell: trio must run in the
            # main thread, on the kernel's loop, which this thread cannot run.
            raise RunnerUnavailable(
                "its trio run starts in the main thread: run a cell in the main shell first"
            )
        import trio

        session = self._session_here()
        loop = session.loop
        ready = loop.create_future()
        done = self._guest_done = loop.create_future()
        self._run_is_up.clear()

        def finished(result: Any) -> None:
            # A run that ended by itself (a system task failed: trio's rule) is reported,
            # and what waits on it is released; the next cell starts a new one.
            nursery = self._nursery
            if ready.done() and nursery is not None and not nursery.ending:
                self._say_session_ended(
                    result.error
                    if hasattr(result, "error")
                    else RuntimeError(f"its main task returned {result!r}")
                )
                self._reset()
            for submitted in list(self._waiting):
                submitted.fail(RuntimeError(f"the {self.name} session ended before the cell did"))
            resolve(done)

        started = loop.create_future()

        def start() -> None:
            # trio sets its own SIGINT handler over Python's default one (as code sees it,
            # one of ours standing in for it too): keep it out (Ctrl-C is routed to the
            # cell, as in the trio runner's thread, where trio sets none).
            found = _private_api.sigint_handler()
            keep_out = _ctrl_c.shown_sigint_handler() is signal.default_int_handler
            if keep_out:
                _private_api.set_sigint_handler(_raise_keyboard_interrupt)
            try:
                # Started in an empty context, as the trio runner's thread starts: the run's
                # tasks copy the context it starts in, and the caller's holds a kernel's
                # message being answered (ipykernel 6 and 7 keep it in a context variable),
                # so every later cell's output would go to the first cell. Empty but for
                # the asyncio session's mark: the asyncio tasks cells start are the
                # session's, on a kernel's loop too (%tasks lists them, its end cancels them).
                session.marked_context().run(
                    trio.lowlevel.start_guest_run,
                    self._main,
                    lambda: self._now_ready(ready),
                    run_sync_soon_threadsafe=loop.call_soon_threadsafe,
                    run_sync_soon_not_threadsafe=loop.call_soon,
                    done_callback=finished,
                    # The runners set the wake-up fd around each cell (_ctrl_c.Waker).
                    host_uses_signal_set_wakeup_fd=True,
                )
            except BaseException as exc:  # raised to the caller, as from a direct call
                started.set_exception(exc)
            else:
                started.set_result(None)
            finally:
                if keep_out and _private_api.sigint_handler() is _raise_keyboard_interrupt:
                    _private_api.set_sigint_handler(found)

        # Started in the loop, as a host starts a guest run: trio puts its async generator
        # hooks over those it finds (there the loop's own, to which trio's hand other
        # generators) and puts those back as it ends. Started from outside, trio's stayed
        # in place after the session, each session's chained to the one before: every
        # ended run and loop was kept.
        loop.call_soon(start)
        self._run_until_complete(started)
        self._run_until_complete(asyncio.wait([ready, done], return_when=asyncio.FIRST_COMPLETED))
        if not ready.done():
            raise RunnerUnavailable("the trio run ended as it started")
        return done

    def _now_ready(self, ready: asyncio.Future[None]) -> None:
        """The run's main task is up: cells can be handed to it (from any thread)."""
        resolve(ready)
        with self._run_is_up_lock:
            self._run_is_up.set()
            waiters, self._run_is_up_waiters = self._run_is_up_waiters, []
        for wake in waiters:
            wake()

    def _until_ready(self, park: Callable[[Any], Any], loop: asyncio.AbstractEventLoop) -> None:
        """Wait, parked in ``loop``, until the run started by another thread's cell is up
        (a kernel's subshell may send a cell while the main shell's first one starts it)."""
        with self._run_is_up_lock:
            if self._run_is_up.is_set():
                return
            woken = loop.create_future()
            self._run_is_up_waiters.append(functools.partial(resolve_soon, loop, woken))
        park(asyncio.wait([woken], timeout=START_TIMEOUT))

    def _ipythons_own(self) -> Any:
        return _private_api.ipython_trio_runner()

    def _cell_runs_in_the_shells_context(self) -> bool:
        return False  # a subshell's cells too run in the trio run, in the session's context

    def _run_cell(self, coro: Coroutine[Any, Any, Any]) -> Any:
        if self._before_the_kernels_loop():
            return self._ipythons_own()(coro)
        cell = self._make_cell(coro)
        for retry in (False, True):
            try:
                done = self._guest_here()
            except RunnerUnavailable as exc:
                return self._without_session(cell, str(exc))
            except Exception as exc:  # a loop policy broken since the runner was selected
                return self._without_session(cell, f"{type(exc).__name__}: {exc}")
            submitted = SubmittedCell(cell, threading.current_thread())
            self._waiting.add(submitted)
            try:
                self._wait_for(submitted)
            finally:
                self._waiting.discard(submitted)
            if retry or cell.started or not done.done():
                break
            # The run ended (it crashed) before the cell started: once more, in a new one.
        return submitted.result()

    def _wait_for(self, submitted: SubmittedCell) -> None:
        """Hand the cell to trio and wait until it ends (Ctrl-C: the cell's), or until the
        run does: running the session loop, or, in a kernel's subshell (a thread with a loop
        of its own), parked in that loop while trio runs the cell in the main thread."""
        from .._nesting._parking import run_on_running_loop

        session = self._session
        assert session is not None
        loop_here = _private_api.running_loop()
        in_subshell = loop_here is not None and loop_here is not session.loop
        park: Callable[[Any], Any]
        if in_subshell:
            assert loop_here is not None
            park = functools.partial(run_on_running_loop, loop_here)
            waiting_loop = loop_here
        else:
            park, waiting_loop = self._run_until_complete, session.loop
        ended = waiting_loop.create_future()
        wake = submitted.then = functools.partial(resolve_soon, waiting_loop, ended)

        def wait(seconds: float) -> bool:
            park(asyncio.wait([ended], timeout=seconds))
            return submitted.ended()

        given_up: list[bool] = []

        def stop_waiting() -> None:
            given_up.append(True)
            wake()

        controls = _ctrl_c.CellControls(
            submitted.cell,
            runner=self.name,
            thread=lambda: MAIN_THREAD_ID,  # where trio runs the cell
            cancel=lambda: submitted.cancel(),
            wait=wait,
            ended=submitted.ended,
            # Never raise where the main thread is: it may be in trio's own scheduling.
            stop_waiting=stop_waiting,
        )
        waker: contextlib.AbstractContextManager[Any]
        if in_subshell:
            waker = contextlib.nullcontext(None)
        elif session.borrowed:  # a kernel's loop, running below
            waker = _ctrl_c.waker_in(session.loop, only_way_to_wake=False)
        else:
            waker = contextlib.nullcontext(self._waker)
        here = threading.get_ident()
        self._cells_in.add(here)
        try:
            with waker as fd_waker, _ctrl_c.waiting_for(controls, waker=fd_waker):
                self._until_ready(park, waiting_loop)
                try:
                    self._submit(submitted)
                except RuntimeError as exc:  # trio.RunFinishedError: the run has just ended
                    submitted.fail(exc)
                while not (submitted.ended() or given_up):  # the run's end fails it too
                    park(ended)
                if not submitted.ended() and given_up:
                    raise KeyboardInterrupt
        finally:
            self._cells_in.discard(here)

    def session_tasks(self, *, tree: bool = False) -> list[TaskRow]:
        """The trio run's tasks, then the session loop's asyncio tasks (cells start them
        with ``asyncio.get_running_loop().create_task()``): each row says its library."""
        trios = TrioSession.session_tasks(self, tree=tree)
        asyncios = AsyncioRunner.session_tasks(self, tree=tree)
        return [dataclasses.replace(row, library="trio") for row in trios] + [
            dataclasses.replace(row, library="asyncio") for row in asyncios
        ]

    def _tasks_for_the_watch(self) -> list[tuple[str, Any]]:
        # trio's tasks run as callbacks of the session loop, which the asyncio runner watches.
        return TrioSession._tasks_for_the_watch(self) + AsyncioRunner._tasks_for_the_watch(self)

    def cancel_task(self, task: Any) -> str:
        if isinstance(task, asyncio.Task):
            return AsyncioRunner.cancel_task(self, task)
        return TrioSession.cancel_task(self, task)

    def _has_background_work(self) -> bool:
        nursery = self._nursery
        if nursery is not None and nursery.child_tasks:
            return True
        return AsyncioRunner._has_background_work(self)

    def _inside_cell(self) -> bool:
        return threading.get_ident() in self._cells_in

    def _shutdown(self) -> int:
        done = self._guest_done
        cancelled = 0
        if done is not None and not done.done() and self._token is not None:
            self._cancelled = 0
            self._request_stop()
            self._run_until_complete(asyncio.wait([done], timeout=SHUTDOWN_TIMEOUT * 2))
            if not done.done():
                self._left_running.append(
                    f"its trio run, busy {SHUTDOWN_TIMEOUT * 2:g} s after cancellation "
                    "(a shielded clean-up)"
                )
            cancelled = self._cancelled
        self._guest_done = None
        self._reset()
        return cancelled + super()._shutdown()


def _raise_keyboard_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


_runner = TrioGuestRunner()


def get_runner() -> TrioGuestRunner:
    """Entry point: the session's trio-guest runner (one object per process)."""
    return _runner
