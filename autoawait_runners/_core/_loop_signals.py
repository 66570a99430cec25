"""A loop's signal handlers, added in a thread other than the main one.

What does not work, and why this module exists: Python lets only the main thread set a
signal handler or the signal wake-up fd, so asyncio refuses ``loop.add_signal_handler()`` in
any other thread ("set_wakeup_fd only works in main thread of the main interpreter"). The
``thread``, ``uvloop``, ``trio`` and ``curio`` runners run every cell in their loop's thread:
a server a cell runs (``asyncio.run(hypercorn.asyncio.serve(app, config))``, aiohttp's
``web.run_app(app)``), which stops on Ctrl-C or SIGTERM through such handlers, failed to
start. Without the extension the cell runs in the main thread, and the server stops on
Ctrl-C.

So while a loop-thread runner's session is on (:class:`loop_signals_relayed`), asyncio's
``add_signal_handler`` called in another thread asks the main thread
(``_main_thread.call_in_main_thread``) to install a :class:`LoopSignalRelay`: a handler that
hands the signal to the loop (``call_soon_threadsafe``), as asyncio's wake-up fd would have.
``remove_signal_handler``, and ``close()`` through it, puts back what the relay replaced,
if the relay is still installed. The relay is set with the ``signal`` module's functions as
code sees them (``_ctrl_c``): a SIGINT relay set while a cell runs stands over the shell's
handler, so Ctrl-C goes to the loop, as in a script; put back, the cell's Ctrl-C handling is
back. A relay is a loop's handler, as asyncio's own: a cell run later takes Ctrl-C over from
it while it runs (``_ctrl_c``, rule 1).

Not covered: uvloop's compiled loop (``uvloop.run()`` in a cell), whose method refuses
another thread itself; trio's ``open_signal_receiver``. A relay left installed by a loop
that could not reach the main thread to take it off (or was never closed) passes the signal
on to what it replaced, and takes itself off.
"""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

from . import _private_api
from ._main_thread import MAIN_THREAD_ID, call_in_main_thread

#: The loop attribute holding its relays: signal number -> :class:`LoopSignalRelay`.
RELAYS = "_autoawait_runners_signal_relays"


class LoopSignalRelay:
    """The main thread's handler for a signal a loop in another thread handles."""

    __slots__ = ("active", "args", "callback", "loop", "replaced", "signum")

    def __init__(
        self, loop: asyncio.AbstractEventLoop, signum: int, callback: Callable[..., object]
    ) -> None:
        self.loop = loop
        self.signum = signum
        self.callback = callback
        self.args: tuple[Any, ...] = ()
        #: False once the loop removed it: a signal then goes where it went before.
        self.active = True
        self.replaced: Any = signal.SIG_DFL

    def install(self) -> None:
        """Main thread."""
        self.replaced = signal.signal(self.signum, self)

    def uninstall(self) -> None:
        """Main thread: put back what it replaced, if it is still installed."""
        installed: object = signal.getsignal(self.signum)
        if installed is self:
            signal.signal(self.signum, signal.SIG_DFL if self.replaced is None else self.replaced)

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        if self.active:
            try:
                self.loop.call_soon_threadsafe(self.callback, *self.args)
                return
            except RuntimeError:  # closed, and nothing took this off
                self.active = False
        self.uninstall()
        if callable(self.replaced):
            self.replaced(signum, frame)
        elif self.replaced in (signal.SIG_DFL, None):
            signal.raise_signal(signum)  # what it does by default (SIGTERM ends the process)


def _relays(loop: asyncio.AbstractEventLoop) -> dict[int, LoopSignalRelay]:
    relays: dict[int, LoopSignalRelay] | None = getattr(loop, RELAYS, None)
    if relays is None:
        relays = {}
        setattr(loop, RELAYS, relays)
    return relays


_LOOP_CLASS: Any = getattr(asyncio, "SelectorEventLoop", None)
_ADD: Any = getattr(_LOOP_CLASS, "add_signal_handler", None)
_REMOVE: Any = getattr(_LOOP_CLASS, "remove_signal_handler", None)


def _add_signal_handler(
    loop: asyncio.AbstractEventLoop, sig: int, callback: Callable[..., object], *args: Any
) -> None:
    try:
        # asyncio's own checks first (a coroutine, a bad signal number, a closed loop): they
        # fail as they would; only the main thread's part is done differently.
        _ADD(loop, sig, callback, *args)
        return
    except RuntimeError:
        handlers = _private_api.signal_handlers(loop)
        if threading.get_ident() == MAIN_THREAD_ID or loop.is_closed() or handlers is None:
            raise
        relay = _relays(loop).get(sig)
        fresh = relay is None or not relay.active
        if fresh:
            relay = LoopSignalRelay(loop, sig, callback)
        assert relay is not None
        relay.callback, relay.args = callback, args
        if fresh and not call_in_main_thread(relay.install):
            raise  # the main thread cannot be reached: as without a relay
    _relays(loop)[sig] = relay
    handlers[sig] = asyncio.Handle(callback, args, loop, None)  # close() removes it


def _remove_signal_handler(loop: asyncio.AbstractEventLoop, sig: int) -> bool:
    relay = getattr(loop, RELAYS, {}).pop(sig, None)
    if relay is None:
        return bool(_REMOVE(loop, sig))
    relay.active = False
    handlers = _private_api.signal_handlers(loop)
    if handlers is not None:
        handlers.pop(sig, None)
    call_in_main_thread(relay.uninstall)  # else it takes itself off at the next signal
    return True


_using: list[None] = []  # one entry per session that relays


class loop_signals_relayed:  # named as a function: used as one
    """While any such block runs, asyncio loops in other threads than the main one can
    add signal handlers (see above). The loop class's methods are replaced at the first
    block and put back after the last, only if still ours."""

    __slots__ = ()

    def __enter__(self) -> None:
        if _LOOP_CLASS is None or _ADD is None or _REMOVE is None:
            return
        if not _using and _LOOP_CLASS.add_signal_handler is _ADD:
            _LOOP_CLASS.add_signal_handler = _add_signal_handler
            _LOOP_CLASS.remove_signal_handler = _remove_signal_handler
        _using.append(None)

    def __exit__(self, *exc_info: object) -> None:
        if _LOOP_CLASS is None or not _using:
            return
        _using.pop()
        if not _using and _LOOP_CLASS.add_signal_handler is _add_signal_handler:
            _LOOP_CLASS.add_signal_handler = _ADD
            _LOOP_CLASS.remove_signal_handler = _REMOVE
