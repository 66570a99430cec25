"""The session at the idle prompt, with a GUI's event loop waiting in it (``%gui``).

``%gui tk``, ``%gui qt`` and ``%matplotlib`` give the terminal prompt one *GUI hook* (one of
IPython's ``pt_inputhooks``): called while the prompt waits for input, it runs the toolkit's
events until its context's file descriptor is readable. Without the extension the prompt's
thread has nothing else to do. With it, the session has: its loop runs at the idle prompt
(R2) in the thread its cells run in, and the GUI must run there too, since what it serves
(a Tk window, a Qt timer) the cells made, in their thread. One thread, two event loops: one
waits inside the other.

The session's loop is the outer one, and the GUI waits in its place: whenever the loop would
sleep waiting for events, a helper thread does that wait, and the GUI hook runs meanwhile,
with a context whose descriptor becomes readable when the wait returns (:func:`gui_while`).
Nothing polls; idle, both wait. (prompt_toolkit's ``InputHookSelector`` composes its own loop
with the hook the same way.) Where each loop waits:

- an asyncio loop (the ``asyncio`` and ``trio-guest`` runners', in the main thread; the
  ``thread`` runner's, in its own) in its selector, swapped for a :class:`GuiSelector` while
  the prompt waits (:func:`waiting_in_gui`); curio's kernel in one too, given at its start;
- trio's run in its I/O backend, whose descriptor is readable when any of trio's waits is:
  the trio runner waits there once every other task waits (``_trio``);
- a loop none of this reaches into (uvloop) takes turns with the GUI instead
  (:func:`in_turns`): the GUI for at most :data:`TURN`, then what became ready in the loop.
  Its background work then runs up to a turn late while the prompt waits with a GUI on.

What a GUI callback schedules on the session loop without waking it
(``asyncio.create_task`` in a Tk callback) starts when the loop next wakes; without the
extension there is no loop to schedule on at the prompt at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import select
import selectors
import sys
import threading
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any, TypeVar

from .._core import _ctrl_c, _private_api
from .._core._selector_around import SelectorAround
from ._base import GuiHook

T = TypeVar("T")

#: The longest the GUI runs before a loop that takes turns with it (uvloop) runs again.
TURN = 0.02


def gui_while(gui: GuiHook, wait: Callable[[], T]) -> T:
    """Run ``wait()`` (a loop's wait for events) in a helper thread, and ``gui`` here until
    it returns; return what it returned."""
    from prompt_toolkit.eventloop.inputhook import InputHookContext

    outcome: list[Any] = []
    # A pipe per wait: an exception leaves the helper behind (see below), still owning
    # its end, which it closes itself.
    read_end, write_end = os.pipe()

    def helper() -> None:
        try:
            outcome.append(wait())
        except BaseException as exc:  # raised in the loop's own thread
            outcome.append(exc)
        finally:
            with contextlib.suppress(OSError):  # nobody waits any more
                os.write(write_end, b"x")
            os.close(write_end)

    thread = threading.Thread(target=helper, name="autoawait_runners GUI wait", daemon=True)
    try:
        with _ctrl_c.waits_in_another_loop():
            thread.start()
            gui(InputHookContext(read_end, lambda: bool(outcome)))
            # The hook may return before the wait does (Tk with no window yet): the
            # loop's wait is what ends this one, as it would without a GUI.
            select.select([read_end], [], [])
            thread.join()
    finally:
        # KeyboardInterrupt, SystemExit from the GUI's code: they go to the loop now. The
        # helper's wait ends with the loop's next event; what it saw, the loop sees again
        # (level-triggered) in its next wait.
        os.close(read_end)
    if isinstance(outcome[0], BaseException):
        raise outcome[0]
    return outcome[0]  # type: ignore[no-any-return]


class GuiSelector(SelectorAround):
    """A selector whose waits run :attr:`gui` meanwhile, when it is set."""

    def __init__(self, selector: selectors.BaseSelector) -> None:
        super().__init__(selector)
        #: The GUI hook to run while a wait lasts; None: waits are the selector's own.
        self.gui: GuiHook | None = None

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        gui = self.gui
        if gui is None or (timeout is not None and timeout <= 0):  # nothing to fill
            return self.selector.select(timeout)
        return gui_while(gui, lambda: self.selector.select(timeout))


@contextlib.contextmanager
def waiting_in_gui(loop: asyncio.AbstractEventLoop, gui: GuiHook | None) -> Iterator[bool]:
    """While the block runs, the asyncio ``loop`` waits for events in ``gui``. False, and
    nothing changed, with no ``gui``, or for a loop without a selector of its own (uvloop)."""
    own = _private_api.loop_selector(loop)
    if gui is None or not isinstance(own, selectors.BaseSelector):
        yield False
        return
    waiting = GuiSelector(own)
    waiting.gui = gui
    _private_api.set_loop_selector(loop, waiting)
    try:
        yield True
    finally:
        if _private_api.loop_selector(loop) is waiting:
            _private_api.set_loop_selector(loop, own)


@contextlib.contextmanager
def readable_future(
    loop: asyncio.AbstractEventLoop, fds: Sequence[int]
) -> Iterator[asyncio.Future[None]]:
    """A future of ``loop`` that one of ``fds`` becoming readable resolves, while the block
    runs."""
    future: asyncio.Future[None] = loop.create_future()

    def on_readable() -> None:
        if not future.done():
            future.set_result(None)

    for fd in fds:
        loop.add_reader(fd, on_readable)
    try:
        yield future
    finally:
        for fd in fds:
            loop.remove_reader(fd)


async def until_readable(fds: Sequence[int], gui: GuiHook) -> None:
    """In an asyncio loop: run the loop until one of ``fds`` is readable, waiting in
    ``gui`` whenever it would sleep; a loop without a selector takes turns with it."""
    loop = asyncio.get_running_loop()
    with waiting_in_gui(loop, gui) as waiting:
        if waiting:
            with readable_future(loop, fds) as readable_now:
                await readable_now
            return
    await in_turns(gui, fds, lambda: asyncio.sleep(0))


def readable(fds: Sequence[int]) -> bool:
    """Whether one of ``fds`` is readable now."""
    return bool(select.select(list(fds), [], [], 0)[0])


async def in_turns(
    gui: GuiHook, fds: Sequence[int], pause: Callable[[], Awaitable[object]]
) -> None:
    """Run ``gui`` in turns of at most :data:`TURN`, and ``await pause()`` (the library's
    ``sleep(0)``: its ready work, a look at its I/O) between turns, until one of ``fds`` is
    readable. For a loop whose wait for events cannot be reached."""
    from prompt_toolkit.eventloop.inputhook import InputHookContext

    turn_ends, end_turn = os.pipe()
    os.set_blocking(end_turn, False)  # a turn not taken for long fills it: one is enough
    turn_started, over = threading.Event(), threading.Event()

    def end_each_turn() -> None:  # one thread for all turns: turns are many
        while turn_started.wait() and not over.is_set():
            turn_started.clear()
            select.select(list(fds), [], [], TURN)
            with contextlib.suppress(BlockingIOError):
                os.write(end_turn, b"x")

    timer = threading.Thread(target=end_each_turn, name="autoawait_runners GUI turns", daemon=True)
    timer.start()
    try:
        while not readable(fds):
            turn_started.set()
            with _ctrl_c.waits_in_another_loop():
                gui(InputHookContext(turn_ends, lambda: readable([turn_ends])))
                select.select([turn_ends], [], [])  # the hook may return early
            os.read(turn_ends, 4096)
            await pause()
    finally:
        over.set()
        turn_started.set()
        timer.join()
        os.close(turn_ends)
        os.close(end_turn)


class tk_kept_past_this_thread:  # named as a function: used as one (a with block)
    """Around a loop thread's life: the Tk interpreters its cells made are kept for good
    when it ends.

    Tcl deletes an interpreter only in the thread that made it; from any other it aborts
    the process ("Tcl_AsyncDelete: async handler deleted by the wrong thread"). A cell of a
    thread runner makes its Tk in the loop thread, which ends with the session, while the
    window lives on in the user's namespace: destroyed, then let go (at exit, or after a
    switch of runner), it took IPython down. Kept, it is never deleted, and the process
    exits as it would without the extension. Only what the thread's time added is kept,
    and only if tkinter was imported (found through the garbage collector's objects).
    """

    __slots__ = ("_before",)

    def __enter__(self) -> None:
        self._before = {id(app) for app in _tk_interpreters()}

    def __exit__(self, *exc_info: object) -> None:
        import ctypes

        for app in _tk_interpreters():
            if id(app) not in self._before:
                ctypes.pythonapi.Py_IncRef(ctypes.py_object(app))


def _tk_interpreters() -> list[Any]:
    """The Tk interpreters of the tkinter objects alive now (none if tkinter is not in use)."""
    tkinter = sys.modules.get("tkinter")
    if tkinter is None:
        return []
    import gc

    apps = {id(obj.tk): obj.tk for obj in gc.get_objects() if isinstance(obj, tkinter.Misc)}
    return [app for app in apps.values() if app is not None]
