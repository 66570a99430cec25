"""How a cell's coroutine is driven and interrupted: the plumbing every runner shares.

IPython hands a runner the coroutine of ``run_cell_async``. Inside it, ``run_code`` catches
*every* exception the user's code raises and shows it, so whatever Ctrl-C raises in the
cell is what the user sees. :class:`CellCoroutine` wraps that coroutine so a runner can tell
where the cell is when Ctrl-C arrives:

- running Python code (a busy loop, ``time.sleep``): :class:`KeyboardInterrupt` is raised
  right there, as it would be in a plain Python program;
- suspended at an ``await``: the runner cancels the cell's task, and the cancellation is
  delivered to the cell's code as a :class:`KeyboardInterrupt` (so IPython shows
  ``KeyboardInterrupt``) that is also the library's cancellation exception where the
  library allows it (so ``except asyncio.CancelledError`` clean-up and ``finally`` blocks
  run, and TaskGroups cancel their children): :data:`CellInterrupted` for asyncio, a
  ``TaskCancelled`` twin for curio, a plain KeyboardInterrupt for trio (whose ``Cancelled``
  cannot be subclassed).

Either way the cell's coroutine finishes before the next prompt: nothing of it resumes
later, unlike IPython's own asyncio runner whose interrupted task stays pending.
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Coroutine, Generator, Iterator
from contextlib import contextmanager, suppress
from types import FrameType, TracebackType
from typing import Any, TypeVar, overload

from ._runner import SHUTDOWN_TIMEOUT, say

T = TypeVar("T")

#: The Ctrl-C that stops waiting for a cell which ignored all the ones before it.
ABANDON_AFTER = 3
#: How long a thread sent Ctrl-C may stay where it was before it counts as stuck in a call
#: (an exception from another thread lands within a few milliseconds in Python code).
STUCK_AFTER = 0.3


def interruption_type(cancelled: type[BaseException]) -> type[KeyboardInterrupt]:
    """A KeyboardInterrupt that is also the library's cancellation exception.

    IPython names the exception by its class name, so the class is called
    ``KeyboardInterrupt`` in tracebacks; ``isinstance(exc, CellInterrupted)`` tells it apart.
    """
    return type(
        "KeyboardInterrupt",
        (KeyboardInterrupt, cancelled),
        {
            "__module__": __name__,
            "__doc__": "Ctrl-C delivered to a cell waiting at an await (see CellInterrupted).",
        },
    )


def _asyncio_interruption() -> type[KeyboardInterrupt]:
    import asyncio

    return interruption_type(asyncio.CancelledError)


#: Raised in a cell's code at the ``await`` where Ctrl-C found it, under the asyncio-family
#: runners. A subclass of both :class:`KeyboardInterrupt` and :class:`asyncio.CancelledError`.
CellInterrupted: type[KeyboardInterrupt] = _asyncio_interruption()


class GaveUpWaiting(KeyboardInterrupt):
    """The Ctrl-C that stops waiting for a cell (see :meth:`CellCoroutine.interrupt`),
    raised by the SIGINT handler wherever the main thread is. Told apart from a
    KeyboardInterrupt that user code raised (a background task), which must not end the
    session loop."""


GaveUpWaiting.__name__ = GaveUpWaiting.__qualname__ = "KeyboardInterrupt"  # as IPython shows it


class CellCoroutine(Coroutine[Any, Any, T]):
    """The cell's coroutine, wrapped so a runner knows whether the cell's code is running.

    ``executing`` is true exactly while the wrapped coroutine runs Python code (between a
    resume and its next suspension). A SIGINT handler reads it to choose between raising in
    place and cancelling at the await. The cost is one Python-level call per step of the
    cell's own task; background tasks are not wrapped.
    """

    __slots__ = (
        "_coro",
        "_decoy",
        "_held",
        "_level_triggered",
        "_raised_where",
        "_stale_task",
        "_translate",
        "executing",
        "interrupts",
        "nested_calls",
        "pending_interrupt",
        "started",
    )

    def __init__(
        self,
        coro: Coroutine[Any, Any, T],
        translate: Callable[[Any], Any],
        *,
        level_triggered: bool = False,
    ) -> None:
        self._coro = coro
        # Maps what the library resumes the cell with after the runner cancelled it (a
        # thrown exception, or a value sent in: trio sends outcomes, curio exceptions) to
        # what the cell should get instead; None means "not the cancellation, pass it on".
        self._translate = translate
        # trio's cancellation is level-triggered: once the cell's scope is cancelled, every
        # checkpoint raises, and every one of those must read as the interruption.
        self._level_triggered = level_triggered
        self.executing = False
        self.started = False  # its code ran at least once
        self._raised_where: tuple[Any, int, float] | None = None  # see note_if_stuck
        self.interrupts = 0
        self.pending_interrupt = False
        self.nested_calls = 0
        self._stale_task: Any = None
        self._decoy: Any = None
        self._held: Any = None

    def _translated(self, resumed: Any) -> Any:
        replacement = self._translate(resumed)
        if replacement is None:
            return resumed
        if not self._level_triggered:
            self.pending_interrupt = False
        return replacement

    def send(self, value: Any) -> Any:
        if self.pending_interrupt:
            value = self._translated(value)
        return self._step(self._coro.send, value)

    @overload
    def throw(
        self, typ: type[BaseException], val: object = ..., tb: TracebackType | None = ...
    ) -> Any: ...
    @overload
    def throw(self, typ: BaseException, val: None = ..., tb: TracebackType | None = ...) -> Any: ...
    def throw(self, typ: Any, val: Any = None, tb: TracebackType | None = None) -> Any:
        exc = typ if isinstance(typ, BaseException) else typ(*(() if val is None else (val,)))
        if tb is not None:
            exc = exc.with_traceback(tb)
        if self._decoy is not None and self._decoy.cancelled():
            return self._release(exc)
        if self.pending_interrupt:
            exc = self._translated(exc)
        return self._step(self._coro.throw, exc)

    def _step(self, resume: Callable[[Any], Any], arg: Any) -> Any:
        self.executing = self.started = True
        try:
            yielded = resume(arg)
        except StopIteration as stop:
            if self._stale_task is None:
                raise
            return self._absorb(stop)
        finally:
            self.executing = False
        if self._stale_task is not None:
            return self._absorb(yielded)
        return yielded

    # -- a cancellation the nesting shim already delivered ---------------------------------

    def absorb_stale_cancellation(self, task: Any) -> None:
        """Called by the nesting shim after it delivered a cancellation of the cell's task.

        The task was cancelled in the middle of a step (parked in a nested ``asyncio.run``),
        where asyncio can only set a flag that cancels whatever the task awaits next. The
        shim has already cancelled the nested call; if the cell handled that (an
        ``asyncio.timeout`` around it), the flag would cancel the cell a second time at its
        next await (or turn its result into a cancellation, if it returns first). So the
        next time the cell suspends or returns, the task first awaits a decoy future that
        takes the flag; then the cell waits for what it really awaited, or returns.
        (Python 3.13's ``Task.uncancel`` clears the flag itself when ``asyncio.timeout``
        handles the cancellation; the flag is checked before a decoy is used.)
        """
        self._stale_task = task

    def _absorb(self, yielded: Any) -> Any:
        task, self._stale_task = self._stale_task, None
        if not getattr(task, "_must_cancel", False):
            if isinstance(yielded, StopIteration):
                raise yielded
            return yielded
        decoy = task.get_loop().create_future()
        decoy._asyncio_future_blocking = True  # what `await future` sets before yielding it
        self._decoy, self._held = decoy, yielded
        return decoy

    def _release(self, exc: BaseException) -> Any:
        """The decoy took the stale cancellation: resume waiting for the real thing."""
        import asyncio

        held, self._decoy, self._held = self._held, None, None
        if not isinstance(exc, asyncio.CancelledError):
            return self.throw(exc)
        if isinstance(held, StopIteration):
            raise held
        if held is None:  # the cell had yielded bare (asyncio.sleep(0)): resume it
            return self.send(None)
        return held

    def close(self) -> None:
        self._coro.close()

    def interrupt(self, *, cancel: Callable[[], None], cell_thread: int) -> bool:
        """Deliver one Ctrl-C to the cell, where it is; called in the main thread.

        Running Python code in this thread: raises KeyboardInterrupt here. Running in
        ``cell_thread``: raises it there. Suspended at an await: ``cancel()``s the cell's task
        (thread-safely), which :meth:`throw` turns into the interruption. Each Ctrl-C
        interrupts again, so a cell that swallowed one gets the next; the
        :data:`ABANDON_AFTER`-th returns False: the caller stops waiting for the cell.
        """
        self.interrupts += 1
        if self.interrupts >= ABANDON_AFTER:
            return False
        if self.executing and not (self.nested_calls and _waiting_in_selector(cell_thread)):
            if cell_thread == threading.get_ident():
                raise KeyboardInterrupt
            if raise_in_thread(cell_thread, KeyboardInterrupt):
                from ._nesting import wake_loop_in

                wake_loop_in(cell_thread)  # a private loop of the cell's, asleep in select
                frame = sys._current_frames().get(cell_thread)
                if frame is not None:
                    self._raised_where = (frame, frame.f_lasti, time.monotonic())
                return True
        elif (
            self.interrupts > 1
            and cell_thread != threading.get_ident()
            and not _waiting_in_selector(cell_thread)
        ):
            # The cell waits (or has not started) while its loop's thread still runs other
            # code after a first Ctrl-C: a task that does not yield holds the loop (F3).
            # Interrupt that code; its task fails with KeyboardInterrupt and is reported.
            say("the loop is busy in other code (a task that does not yield?): interrupting it")
            raise_in_thread(cell_thread, KeyboardInterrupt)
        self.pending_interrupt = True
        cancel()
        return True

    # -- the nesting shim: a cell parked in a nested asyncio.run() ------------------------

    @contextmanager
    def in_nested_call(self) -> Iterator[None]:
        """While the cell waits in a nested ``asyncio.run()`` (see ``_nesting``).

        Its step has not returned, so :attr:`executing` stays true; but when the loop is
        only waiting for I/O or timers, Ctrl-C should cancel (the nested call is cancelled,
        its clean-up runs) rather than raise wherever the loop happens to be.
        """
        self.nested_calls += 1
        try:
            yield
        finally:
            self.nested_calls -= 1

    def nested_call_cancelled(self, exc: BaseException) -> BaseException:
        """What the cell sees when its nested call was cancelled: the interruption, if
        Ctrl-C caused it."""
        if self.pending_interrupt:
            return self._translated(exc)  # type: ignore[no-any-return]
        return exc

    def abandon(
        self, *, cancel: Callable[[], None], wait: Callable[[float], bool], runner: str
    ) -> None:
        """Stop waiting for a cell that ignored every Ctrl-C, after one last chance.

        ``cancel()`` cancels it once more if it is suspended; ``wait(seconds)`` waits for it
        and says whether it ended. If it did not, one line says what is left behind.
        """
        if not self.executing:
            self.pending_interrupt = True
            cancel()
        if not wait(SHUTDOWN_TIMEOUT):
            if self.executing:
                what = (
                    f"the cell ignored Ctrl-C and still runs in the {runner} runner's thread; "
                    "later cells wait for it"
                )
            elif not self.started:
                what = (
                    f"the cell never started: the {runner} runner's loop is still busy (an "
                    "earlier cell, or code that does not yield); later cells wait too"
                )
            else:
                what = "the cell ignored cancellation; its task was left pending"
            say(what)

    def note_if_stuck(self, cell_thread: int) -> None:
        """Called now and then while the cell is waited for: if Ctrl-C was sent to its
        thread and that thread has not moved since, it is inside one call that an exception
        cannot interrupt from another thread (a C function: ``time.sleep``, blocking I/O).
        Say so, once, and what the next presses do."""
        where = self._raised_where
        if where is None or time.monotonic() - where[2] < STUCK_AFTER:
            return
        self._raised_where = None
        if not self.executing:
            return
        frame = sys._current_frames().get(cell_thread)
        if frame is where[0] and frame is not None and frame.f_lasti == where[1]:
            left = ABANDON_AFTER - self.interrupts
            say(
                "the cell is inside a call that Ctrl-C cannot interrupt from here (a C "
                "function such as time.sleep): it gets KeyboardInterrupt when the call "
                f"returns; Ctrl-C {'once' if left == 1 else f'{left} times'} more stops "
                "waiting for it"
            )

    def __await__(self) -> Generator[Any, None, T]:
        # Lets a runner `await` the wrapper from a coroutine of its own (trio, curio).
        return self._await_impl()

    def _await_impl(self) -> Generator[Any, None, T]:
        value: Any = None
        error: BaseException | None = None
        while True:
            try:
                yielded = self.send(value) if error is None else self.throw(error)
            except StopIteration as stop:
                result: T = stop.value
                return result
            value, error = None, None
            try:
                value = yield yielded
            except BaseException as exc:  # delivered by the library: pass it on
                error = exc


def _waiting_in_selector(thread_id: int) -> bool:
    """Whether the event loop of ``thread_id`` waits for I/O or timers, running nothing:
    its innermost frame (under this package's own, the signal handler's) is asyncio's
    selector or trio's I/O manager waiting for events."""
    frame: FrameType | None = sys._current_frames().get(thread_id)
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        frame = frame.f_back
    if frame is None:
        return False
    name, module = frame.f_code.co_name, str(frame.f_globals.get("__name__"))
    return (name == "select" and module == "selectors") or (
        name == "get_events" and module.startswith("trio._core._io_")
    )


_PACKAGE_DIR = os.path.dirname(__file__)


def raise_in_thread(thread_id: int, exc_type: type[BaseException]) -> bool:
    """Raise ``exc_type`` in another thread at its next Python bytecode.

    Used when a cell busy in Python code runs in a runner's own thread: signals only reach
    the main thread, and this is how CPython lets one thread interrupt another.
    """
    set_async_exc = ctypes.pythonapi.PyThreadState_SetAsyncExc
    count = set_async_exc(ctypes.c_ulong(thread_id), ctypes.py_object(exc_type))
    if count > 1:  # pragma: no cover - cannot happen with a valid id; undo as CPython advises
        set_async_exc(ctypes.c_ulong(thread_id), None)
    return bool(count == 1)


class Waker:
    """A socket pair whose write end is the signal wake-up fd while a cell runs.

    A process-directed SIGINT may be delivered to any thread. CPython then runs the Python
    handler in the main thread only once that thread wakes up, so a main thread asleep in
    its loop's selector would not notice Ctrl-C until the cell ended. With the write end as
    ``signal.set_wakeup_fd`` and the read end in that selector, the signal wakes it.
    """

    def __init__(self) -> None:
        self._read, self._write = socket.socketpair()
        self._read.setblocking(False)
        self._write.setblocking(False)

    def fileno(self) -> int:
        """The end to wait on (readable once woken)."""
        return self._read.fileno()

    @property
    def write_fd(self) -> int:
        return self._write.fileno()

    def drain(self) -> None:
        with suppress(OSError):  # empty
            while self._read.recv(4096):
                pass

    def close(self) -> None:
        self._read.close()
        self._write.close()


@contextmanager
def sigint_routed_to(
    interrupt: Callable[[], bool], *, waker: Waker | None = None
) -> Iterator[None]:
    """While a cell runs, send Ctrl-C (SIGINT) to ``interrupt()`` instead of raising.

    ``interrupt`` runs in the signal handler, in the main thread: typically
    :meth:`CellCoroutine.interrupt`. When it returns False the handler raises
    KeyboardInterrupt, so the waiting thread stops waiting. ``waker``, if given, becomes the
    signal wake-up fd, for a main thread asleep in a selector: wherever the signal lands, it
    wakes up and runs the handler. Outside the main thread no handler can be installed and
    nothing changes.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_sigint(signum: int, frame: FrameType | None) -> None:
        if not interrupt():
            raise GaveUpWaiting

    previous = signal.signal(signal.SIGINT, on_sigint)
    previous_fd = None
    if waker is not None:
        previous_fd = signal.set_wakeup_fd(waker.write_fd, warn_on_full_buffer=False)
    try:
        yield
    finally:
        if previous_fd is not None:
            signal.set_wakeup_fd(previous_fd)
        signal.signal(signal.SIGINT, previous)
