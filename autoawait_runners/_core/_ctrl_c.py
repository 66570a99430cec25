"""Ctrl-C: every rule about SIGINT, in one place.

What does not work, and why the rest of this module exists:

- Only the main thread runs Python signal handlers, and only between bytecodes: a cell
  running in a runner's own thread never sees SIGINT, and a main thread asleep in a
  selector runs the handler only when something wakes it.
- A process-directed SIGINT is delivered to any thread that does not block it, and the
  handler runs only once the main thread wakes. So a main thread that sleeps in its
  loop's selector is woken through the signal wake-up fd (:class:`Waker`), and one that
  waits for a loop thread wakes now and then to let it run. Loop threads must not block
  SIGINT: every process they start (``!cmd``, ``subprocess.run``, a forked worker) would
  inherit the blocked mask, and ignore Ctrl-C for good (F7).
- Another thread can be interrupted only at its next Python bytecode
  (:func:`raise_in_thread`): a thread inside one C call (``time.sleep``, blocking I/O) gets
  the exception when the call returns, and nothing can make it sooner.
- An exception raised by the handler lands wherever the main thread is. That is what stops
  a busy loop in a cell; in a kernel's own machinery (its streams, its messaging) it can
  leave things half-done, so there the waiting code is told to give up instead.

Every path that waits for a cell (the session loop in the main thread, a runner's own
thread, a loop running below: a kernel's or an embed host's, asyncio or trio) enters
:func:`waiting_for` with the cell's :class:`CellControls`: the routing, the press rules and
the give-up step below come with it, so no path can miss one. The loop libraries' own
facts (where their loops sleep, whose SIGINT handler a cell may take over) are data each
runner hands in (:class:`LoopLibrary`); nothing here imports a loop library.

The rules, for a cell wrapped in a :class:`~autoawait_runners._core._cell.CellCoroutine`:

1. While the cell runs, SIGINT goes to :func:`interrupt` (:func:`sigint_routed_to`).
   The handler is installed over Python's default one, over another of ours (a cell
   inside a cell), or over the one a loop library installed for the run the shell lives
   in (``asyncio.run``, ``trio.run`` around ``embed()``): while a cell runs, Ctrl-C is the
   cell's; while an embedded shell is open, it is the shell's (:func:`embedded_shell_takes_ctrl_c`,
   set in the main thread even for a shell in a worker thread, through the main thread's
   loop). Any other handler is the user's: it stays, Ctrl-C goes to it, and one line
   says so. The handler put back afterwards is the one found, and only if ours is still
   installed (a cell that installed its own keeps it). A signal wake-up fd that other code
   set is never displaced.
2. Each press interrupts the cell where it is (the flags below say where): running Python
   code, it raises KeyboardInterrupt there (in the cell's thread if that is another one);
   suspended at an await, its task is cancelled and the cancellation reaches the cell as
   the interruption. A cell that swallows one gets the next. A press that lands in this
   package's own code in the main thread (the cell's wrapper between two steps) cancels
   too: raised there, it would go through the loop rather than the cell.
3. The :data:`ABANDON_AFTER`-th press stops waiting: the handler raises
   :class:`GaveUpWaiting` (on a loop below, it tells the waiting code to stop instead);
   :func:`waiting_for` cancels the cell once more, waits briefly (:func:`give_up`), and
   says in one line what is left behind.
4. A cell that waits while its loop's thread is busy in other code (a task that does not
   yield): the second press interrupts that code (its task fails, and is reported).
5. A thread sent KeyboardInterrupt that has not moved :data:`STUCK_AFTER` later is inside
   a C call: one line says so (:func:`note_if_stuck`).

Presses are handled one at a time, in order (:func:`sigint_routed_to`): one that comes while
another is being handled waits for it, rather than run inside it and cut it short.

The flags, on the cell (see ``CellCoroutine``):

- ``executing``: set by the thread running the cell, around each step of its code;
- ``interrupts``: presses so far, counted by the handler (main thread);
- ``pending_interrupt``: set by the handler, cleared by the cell's thread once the
  cancellation it caused reached the cell as the interruption;
- ``nested_calls`` and ``nested_frames``: the cell is parked in a nested ``asyncio.run()``,
  whose loop runs other code meanwhile (then Ctrl-C cancels rather than raises, unless
  the nested call's own code runs: :func:`_raises_in_place`).

What cancellation looks like in each library, and how to cancel from another thread, is
each runner's business: it passes ``cancel`` and a translation to the cell.
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from types import FrameType
from typing import Any, TypeVar

from . import _private_api
from ._cell import CellCoroutine
from ._loop_signals import LoopSignalRelay
from ._main_thread import MAIN_THREAD_ID, call_in, call_in_main_thread, serving_calls
from ._messages import SHUTDOWN_TIMEOUT, say
from ._tracebacks import PACKAGE_DIR

T = TypeVar("T")

#: The Ctrl-C that stops waiting for a cell which ignored all the ones before it.
ABANDON_AFTER = 3
#: How long a thread sent Ctrl-C may stay where it was before it counts as stuck in a call
#: (an exception from another thread lands within a few milliseconds in Python code).
STUCK_AFTER = 0.3


class GaveUpWaiting(KeyboardInterrupt):
    """The Ctrl-C that stops waiting for a cell (rule 3), raised by the SIGINT handler
    wherever the main thread is. Told apart from a KeyboardInterrupt that user code raised
    (a background task), which must not end the session loop."""


# Shown as what it is to the user: a KeyboardInterrupt.
GaveUpWaiting.__name__ = GaveUpWaiting.__qualname__ = "KeyboardInterrupt"
GaveUpWaiting.__module__ = "builtins"


# -- where a press goes (rules 2 to 5) ------------------------------------------------------


def interrupt(
    cell: CellCoroutine[Any],
    *,
    cancel: Callable[[], None],
    cell_thread: int,
    landed: FrameType | None = None,
) -> bool:
    """Deliver one Ctrl-C to the cell, where it is; called by the handler (main thread),
    ``landed`` the frame the signal interrupted.

    Running Python code in this thread: raises KeyboardInterrupt here, unless the press
    landed in this package's own code (the cell's wrapper just after a step, say: raised
    there, it would go through the loop, not the cell, and end the program's
    ``asyncio.run()`` around an embedded shell). Running in ``cell_thread``: raises it
    there. Suspended at an await (or landed in this package's code): ``cancel()``s the
    cell's task (thread-safely), which the cell turns into the interruption. Returns False
    at the :data:`ABANDON_AFTER`-th press: the caller stops waiting for the cell.
    """
    cell.interrupts += 1
    if cell.interrupts >= ABANDON_AFTER:
        return False
    if _raises_in_place(cell, cell_thread):
        if cell_thread == threading.get_ident():
            if landed is None or not landed.f_code.co_filename.startswith(PACKAGE_DIR):
                raise KeyboardInterrupt
        elif raise_in_thread(cell_thread, KeyboardInterrupt):
            _wake_private_loop_in(cell_thread)  # a private loop of the cell's, asleep in select
            frame = _private_api.current_frames().get(cell_thread)
            if frame is not None:
                cell.raised_where = (frame, frame.f_lasti, time.monotonic())
            return True
    elif (
        not cell.executing
        and cell.interrupts > 1
        and cell_thread != threading.get_ident()
        and not _waiting_for_events(cell_thread)
    ):
        # Rule 4: the cell waits (or has not started) while its loop's thread still runs
        # other code after a first press. Interrupt that code; its task is reported.
        say("the loop is busy in other code (a task that does not yield?): interrupting it")
        raise_in_thread(cell_thread, KeyboardInterrupt)
    cell.pending_interrupt = True
    cancel()
    return True


def _raises_in_place(cell: CellCoroutine[Any], cell_thread: int) -> bool:
    """Whether a press raises KeyboardInterrupt where the cell's thread is, rather than
    cancel the cell (rule 2).

    A cell parked in a nested call (``asyncio.run()`` in a cell) is mid-step, but the code
    running meanwhile is mostly not the cell's: another task's, or the loop's own, where a
    KeyboardInterrupt would kill that task or the loop's step and leave the cell waiting.
    So it raises only where the nested call's own code runs (a busy ``asyncio.run(main())``),
    and cancels the cell otherwise, which cancels the nested call. A second press, if that
    cancellation did not land (the nested call waits for a task that does not yield),
    raises wherever the loop is busy.
    """
    if not cell.executing:
        return False
    if not cell.nested_calls:
        return True  # the cell's own code runs
    if _running_nested_code(cell, cell_thread):
        return True
    return cell.interrupts > 1 and not _waiting_for_events(cell_thread)


def _running_nested_code(cell: CellCoroutine[Any], thread_id: int) -> bool:
    """Whether the code of a nested call the cell waits in runs in that thread now."""
    nested = {id(frame) for frame in cell.nested_frames if frame is not None}
    frame: FrameType | None = _private_api.current_frames().get(thread_id)
    while frame is not None:
        if id(frame) in nested:
            return True
        frame = frame.f_back
    return False


def give_up(
    cell: CellCoroutine[Any],
    *,
    cancel: Callable[[], None],
    wait: Callable[[float], bool],
    runner: str,
) -> None:
    """Stop waiting for a cell that ignored every Ctrl-C, after one last chance (rule 3).

    ``cancel()`` cancels it once more if it is suspended; ``wait(seconds)`` waits for it and
    says whether it ended. If it did not, one line says what is left behind.
    """
    if not cell.executing:
        cell.pending_interrupt = True
        cancel()
    if wait(SHUTDOWN_TIMEOUT):
        return
    if cell.executing:
        say(
            f"the cell still runs in the {runner} runner's thread (inside a call Ctrl-C "
            "cannot interrupt, or it ignored Ctrl-C); later cells wait for it (exit by Ctrl-D "
            "does not)"
        )
    elif not cell.started:
        say(
            f"the cell never started: the {runner} runner's loop is still busy (an earlier "
            "cell, or code that does not yield); later cells wait too"
        )
    else:
        say("the cell ignored cancellation; its task was left pending")


def note_if_stuck(cell: CellCoroutine[Any], cell_thread: int) -> None:
    """Rule 5. Called now and then while the cell is waited for: if Ctrl-C was sent to its
    thread and that thread has not moved since, it is inside one call that an exception
    cannot interrupt from another thread. Say so, once, and what the next presses do."""
    where = cell.raised_where
    if where is None or time.monotonic() - where[2] < STUCK_AFTER:
        return
    cell.raised_where = None
    if not cell.executing:
        return
    frame = _private_api.current_frames().get(cell_thread)
    if frame is where[0] and frame is not None and frame.f_lasti == where[1]:
        left = ABANDON_AFTER - cell.interrupts
        say(
            "the cell is in a C call (time.sleep, say): KeyboardInterrupt comes when it "
            f"returns; {'one more Ctrl-C stops' if left == 1 else f'{left} more stop'} waiting"
        )


@dataclass(frozen=True)
class LoopLibrary:
    """What Ctrl-C must know of an event loop library: given by the runners that use it
    (:func:`know`), so that this module names no library of its own."""

    name: str
    #: The innermost frames of its loop waiting for I/O or timers, running nothing:
    #: (module name prefix, function name).
    waits_in: tuple[tuple[str, str], ...] = ()
    #: Module name prefixes of the SIGINT handlers it installs around a run of its own
    #: (``asyncio.run``'s, ``trio.run``'s): a cell run inside may take Ctrl-C from them.
    sigint_handlers_in: tuple[str, ...] = ()


_libraries: dict[str, LoopLibrary] = {}


def know(library: LoopLibrary) -> None:
    """Tell Ctrl-C about a loop library (idempotent; a runner module does it on import)."""
    _libraries[library.name] = library


#: The threads whose loop waits for events inside another event loop now (see
#: :func:`waits_in_another_loop`).
_waiting_elsewhere: set[int] = set()


@contextmanager
def waits_in_another_loop() -> Iterator[None]:
    """Around a loop's wait for events that runs another event loop meanwhile (a GUI's, at
    an idle prompt with ``%gui``): the thread counts as waiting, whatever code that loop
    runs. Without it, the GUI's own code looks like a task that does not yield, and the
    prompt's Ctrl-C would become a signal raised into the GUI (see
    :func:`reaches_a_busy_prompt_loop`); without the extension it is a key the prompt
    reads, there too."""
    here = threading.get_ident()
    _waiting_elsewhere.add(here)
    try:
        yield
    finally:
        _waiting_elsewhere.discard(here)


def loop_waits_for_events(thread_id: int) -> bool:
    """Whether the event loop of ``thread_id`` waits for events now (see below); the loop
    watch asks it of a loop whose waits it cannot mark (``_loop_watch``)."""
    return _waiting_for_events(thread_id)


def _waiting_for_events(thread_id: int) -> bool:
    """Whether the event loop of ``thread_id`` waits for I/O or timers, running nothing: its
    innermost frame (under this package's own, the signal handler's) is a selector's wait,
    or it waits inside another event loop (:func:`waits_in_another_loop`)."""
    if thread_id in _waiting_elsewhere:
        return True
    frame: FrameType | None = _private_api.current_frames().get(thread_id)
    if frame is not None and frame.f_code is run_past_interrupts.__code__:
        # The loop's run is written in C (uvloop's): below this frame it runs no Python
        # code, so it waits for events (or is in its own C code, and back soon).
        return True
    while frame is not None and frame.f_code.co_filename.startswith(PACKAGE_DIR):
        frame = frame.f_back
    if frame is None:
        return False
    name, module = frame.f_code.co_name, str(frame.f_globals.get("__name__"))
    return any(
        name == function and module.startswith(prefix)
        for library in _libraries.values()
        for prefix, function in library.waits_in
    )


#: thread id -> the private loop a ``run_until_complete`` runs in that thread now.
_private_loops: dict[int, Any] = {}


@contextmanager
def private_loop_runs_here(loop: Any) -> Iterator[None]:
    """Around a private loop's ``run_until_complete`` (``asyncio.Runner`` in a cell, through
    the nesting shim): Ctrl-C for a cell of this thread wakes that loop (see below). In the
    main thread, a waker in that loop is the signal wake-up fd meanwhile (unless other code
    set one): a SIGINT the system hands to another thread writes there, and the main
    thread, asleep in the loop's selector, wakes to run the handler (``asyncio.Runner``'s
    own, or the cell's). Without it, the press waited for the loop's next event: a
    ``sleep(100)``'s end."""
    here = threading.get_ident()
    outer = _private_loops.get(here)
    _private_loops[here] = loop
    try:
        with ExitStack() as stack:
            if here == MAIN_THREAD_ID:
                _waker_as_wakeup_fd(stack, loop)
            yield
    finally:
        if outer is None:
            del _private_loops[here]
        else:
            _private_loops[here] = outer


def _wake_private_loop_in(thread_id: int) -> None:
    """Wake the private loop that runs in that thread, if any. A thread blocked in its
    loop's selector runs no Python code, so an exception raised in it from another thread
    (Ctrl-C for a cell there) would wait for the loop's next event, seconds or forever."""
    loop = _private_loops.get(thread_id)
    if loop is not None:
        with suppress(RuntimeError):  # closed meanwhile
            loop.call_soon_threadsafe(int)


def raise_in_thread(thread_id: int, exc_type: type[BaseException]) -> bool:
    """Raise ``exc_type`` in another thread at its next Python bytecode; whether the thread
    was there to raise it in.

    Used when a cell busy in Python code runs in a runner's own thread: signals only reach
    the main thread, and this is how CPython lets one thread interrupt another. Never while
    the thread is in the import machinery's own code: an exception landing there between
    the acquisition of an import lock and the ``try`` that releases it leaves the lock held
    for good, and every later import in the process waits for it (a kernel restarted while
    its cell was between a print and an await hung so, in its shutdown's ``import psutil``).
    Then it is raised as soon as the thread has left that code (a module's own code,
    imported, is not that code: an import is interrupted as without the extension).
    """
    if not _in_the_import_machinery(thread_id):
        return _set_async_exc(thread_id, exc_type)
    if thread_id not in _private_api.current_frames():
        return False

    def when_out() -> None:
        deadline = time.monotonic() + STUCK_AFTER * 10
        while _in_the_import_machinery(thread_id) and time.monotonic() < deadline:
            time.sleep(0.001)
        if not _in_the_import_machinery(thread_id):
            _set_async_exc(thread_id, exc_type)

    threading.Thread(target=when_out, name="autoawait_runners interrupt", daemon=True).start()
    return True


def _set_async_exc(thread_id: int, exc_type: type[BaseException]) -> bool:
    set_async_exc = _private_api.set_async_exc
    count = set_async_exc(ctypes.c_ulong(thread_id), ctypes.py_object(exc_type))
    if count > 1:  # pragma: no cover - cannot happen with a valid id; undo as CPython advises
        set_async_exc(ctypes.c_ulong(thread_id), None)
    return bool(count == 1)


#: The import machinery's own modules (``importlib._bootstrap`` is frozen in CPython).
_IMPORT_MACHINERY = frozenset({"importlib._bootstrap", "importlib._bootstrap_external"})


def _in_the_import_machinery(thread_id: int) -> bool:
    """Whether the thread's innermost frame is the import machinery's own code."""
    frame = _private_api.current_frames().get(thread_id)
    return frame is not None and frame.f_globals.get("__name__") in _IMPORT_MACHINERY


# -- the handler (rule 1) -------------------------------------------------------------------


class CtrlCHandler:
    """A SIGINT handler of this package's: ``on_press`` while it is in use (:attr:`active`),
    and otherwise the handler it replaced, so that one installed again later by code that
    kept it (``old = signal.signal(SIGINT, h)`` in one cell, ``signal.signal(SIGINT, old)``
    in the next) acts as what the code should have had (F8): without this it routed Ctrl-C
    to a cell long gone ("Event loop is closed" after ``%unload_ext``)."""

    __slots__ = ("__weakref__", "_on_press", "active", "replaced")

    def __init__(self, on_press: Callable[[int, FrameType | None], None]) -> None:
        self._on_press = on_press
        self.active = False
        #: What was installed when this was (set by :func:`_install`).
        self.replaced: Any = signal.default_int_handler

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        if self.active:
            self._on_press(signum, frame)
        else:
            _pass_on(_shown(self.replaced), signum, frame)


def _pass_on(handler: Any, signum: int, frame: FrameType | None) -> None:
    """Call ``handler`` as Python would have (SIG_IGN and SIG_DFL are not callables:
    nothing to call)."""
    if callable(handler):
        handler(signum, frame)


def _shown(handler: Any) -> Any:
    """What code sees as the SIGINT handler when ``handler`` is installed: for one of ours,
    the handler it stands in for (see :func:`_signal_as_the_shell_has_it`)."""
    for _ in range(100):  # a chain of ours, each over the one before; never a cycle
        if not isinstance(handler, CtrlCHandler):
            return handler
        handler = handler.replaced
    return signal.default_int_handler


#: Our handlers installed now, and our wake-up fds, innermost last (main thread only).
_installed: list[CtrlCHandler] = []
_wakers: list[Waker] = []


def _install(handler: CtrlCHandler) -> None:
    """Install one of ours over whatever is there (the caller decided it may)."""
    handler.replaced = _private_api.sigint_handler()
    handler.active = True
    _private_api.set_sigint_handler(handler)
    _installed.append(handler)
    _show_what_the_shell_has()


def _uninstall(handler: CtrlCHandler) -> None:
    """Put back what ``handler`` replaced if it is still installed (code that installed its
    own meanwhile keeps it), past any of ours no longer in use."""
    handler.active = False
    if handler in _installed:
        _installed.remove(handler)
    if _private_api.sigint_handler() is handler:
        replaced = handler.replaced
        while isinstance(replaced, CtrlCHandler) and not replaced.active:
            replaced = replaced.replaced
        _private_api.set_sigint_handler(replaced)
    _show_what_the_shell_has()


# -- what code sees of SIGINT: the shell's handler, not ours (F8) --------------------------
#
# While one of ours is installed (a cell runs), code in the session sees the handler ours
# stands in for, as it would without the extension: ``signal.getsignal(SIGINT)`` gives
# Python's ``default_int_handler``, not a closure of the runner's, and ``signal.signal``
# returns it; setting it back is putting the shell's handler back, which ours goes on
# implementing until the cell ends. The same for the signal wake-up fd: ours is "none" to
# code (``signal.set_wakeup_fd`` returns -1 for it, and setting -1 puts it back). So code
# that keeps and restores them leaves the process as it found it, and libraries that take
# SIGINT or the wake-up fd only when nobody has them (``asyncio.Runner``, ``trio.run``,
# ``loop.add_signal_handler``) do in a cell what they do without the extension. The
# functions of the ``signal`` module are replaced only while one of ours is in place, and
# put back only if still ours.

_STDLIB_SIGNAL = signal.signal
_STDLIB_GETSIGNAL = signal.getsignal
_STDLIB_SET_WAKEUP_FD = signal.set_wakeup_fd


def _is_sigint(signalnum: Any) -> bool:
    try:
        return int(signalnum) == signal.SIGINT
    except (TypeError, ValueError):
        return False


def _as_python_gives_it(handler: Any) -> Any:
    """As ``signal.signal`` and ``signal.getsignal`` give a handler: SIG_DFL and SIG_IGN as
    members of ``signal.Handlers``."""
    if isinstance(handler, int):
        with suppress(ValueError):
            return signal.Handlers(handler)
    return handler


def _getsignal_as_the_shell_has_it(signalnum: Any) -> Any:
    handler = _STDLIB_GETSIGNAL(signalnum)
    if isinstance(handler, CtrlCHandler):
        return _as_python_gives_it(_shown(handler))
    return handler


def _signal_as_the_shell_has_it(signalnum: Any, handler: Any) -> Any:
    if threading.get_ident() != MAIN_THREAD_ID:
        return _signal_set_by_the_main_thread(signalnum, handler)
    if not _is_sigint(signalnum):
        return _STDLIB_SIGNAL(signalnum, handler)
    before = _shown(_private_api.sigint_handler())
    wanted = _shown(handler)  # one of ours, kept by the code: the handler it stood for
    route = _installed[-1] if _installed else None
    if route is not None and wanted is _shown(route):
        _private_api.set_sigint_handler(route)  # the shell's handler back: ours implements it
    else:
        _STDLIB_SIGNAL(signalnum, wanted)
        _say_once_per_handler(wanted, None)  # set by a cell: nothing to tell its author
    return _as_python_gives_it(before)


def _signal_set_by_the_main_thread(signalnum: Any, handler: Any) -> Any:
    """``signal.signal`` in a cell of a loop-thread runner: the main thread, which waits for
    the cell, sets it (``_main_thread``), as it would have without the extension; the
    handler runs there, as it always does. Asked from anywhere else, it fails as Python's
    does ("signal only works in main thread").

    Setting the handler that is there already changes nothing: it is how libraries ask
    whether they run in the main thread (trio's ``is_main_thread``), and it is answered as
    Python answers in this thread. Otherwise ``trio.run()`` in a cell took it for the main
    thread and set its Ctrl-C handler there, where it raised KeyboardInterrupt into the
    waiting main thread rather than into trio ("TrioInternalError").
    """
    try:
        unchanged = _shown(handler) == _shown(_STDLIB_GETSIGNAL(signalnum))
    except (TypeError, ValueError):  # not a signal: as Python says it
        unchanged = True
    if unchanged:
        return _STDLIB_SIGNAL(signalnum, handler)
    previous: list[Any] = []
    if call_in_main_thread(
        lambda: previous.append(_signal_as_the_shell_has_it(signalnum, handler))
    ):
        return previous[0]
    return _STDLIB_SIGNAL(signalnum, handler)


def _set_wakeup_fd_as_the_shell_has_it(fd: int, /, *, warn_on_full_buffer: bool = True) -> int:
    previous: int = _STDLIB_SET_WAKEUP_FD(fd, warn_on_full_buffer=warn_on_full_buffer)
    if not _wakers or threading.get_ident() != MAIN_THREAD_ID:
        return previous
    waker = _wakers[-1]
    if fd == -1:  # none, as code sees ours: ours goes on being it
        _STDLIB_SET_WAKEUP_FD(waker.write_fd, warn_on_full_buffer=False)
    return -1 if previous == waker.write_fd else previous


_getsignal_as_the_shell_has_it.__wrapped__ = _STDLIB_GETSIGNAL  # type: ignore[attr-defined]
_signal_as_the_shell_has_it.__wrapped__ = _STDLIB_SIGNAL  # type: ignore[attr-defined]
_set_wakeup_fd_as_the_shell_has_it.__wrapped__ = _STDLIB_SET_WAKEUP_FD  # type: ignore[attr-defined]

#: The functions of the ``signal`` module replaced while one of ours is in place.
_SHOWING_THE_SHELLS = (
    ("signal", _STDLIB_SIGNAL, _signal_as_the_shell_has_it),
    ("getsignal", _STDLIB_GETSIGNAL, _getsignal_as_the_shell_has_it),
    ("set_wakeup_fd", _STDLIB_SET_WAKEUP_FD, _set_wakeup_fd_as_the_shell_has_it),
)


def _show_what_the_shell_has() -> None:
    """Replace the ``signal`` module's functions while a handler or a wake-up fd of ours is
    in place, or a cell runs in a loop thread (its ``signal.signal`` is the main thread's
    to do), and put them back when none is; each only where it is the other one now."""
    on = bool(_installed or _wakers or _cells_elsewhere)
    for name, stdlib, ours in _SHOWING_THE_SHELLS:
        if getattr(signal, name) is (stdlib if on else ours):
            setattr(signal, name, ours if on else stdlib)


#: Cells the main thread waits for that run in a loop thread (main thread only).
_cells_elsewhere: list[None] = []


class cell_in_a_loop_thread:  # named as a function: used as one
    """The main thread waits here for a cell that runs in a loop thread: it serves the
    cell's calls (``_main_thread.serving_calls``, ``through`` the asyncio loop it is
    parked in, if any), so that ``signal.signal()`` and ``loop.add_signal_handler()`` in
    the cell are set in the main thread, as without the extension. Main thread only."""

    __slots__ = ("_serving",)

    def __init__(self, through: Any = None) -> None:
        self._serving = serving_calls(through)

    def __enter__(self) -> None:
        self._serving.__enter__()
        _cells_elsewhere.append(None)
        _show_what_the_shell_has()

    def __exit__(self, *exc_info: object) -> None:
        _cells_elsewhere.pop()
        _show_what_the_shell_has()
        self._serving.__exit__()


def shown_sigint_handler() -> Any:
    """The SIGINT handler as code sees it (see above): the shell's, not ours."""
    return _shown(_private_api.sigint_handler())


class Waker:
    """A socket pair whose write end is the signal wake-up fd while a cell runs.

    CPython runs the handler in the main thread only once that thread wakes up, so a main
    thread asleep in its loop's selector would not notice Ctrl-C delivered to another thread
    until the cell ended. With the write end as ``signal.set_wakeup_fd`` and the read end in
    that selector, the signal wakes it.

    ``only_way_to_wake``: the loop has no other way to wake on a signal (a loop of the
    runner's own). If other code set the wake-up fd already, it is left in place, and for
    such a loop one line says so, once. A loop running below (a kernel's, a program's) is
    most likely the one that set it (``loop.add_signal_handler``), so nothing is said.
    """

    def __init__(self, *, only_way_to_wake: bool) -> None:
        self.only_way_to_wake = only_way_to_wake
        self.told_of_foreign_fd = False
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


def _replaceable(handler: Any) -> bool:
    """Whether a cell may take SIGINT from ``handler`` while it runs (rule 1)."""
    if handler is signal.default_int_handler or isinstance(handler, CtrlCHandler | LoopSignalRelay):
        return True  # a relay is a loop's handler, as asyncio's own (``_loop_signals``)
    function = getattr(handler, "func", handler)  # asyncio.Runner's is a functools.partial
    module = getattr(function, "__module__", None) or ""
    return any(
        module.startswith(prefix)
        for library in _libraries.values()
        for prefix in library.sigint_handlers_in
    )


# Held weakly: a handler's repr (its address) comes back for a new handler once the old
# one is gone, and the new one deserves its own line.
_handlers_named: weakref.WeakSet[Any] = weakref.WeakSet()
_handler_reprs_named: set[str] = set()  # handlers that cannot be held weakly


def _say_once_per_handler(handler: Any, message: str | None) -> None:
    try:
        named = handler in _handlers_named
        _handlers_named.add(handler)
    except TypeError:  # cannot be held weakly: known by its repr
        named = repr(handler) in _handler_reprs_named
        _handler_reprs_named.add(repr(handler))
    if not named and message is not None:
        say(message)


def sigint_routed_to(
    interrupt: Callable[[FrameType | None], bool], *, waker: Waker | None = None
) -> _SigintHandlerWhile:
    """While a cell runs, send Ctrl-C (SIGINT) to ``interrupt(frame)`` instead of raising.

    ``interrupt`` runs in the signal handler, in the main thread, given the frame the signal
    interrupted: typically :func:`interrupt` for the cell. When it returns False the handler
    raises :class:`GaveUpWaiting`, so the waiting thread stops waiting. ``waker``, if given,
    becomes the signal wake-up fd, for a main thread asleep in a selector. Rule 1 says which
    handlers are replaced and restored; :class:`_SigintHandlerWhile` where the handler can
    be set from.

    One press at a time, in order: Python runs a signal handler between any two bytecodes,
    the handler's own too, so a press that comes while another is being handled (presses
    come late and close together on a loaded machine) would run inside it. The press that
    gives up waiting then raised through the one before it, half-way: a task that never
    yields, which that one was about to interrupt (rule 4), kept the loop, and every later
    cell waited behind it. A press that comes meanwhile is handled right after.
    """
    presses: list[None] = []  # come, not handled yet (append and pop are atomic)
    handling: list[None] = []  # not empty while a press is being handled

    def on_press(signum: int, frame: FrameType | None) -> None:
        presses.append(None)
        if handling:
            return  # the press being handled handles this one after it
        while presses:  # one that came as the last was done is handled too
            handling.append(None)
            try:
                while presses:
                    presses.pop()
                    if not interrupt(frame):
                        raise GaveUpWaiting
            except BaseException:
                presses.clear()  # raised where the main thread is: those go with it
                raise
            finally:
                handling.clear()

    return _SigintHandlerWhile(CtrlCHandler(on_press), waker)


@contextmanager
def embedded_shell_takes_ctrl_c() -> Iterator[bool]:
    """While an embedded shell is open in this thread, Ctrl-C is the shell's, as in IPython
    on its own: a press raises KeyboardInterrupt where the shell is (a plain cell), and a
    cell waited for takes it over as above (F7).

    Without this the program's loop library would have it: ``asyncio.run``'s handler cancels
    the program's main task (the program ends in KeyboardInterrupt when the shell closes);
    trio's waits for a loop that the shell holds up (nothing happens); a main thread that
    only waits for the shell's worker thread gets the KeyboardInterrupt (the program dies).
    Yields whether Ctrl-C reaches the shell: not when another handler is the user's, nor
    when the shell runs in a worker thread while the main thread runs no asyncio loop
    (nothing else can set the main thread's handler).
    """
    shell_thread = threading.get_ident()

    def on_press(signum: int, frame: FrameType | None) -> None:
        if threading.get_ident() == shell_thread:
            raise KeyboardInterrupt
        raise_in_thread(shell_thread, KeyboardInterrupt)
        _wake_private_loop_in(shell_thread)

    _routes_from_here.add(shell_thread)
    try:
        with _SigintHandlerWhile(CtrlCHandler(on_press)) as taken:
            yield taken
    finally:
        _routes_from_here.discard(shell_thread)


def _take_sigint(handler: CtrlCHandler) -> bool:
    """Install ``handler`` for SIGINT over a replaceable one (rule 1); whether it did (one
    line says why not, once per handler of the user's). Main thread only."""
    previous = _private_api.sigint_handler()
    if not _replaceable(previous):
        named = signal.Handlers(previous) if isinstance(previous, int) else previous
        _say_once_per_handler(
            named,
            f"SIGINT has a handler of its own ({getattr(named, '__qualname__', named)}):"
            " Ctrl-C goes to it while cells run, not to the runner",
        )
        return False
    _install(handler)
    return True


def _give_back_sigint(handler: CtrlCHandler) -> None:
    """Put back the handler :func:`_take_sigint` found, if ours is still installed (a cell
    that installed its own keeps it). Main thread only."""
    _uninstall(handler)


def _waker_as_wakeup_fd(stack: ExitStack, loop: Any) -> None:
    """Make a waker in ``loop`` the signal wake-up fd until ``stack`` closes, unless other
    code set one (then it stays theirs): a SIGINT the system hands to another thread wakes
    the main thread asleep in that loop."""
    waker = stack.enter_context(waker_in(loop, only_way_to_wake=False))
    if waker is not None and _take_wakeup_fd(waker):
        stack.callback(_give_back_wakeup_fd, waker)


def _take_wakeup_fd(waker: Waker) -> bool:
    """Make ``waker`` the signal wake-up fd, unless other code set one (rule 1); whether it
    did. Main thread only."""
    foreign_fd = _STDLIB_SET_WAKEUP_FD(waker.write_fd, warn_on_full_buffer=False)
    if foreign_fd == -1:
        _wakers.append(waker)
        _show_what_the_shell_has()
        return True
    _STDLIB_SET_WAKEUP_FD(foreign_fd)  # not ours to displace: put it back
    if waker.only_way_to_wake and not waker.told_of_foreign_fd:
        waker.told_of_foreign_fd = True
        say(
            "other code set the signal wake-up fd (loop.add_signal_handler, say): it "
            "is left in place, and Ctrl-C reaches a cell waiting at an await when the "
            "loop next wakes"
        )
    return False


def _give_back_wakeup_fd(waker: Waker) -> None:
    if waker in _wakers:
        _wakers.remove(waker)
    current_fd = _STDLIB_SET_WAKEUP_FD(-1)
    if current_fd != waker.write_fd:  # set by the cell: keep it
        _STDLIB_SET_WAKEUP_FD(current_fd)
    _show_what_the_shell_has()


#: Threads other than the main one whose Ctrl-C handling is set in the main thread: those
#: of shells embedded in a worker thread (see :func:`embedded_shell_takes_ctrl_c`).
_routes_from_here: set[int] = set()


class _SigintHandlerWhile:
    """``handler`` for SIGINT while the block runs, over a replaceable one (rule 1), and a
    waker as the signal wake-up fd; entering says whether it was installed. Both can only be
    set in the main thread.

    In the main thread they are set at once (``waker``: the waiting code's own): a class,
    not a generator, as it runs around every cell. From a shell embedded in a worker thread,
    through the asyncio loop the main thread runs (a program that does ``await
    asyncio.to_thread(embed)``), with a waker in that loop: the waiting thread's own cannot
    wake the main one. From any other thread, not at all.
    """

    __slots__ = ("_from_elsewhere", "_handler", "_taken", "_waker", "_waker_taken")

    def __init__(self, handler: CtrlCHandler, waker: Waker | None = None) -> None:
        self._handler = handler
        self._waker = waker
        self._taken = False
        self._waker_taken = False
        self._from_elsewhere: ExitStack | None = None

    def __enter__(self) -> bool:
        if threading.get_ident() == MAIN_THREAD_ID:
            self._taken = _take_sigint(self._handler)
            if not self._taken:
                return False
            self._waker_taken = self._waker is not None and _take_wakeup_fd(self._waker)
            return True
        self._from_elsewhere = ExitStack()
        return self._from_elsewhere.enter_context(_sigint_handler_from(self._handler))

    def __exit__(self, *exc_info: object) -> None:
        if self._from_elsewhere is not None:
            self._from_elsewhere.close()
            return
        if self._waker_taken:
            assert self._waker is not None
            _give_back_wakeup_fd(self._waker)
        if self._taken:
            _give_back_sigint(self._handler)


@contextmanager
def _sigint_handler_from(handler: CtrlCHandler) -> Iterator[bool]:
    """:class:`_SigintHandlerWhile` from a thread other than the main one."""
    here = threading.get_ident()
    loop = _private_api.loop_running_in(MAIN_THREAD_ID)
    if here not in _routes_from_here or loop is None:
        yield False
        return
    stack = ExitStack()

    def take() -> bool:
        if not _take_sigint(handler):
            return False
        stack.callback(_give_back_sigint, handler)
        _waker_as_wakeup_fd(stack, loop)
        return True

    taken: list[bool] = []
    if not call_in(loop, lambda: taken.append(take())):
        with suppress(RuntimeError):  # closed meanwhile: nothing was taken
            loop.call_soon_threadsafe(stack.close)  # after ``take``, whenever that runs
        yield False
        return
    try:
        yield taken[0]
    finally:
        call_in(loop, stack.close)


@contextmanager
def waker_in(loop: Any, *, only_way_to_wake: bool) -> Iterator[Waker | None]:
    """A :class:`Waker` in an asyncio loop's selector, for as long as the block runs (a
    session of the runner's own loop; one cell on a loop running below, where without one
    a Ctrl-C the system delivers to another of the process's threads, as a kernel has
    several, would be handled only when the main thread next wakes: after the cell's
    ``sleep(60)``). None for a loop that cannot watch a file descriptor."""
    waker = Waker(only_way_to_wake=only_way_to_wake)
    try:
        loop.add_reader(waker.fileno(), waker.drain)
    except (NotImplementedError, RuntimeError):  # a loop without readers, or closed
        waker.close()
        yield None
        return
    try:
        yield waker
    finally:
        with suppress(Exception):  # closed by a cell, or by its owner
            loop.remove_reader(waker.fileno())
        waker.close()


# -- waiting for a cell: the one installer ---------------------------------------------------


@dataclass
class CellControls:
    """How Ctrl-C reaches one cell, given by the runner that waits for it.

    Every callable is called from the main thread (``cancel`` from its signal handler) and
    must be safe there; each may look up its target late (a cell handed over again after
    its session died is another task, in another thread).
    """

    cell: CellCoroutine[Any]
    #: The runner's name, for the one line said when a cell is given up on.
    runner: str
    #: The thread the cell's code runs in; None while it has not been handed over.
    thread: Callable[[], int | None]
    #: Cancel the cell's task in its loop (thread-safe).
    cancel: Callable[[], None]
    #: Wait at most that many seconds for the cell to end; whether it did.
    wait: Callable[[float], bool]
    #: Whether the cell has ended (its outcome is known).
    ended: Callable[[], bool]
    #: On a loop running below (a kernel's, an embed host's): tell the waiting code to stop
    #: waiting and raise KeyboardInterrupt from its own frame. None: the handler raises
    #: :class:`GaveUpWaiting` wherever the main thread is (see the module documentation).
    stop_waiting: Callable[[], None] | None = None


class waiting_for:  # named as a function: used as one (``with waiting_for(controls):``)
    """While the block waits for the cell: each Ctrl-C goes to it (rules 1 to 5), and if
    the block ends before the cell (the press that stops waiting, rule 3), the cell gets
    its last chance and one line says what is left behind. ``waker``: see
    :func:`sigint_routed_to`. Enter it before handing the cell over: a Ctrl-C at any point
    then reaches the cell, never the waiting code. (A class: it runs around every cell.)"""

    __slots__ = ("__weakref__", "_controls", "_route")

    def __init__(self, controls: CellControls, *, waker: Waker | None = None) -> None:
        self._controls = controls
        self._route = sigint_routed_to(self._on_press, waker=waker)

    def interrupt_at_next_await(self) -> None:
        """From any thread: cancel the cell, which gets the cancellation as the interruption
        where it waits, or at its next await. Code it runs meanwhile is not interrupted: only
        the main thread's handler may raise in it."""
        controls = self._controls
        if controls.thread() is None or controls.ended():
            return
        controls.cell.pending_interrupt = True
        controls.cancel()

    def _on_press(self, landed: FrameType | None) -> bool:
        controls = self._controls
        thread = controls.thread()
        if thread is None:
            return True  # not handed over yet: nothing to interrupt
        if interrupt(controls.cell, cancel=controls.cancel, cell_thread=thread, landed=landed):
            return True
        if controls.stop_waiting is None:
            return False  # the handler raises GaveUpWaiting where it is
        controls.stop_waiting()
        return True

    def __enter__(self) -> None:
        self._route.__enter__()
        _waited_for.add(self)

    def __exit__(self, *exc_info: object) -> None:
        _waited_for.discard(self)
        controls = self._controls
        try:
            if not controls.ended():
                give_up(
                    controls.cell,
                    cancel=controls.cancel,
                    wait=controls.wait,
                    runner=controls.runner,
                )
        finally:
            self._route.__exit__(*exc_info)


#: The cells waited for now (a cell in a cell, a kernel's subshells: more than one).
_waited_for: weakref.WeakSet[waiting_for] = weakref.WeakSet()


def interrupt_cells_at_their_next_await() -> None:
    """From any thread, interrupt every cell waited for where it waits, or at its next
    await: a kernel asked to shut down ends the cells it runs first."""
    for waiting in list(_waited_for):
        waiting.interrupt_at_next_await()


# -- a loop the prompt runs, held by a task that does not yield ---------------------------

#: How long the session loop may run other code, at an idle prompt, before Ctrl-C is made
#: a signal again (see :func:`reaches_a_busy_prompt_loop`). Short: a press before that is
#: a key, read when the loop lets go.
BUSY_AFTER = 0.3


@contextmanager
def reaches_a_busy_prompt_loop(tty_fd: int | None) -> Iterator[None]:
    """Around the prompt's input hook while it runs a loop in the main thread (the asyncio
    runner's session loop at an idle prompt).

    What does not work without it: while prompt_toolkit waits for input the terminal is in
    raw mode, so Ctrl-C is a key to be read, not a signal; and what reads it is the prompt's
    loop, which waits for the input hook, which runs the session loop. A background task
    that never yields holds all three: the terminal is frozen for good, and Ctrl-C too.

    So a watchdog thread looks at the main thread while the hook runs. Once the loop has run
    other code for :data:`BUSY_AFTER`, it turns the terminal's ISIG on (with NOFLSH, so
    nothing typed is flushed): the next Ctrl-C is a signal, and the handler installed here
    raises KeyboardInterrupt in the code that holds the loop (its task fails and is
    reported). As soon as the loop waits for events again the terminal is back in raw mode.
    The handler passes every other SIGINT on to the one it found.
    """
    if tty_fd is None or threading.current_thread() is not threading.main_thread():
        yield
        return
    import termios

    try:
        raw = termios.tcgetattr(tty_fd)
    except (termios.error, OSError):  # not a terminal
        yield
        return
    if raw[3] & termios.ISIG:  # not in raw mode: Ctrl-C is a signal already
        yield
        return
    signalling = list(raw)
    signalling[3] = raw[3] | termios.ISIG | termios.NOFLSH
    main = threading.get_ident()
    busy = threading.Event()
    done = threading.Event()

    # The prompt's loop learns of SIGINT through the wake-up fd, whatever the handler does
    # (it aborts the prompt, and what was typed): the press for the busy loop must not
    # reach it, every other does, as before.
    prompt_fd = _STDLIB_SET_WAKEUP_FD(-1)

    def on_press(signum: int, frame: FrameType | None) -> None:
        if busy.is_set() and not _in_loop_plumbing(frame):
            raise KeyboardInterrupt
        if prompt_fd != -1:
            with suppress(OSError):
                os.write(prompt_fd, bytes([signum]))
        _pass_on(on_sigint.replaced, signum, frame)

    on_sigint = CtrlCHandler(on_press)

    def set_mode(attrs: list[Any]) -> None:
        with suppress(termios.error, OSError):
            termios.tcsetattr(tty_fd, termios.TCSANOW, attrs)

    def watch() -> None:
        busy_since: float | None = None
        while not done.wait(BUSY_AFTER / 3):
            if _waiting_for_events(main):
                busy_since = None
                if busy.is_set():
                    busy.clear()
                    set_mode(raw)
            elif busy_since is None:
                busy_since = time.monotonic()
            elif not busy.is_set() and time.monotonic() - busy_since >= BUSY_AFTER:
                busy.set()
                set_mode(signalling)

    _install(on_sigint)
    watchdog = threading.Thread(target=watch, name="autoawait_runners prompt watchdog")
    watchdog.start()
    try:
        yield
    finally:
        done.set()
        watchdog.join()
        if busy.is_set():
            set_mode(raw)
        _uninstall(on_sigint)
        current_fd = _STDLIB_SET_WAKEUP_FD(prompt_fd)
        if current_fd != -1:  # set meanwhile by other code: keep it
            _STDLIB_SET_WAKEUP_FD(current_fd)


def _in_loop_plumbing(frame: FrameType | None) -> bool:
    """Whether the main thread is in a loop's own code (or this package's), where a
    KeyboardInterrupt would end the loop's step rather than fail the task that holds it."""
    if frame is None:
        return True
    name = str(frame.f_globals.get("__name__"))
    return frame.f_code.co_filename.startswith(PACKAGE_DIR) or any(
        name.startswith(prefix) for prefix in ("asyncio.", "selectors")
    )


def run_past_interrupts(
    run: Callable[[], T], *, survives: Callable[[BaseException], bool] = lambda exc: True
) -> T:
    """``run()`` (a loop's ``run_forever``, a kernel's run), again after each
    KeyboardInterrupt or SystemExit that a task raised through it.

    asyncio and curio let a task's KeyboardInterrupt or SystemExit end the loop's run (the
    task keeps it as its failure, and is reported); so does a Ctrl-C sent to a busy cell's
    thread that lands just after the cell yielded. The session must survive them (F1), and
    ``survives(exc)`` may say otherwise (or tidy the exception first). The press that stops
    waiting for a cell (:class:`GaveUpWaiting`) always ends the run: it is meant to.
    """
    while True:
        try:
            return run()
        except (KeyboardInterrupt, SystemExit) as exc:
            if isinstance(exc, GaveUpWaiting) or not survives(exc):
                raise
