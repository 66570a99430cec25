"""Runners whose event loop lives in a dedicated thread: ``thread``, ``uvloop``, ``trio``,
``curio``.

The loop runs for the whole session in a thread of its own, so background work always makes
progress, whatever the front end does with the main thread (a prompt waiting for input, a
kernel's own loop). Every cell runs in that thread; the main thread hands it over and waits.

What is shared here, so that each library's runner only says how to run its loop, start a
cell in it and stop it:

- starting the thread, and failing cleanly (one line) if the loop does not come up;
- the hand-over: a bare lock the loop thread releases when the cell ends, the cheapest way
  back to a waiting thread;
- Ctrl-C: the main thread waits for the cell inside ``_ctrl_c.waiting_for``, whose handler
  routes each press to the cell; it wakes every :data:`SIGNAL_POLL` so that a SIGINT the
  system gave the loop thread (or any other) runs the handler without delay. SIGINT is not
  blocked in the loop thread: the processes a cell starts would inherit the mask (F7);
- a loop that dies (a crash in the library) releases the cells waiting on it with an error,
  and the next cell starts a fresh session: nothing hangs;
- an asyncio loop running below in the waiting thread (a Jupyter kernel's, an ``embed()``
  host's) keeps running while the cell runs: the main thread waits parked in it
  (``_parking``), so the kernel handles a widget's messages meanwhile (a cell can await a
  slider), and its callbacks run in the main thread, as without the extension (K4).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import sys
import threading
from abc import abstractmethod
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from .._core import _ctrl_c, _private_api
from .._core._cell import CellCoroutine
from .._core._loop_signals import loop_signals_relayed
from .._core._main_thread import MAIN_THREAD_ID, serve_calls
from .._core._messages import SHUTDOWN_TIMEOUT
from .._nesting._loops import thread_ends
from ._asyncio_session import resolve_soon
from ._base import GuiHook, Runner, RunnerUnavailable
from ._gui_wait import tk_kept_past_this_thread

#: How long starting a session may take before the runner gives up.
START_TIMEOUT = 10.0
#: How often a thread waiting for a cell wakes up to run a signal handler that is due.
SIGNAL_POLL = 0.1


def _output_goes_to_the_current_cell() -> None:
    """Undo ipykernel 6's pinning of this thread's output to the cell that started it.

    ipykernel 6 (not 7) sends whatever a thread prints to the cell that was running when the
    thread started; the session thread runs every cell, so everything would go to the cell
    that selected the runner, and the cell being run would show nothing. Without the pin,
    ipykernel falls back to the message it is answering now.
    """
    here = threading.get_ident()
    for stream in (sys.stdout, sys.stderr):
        _private_api.unpin_thread_output(stream, here)


class SubmittedCell:
    """A cell handed to the loop thread: how to cancel it there, and how it ended."""

    __slots__ = (
        "_error",
        "_finished",
        "_settled",
        "_value",
        "cancel",
        "cell",
        "loop_thread",
        "then",
        "users",
    )

    def __init__(
        self, cell: CellCoroutine[Any], loop_thread: threading.Thread | None, *, users: bool = True
    ) -> None:
        self.cell = cell
        #: Whether it is a cell of the user's (False: the runner's own work, run as one, the
        #: GUI's wait at the idle prompt): what a cell starts meanwhile is the cell's.
        self.users = users
        self._finished = threading.Lock()
        self._finished.acquire()
        self._settled = threading.Lock()
        self._value: Any = None
        self._error: BaseException | None = None
        #: Thread-safe: cancel the cell in its loop. Set by the runner when it starts it.
        self.cancel: Callable[[], None] = lambda: None
        #: The thread of the session loop the cell is handed to.
        self.loop_thread = loop_thread
        #: Called (in the loop thread) once the outcome is there; thread-safe.
        self.then: Callable[[], None] = _nothing

    def succeed(self, value: Any) -> None:
        if self._settled.acquire(blocking=False):  # the first outcome wins
            self._value = value
            self._finished.release()
            self.then()

    def fail(self, error: BaseException) -> None:
        if self._settled.acquire(blocking=False):
            self._error = error
            self._finished.release()
            self.then()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the outcome (at most ``timeout`` seconds); True once it is there."""
        if timeout is not None:
            return self._finished.acquire(timeout=timeout)
        # A SIGINT meant for this thread can land on another one (a process-directed
        # signal goes to any thread that does not block it); this thread then only runs the
        # handler once it wakes up. So wake up now and then, and let it run; the main
        # thread also runs what the cell asked of it meanwhile (a signal handler to set).
        in_main_thread = threading.get_ident() == MAIN_THREAD_ID
        while not self._finished.acquire(timeout=SIGNAL_POLL):
            if in_main_thread:
                serve_calls()
            if self.loop_thread is not None and self.loop_thread.ident is not None:
                _ctrl_c.note_if_stuck(self.cell, self.loop_thread.ident)
        return True

    def ended(self) -> bool:
        """Whether the outcome is there (without waiting, and without taking it)."""
        return self._settled.locked()

    def loop_thread_id(self) -> int | None:
        """The id of the loop thread the cell was handed to, once it runs."""
        return self.loop_thread.ident if self.loop_thread is not None else None

    def result(self) -> Any:
        """The outcome, once: nothing here keeps it after (a library may hold this object
        a while, and the cell's value must not outlive what IPython keeps of it; F7)."""
        error, value, self._error, self._value = self._error, self._value, None, None
        if error is not None:
            raise error
        return value


class DedicatedThreadRunner(Runner):
    """A runner whose loop runs in a dedicated thread, where every cell runs."""

    def __init__(self) -> None:
        super().__init__()
        self._thread: threading.Thread | None = None
        self._waiting: set[SubmittedCell] = set()
        #: How many background tasks the ending session cancelled (set by _serve).
        self._cancelled = 0
        #: Loops in the session's thread can add signal handlers (``_loop_signals``).
        self._signals_relayed: loop_signals_relayed | None = None

    @property
    def thread(self) -> threading.Thread | None:
        """The thread the loop runs in, or None when the runner is closed."""
        return self._thread

    # -- what each library provides ----------------------------------------------------------

    @abstractmethod
    def _serve(self, ready: Callable[[], None]) -> None:
        """Run the session loop in this thread until :meth:`_request_stop` ends it.

        Call ``ready()`` once cells can be submitted.
        """

    @abstractmethod
    def _submit(self, submitted: SubmittedCell) -> None:
        """Thread-safe: start the cell in the loop; end by ``succeed`` or ``fail``.

        Set ``submitted.cancel`` before handing the cell over."""

    @abstractmethod
    def _request_stop(self) -> None:
        """Thread-safe, returns at once: have :meth:`_serve` cancel the background tasks,
        record how many in ``self._cancelled``, and return."""

    def _reset(self) -> None:
        """Forget the session's objects (the thread has ended)."""

    def _wait_in_gui(self, gui: GuiHook, fds: Sequence[int]) -> Coroutine[Any, Any, None] | None:
        """A coroutine of the library, run as a cell: run the session until one of ``fds``
        is readable, with ``gui`` waiting in its place (``_gui_wait``). None: the library
        cannot, and the prompt runs ``gui`` in the main thread, as IPython does."""
        return None

    # -- the runner ------------------------------------------------------------------------

    def _startup(self) -> None:
        if self._signals_relayed is None:  # kept when a crashed session restarts
            self._signals_relayed = loop_signals_relayed()
            self._signals_relayed.__enter__()
        try:
            self._start_thread()
        except BaseException:
            self._stop_relaying_signals()  # no session: nothing to relay to
            raise

    def _start_thread(self) -> None:
        up = threading.Event()
        crashed: list[BaseException] = []
        thread = threading.Thread(
            target=self._thread_main,
            args=(up, crashed),
            name=f"autoawait_runners-{self.name}",
            daemon=True,  # exiting IPython must never wait on it; close() joins it
        )
        thread.start()
        if not up.wait(START_TIMEOUT):
            raise RunnerUnavailable(f"the {self.name} loop did not start")
        if crashed:
            thread.join(START_TIMEOUT)
            exc = crashed[0]
            if isinstance(exc, RunnerUnavailable):  # already in words (a loop_factory not found)
                raise exc
            raise RunnerUnavailable(f"{type(exc).__name__}: {exc}")
        self._thread = thread

    def _thread_main(self, up: threading.Event, crashed: list[BaseException]) -> None:
        _output_goes_to_the_current_cell()
        try:
            with tk_kept_past_this_thread():
                self._serve(up.set)
        except BaseException as exc:
            crashed.append(exc)
            if self._thread is not None:  # it was running: say so, cells will restart it
                self._say_session_ended(exc)
        finally:
            thread_ends()
            up.set()
            self._thread_ended()

    def _thread_ended(self) -> None:
        """Release whoever still waits on this session; the next cell starts a new one."""
        for submitted in list(self._waiting):
            if submitted.loop_thread is threading.current_thread():
                submitted.fail(RuntimeError(f"the {self.name} session ended before the cell did"))
        if self._thread is threading.current_thread():
            self._thread = None
            self._started = False
            self._stop_watching()  # the loop it watched is gone; close() will not come
            self._reset()

    def _inside_cell(self) -> bool:
        return self._thread is not None and threading.get_ident() == self._thread.ident

    def run_until_readable(self, fd: int, gui: GuiHook | None) -> bool:
        """The loop runs anyway; a GUI hook runs in the loop thread, where the cells made
        what it serves (a Tk window), while the prompt waits: the main thread waits for
        that, as for a cell."""
        thread = self._thread
        if gui is None or thread is None or not thread.is_alive() or self._inside_cell():
            return False
        stop_read, stop_write = os.pipe()
        job = self._wait_in_gui(gui, (fd, stop_read))
        if job is None:
            os.close(stop_read)
            os.close(stop_write)
            return False
        submitted = SubmittedCell(self._make_cell(job), thread, users=False)
        self._waiting.add(submitted)  # released if the session dies meanwhile
        try:
            with _main_thread_serving():
                self._submit(submitted)
                submitted.wait()
        finally:
            self._waiting.discard(submitted)
            if not submitted.ended():  # this wait was interrupted: end that one too
                os.write(stop_write, b"x")
                submitted.wait(SHUTDOWN_TIMEOUT)
            if submitted.ended():  # else the loop thread still looks at the pipe
                os.close(stop_read)
                os.close(stop_write)
        submitted.result()
        return True

    def _run_cell(self, coro: Coroutine[Any, Any, Any]) -> Any:
        cell = self._make_cell(coro)
        attempts: list[SubmittedCell] = []  # the hand-overs so far; the last one counts
        below = _loop_running_below()
        given_up: list[bool] = []

        def thread() -> int | None:
            return attempts[-1].loop_thread_id() if attempts else None

        def stop_waiting() -> None:
            given_up.append(True)
            if attempts:
                attempts[-1].then()

        controls = _ctrl_c.CellControls(
            cell,
            runner=self.name,
            thread=thread,
            cancel=lambda: attempts[-1].cancel(),
            wait=lambda seconds: attempts[-1].wait(seconds),
            ended=lambda: not attempts or attempts[-1].ended(),
            # On a loop below, the handler must not raise in its machinery (see _ctrl_c).
            stop_waiting=None if below is None else stop_waiting,
        )
        waker_below = (
            contextlib.nullcontext(None)
            if below is None
            else _ctrl_c.waker_in(below, only_way_to_wake=False)
        )
        # Entered before the hand-over: a Ctrl-C at any point reaches the cell, never this
        # thread's own code.
        # The main thread serves the cell's calls (``_main_thread``) from before the hand-over:
        # the cell may ask at once.
        serving = _main_thread_serving(through=below)
        with waker_below as waker, _ctrl_c.waiting_for(controls, waker=waker), serving:
            try:
                submitted = self._submit_to_live_session(cell, attempts)
                if below is None:
                    submitted.wait()
                else:
                    _wait_parked(below, submitted, given_up)
            finally:
                self._waiting.difference_update(attempts)
        return submitted.result()

    def _submit_to_live_session(
        self, cell: CellCoroutine[Any], attempts: list[SubmittedCell]
    ) -> SubmittedCell:
        """Submit the cell; if the session died under us, start a new one and retry once."""
        for retry in (False, True):
            thread = self._thread
            submitted = SubmittedCell(cell, thread)
            self._waiting.add(submitted)
            # Known to the SIGINT handler before the cell can start: a Ctrl-C that comes
            # as soon as it does must find it.
            attempts.append(submitted)
            try:
                if thread is None or not thread.is_alive():
                    raise RuntimeError(f"the {self.name} session has ended")
                self._submit(submitted)
                return submitted
            except Exception:
                attempts.remove(submitted)
                self._waiting.discard(submitted)
                if thread is not None:
                    thread.join(START_TIMEOUT)  # let it finish dying: see _thread_ended
                if retry or self._started:
                    raise
                self.start()
        raise AssertionError("unreachable")

    def _shutdown(self) -> int:
        thread, self._thread = self._thread, None  # an ending expected: see _thread_ended
        assert thread is not None
        self._cancelled = 0
        self._request_stop()
        # Cancelled tasks get SHUTDOWN_TIMEOUT for their clean-up, then the loop closes:
        # exiting IPython takes 2 s at worst (R8).
        thread.join(SHUTDOWN_TIMEOUT * 2)
        if thread.is_alive():
            self._left_running.append(
                f"its thread, busy {SHUTDOWN_TIMEOUT * 2:g} s after cancellation (a cell in a "
                "call, a shielded clean-up)"
            )
        self._reset()
        self._stop_relaying_signals()
        return self._cancelled

    def _stop_relaying_signals(self) -> None:
        if self._signals_relayed is not None:
            self._signals_relayed.__exit__(None, None, None)
            self._signals_relayed = None


def _nothing() -> None:
    pass


def _main_thread_serving(through: Any = None) -> contextlib.AbstractContextManager[None]:
    """The main thread serves the cell's calls while it waits here, through the loop it is
    parked in if any (``_ctrl_c.cell_in_a_loop_thread``); nothing in another thread (a
    shell embedded in a worker thread waits there)."""
    if threading.get_ident() == MAIN_THREAD_ID:
        return _ctrl_c.cell_in_a_loop_thread(through)
    return contextlib.nullcontext()


def _loop_running_below() -> asyncio.AbstractEventLoop | None:
    """The asyncio loop running in this thread, below the waiting code, if the waiting
    thread can park in it (asyncio's own loops: a Jupyter kernel's, an embed host's)."""
    loop = _private_api.running_loop()
    return loop if isinstance(loop, asyncio.BaseEventLoop) else None


def _wait_parked(
    loop: asyncio.AbstractEventLoop, submitted: SubmittedCell, given_up: list[bool]
) -> None:
    """Wait for the cell parked in ``loop``, which runs meanwhile (its other tasks, a
    kernel's messages); every :data:`SIGNAL_POLL` the Ctrl-C notes get their look. The
    press that gives up (``given_up``) ends the wait with KeyboardInterrupt, raised here."""
    from .._nesting._parking import run_on_running_loop

    woken = loop.create_future()
    # Before looking: an end from now on wakes this thread.
    submitted.then = functools.partial(resolve_soon, loop, woken)
    while not (submitted.ended() or given_up):
        run_on_running_loop(loop, asyncio.wait([woken], timeout=SIGNAL_POLL))
        if submitted.loop_thread is not None and submitted.loop_thread.ident is not None:
            _ctrl_c.note_if_stuck(submitted.cell, submitted.loop_thread.ident)
    if not submitted.ended():
        raise KeyboardInterrupt
    submitted.wait()
