"""Jupyter glue: while a cell runs, a comm's callbacks run where the cells run (K4).

On stock ipykernel a cell and a comm's callbacks (a widget's ``observe``, ``on_click``,
``on_msg``) share one thread and one loop, and code written for it relies on that::

    reply = asyncio.get_running_loop().create_future()
    comm.on_msg(lambda message: reply.set_result(message))
    await reply

ipykernel's own tests do it. The ``thread``, ``uvloop`` and ``trio`` runners run cells in a
thread of their own, while ipykernel handles the frontend's messages in its main thread: a
callback there would touch the cell's loop from another thread, which asyncio does not
notice (the cell waits until its timeout) and trio refuses. So while a cell of such a runner
runs, ipykernel's handler of each ``comm_open``, ``comm_msg`` and ``comm_close`` runs in the
runner's thread, between two steps of its loop (``Runner.call_soon_where_cells_run``), in
the context the kernel handled the message in (its parent request: where output goes and
which subshell a reply goes to), and the kernel waits for it without blocking its own loop.
Messages keep their order: once one was handed over, the ones after it follow it there
until it has run. Between cells, callbacks run in the kernel's main thread, as they always
did. The other runners' cells run in the kernel's main thread (``asyncio``, ``trio-guest``,
``embed``), or their library has nothing a callback could set (``curio``): the handlers run
in place.

A comm message handled while a cell runs is answered, as every request is, with a busy
status and an idle one whose parent it is. The kernel sends none then (ipykernel 7's
concurrent dispatch; 6's, see ``_kernel_messages``), and the widgets' frontend holds back a
widget's next change until the idle for its last one comes: a slider a cell awaited never
sent another value, on a stock ipykernel 7 too.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from .._core import _private_api
from .._runners._asyncio_session import resolve_soon

if TYPE_CHECKING:
    from ._extension import Extension

COMM_MESSAGES = ("comm_open", "comm_msg", "comm_close")

#: How often the kernel, waiting for a handler it handed over, checks that the session that
#: was to run it still runs (one that ended meanwhile leaves the handler to the kernel).
CHECK_EVERY = 0.5


#: True in the kernel's handling of a comm message beside a running cell (see above).
_beside_a_cell: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "autoawait_runners.comm_beside_a_cell", default=False
)


@contextmanager
def beside_a_cell() -> Iterator[None]:
    """Around the kernel's call of a comm handler while a cell runs, where it sends no
    status for the message (``_kernel_messages``, for ipykernel 6)."""
    token = _beside_a_cell.set(True)
    try:
        yield
    finally:
        _beside_a_cell.reset(token)


def install(extension: Extension) -> None:
    kernel: Any = getattr(extension.shell, "kernel", None)
    handlers = getattr(kernel, "shell_handlers", None)
    if not extension.in_kernel or not isinstance(handlers, dict):
        return
    handed_over = _HandedOver()
    for kind in COMM_MESSAGES:
        handler = handlers.get(kind)
        if handler is None:
            continue
        where = _answered(kernel, _where_cells_run(handler, extension, handed_over))
        handlers[kind] = where
        extension.changes.on_undo(_put_back, handlers, kind, where, handler)
    dispatch = getattr(kernel, "dispatch_shell", None)
    if dispatch is not None and "concurrent" in inspect.signature(dispatch).parameters:
        extension.changes.set_attribute(kernel, "dispatch_shell", _noting_concurrency(dispatch))


def _noting_concurrency(dispatch: Callable[..., Any]) -> Callable[..., Any]:
    """ipykernel 7's ``dispatch_shell``, noting a comm message dispatched beside a running
    cell (``concurrent``, in a task of its own: the note stays in that task's context)."""

    async def dispatch_shell(*args: Any, concurrent: bool = False, **kwargs: Any) -> Any:
        if concurrent:
            _beside_a_cell.set(True)
        return await dispatch(*args, concurrent=concurrent, **kwargs)

    return dispatch_shell


def _answered(kernel: Any, handle: Callable[..., Any]) -> Callable[..., Any]:
    """``handle``, with the busy and idle statuses the kernel leaves out beside a cell."""

    def answered(stream: Any, idents: Any, message: Any) -> Any:
        if not _beside_a_cell.get():
            return handle(stream, idents, message)
        return _with_its_status(kernel, message, handle, (stream, idents, message))

    answered.__wrapped__ = handle  # type: ignore[attr-defined]
    return answered


async def _with_its_status(
    kernel: Any, message: Any, handle: Callable[..., Any], arguments: tuple[Any, ...]
) -> None:
    _private_api.publish_kernel_status(kernel, "busy", message)
    try:
        handled = handle(*arguments)
        if inspect.isawaitable(handled):
            await handled
    finally:
        for stream in (sys.stdout, sys.stderr):  # what the handler printed comes first
            if stream is not None:
                stream.flush()
        _private_api.publish_kernel_status(kernel, "idle", message)


def _put_back(handlers: dict[str, Any], kind: str, ours: Any, found: Any) -> None:
    if handlers.get(kind) is ours:  # else replaced since: theirs now
        handlers[kind] = found


class _HandedOver:
    """How many handlers were handed over and have not run yet (their followers go the
    same way, to keep the order)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.pending = 0

    def add(self, delta: int) -> None:
        with self._lock:
            self.pending += delta


def _where_cells_run(
    handler: Callable[..., Any], extension: Extension, handed_over: _HandedOver
) -> Callable[..., Any]:
    def handle(stream: Any, idents: Any, message: Any) -> Any:
        runner = extension.active
        hand_over = getattr(runner, "call_soon_where_cells_run", None)
        if hand_over is None or not (getattr(runner, "cells_running", 0) or handed_over.pending):
            return handler(stream, idents, message)
        call = _Call(handler, (stream, idents, message), handed_over)
        if not hand_over(call.run):
            call.abandon()
            return handler(stream, idents, message)
        return call.outcome(runner)

    handle.__wrapped__ = handler  # type: ignore[attr-defined]
    return handle


class _Call:
    """One handler call handed over: run once, by whoever claims it first (the runner's
    thread, or the kernel if the session ended before it ran), in the context of the
    kernel's handling of the message; its outcome goes back to the kernel's loop."""

    def __init__(
        self, handler: Callable[..., Any], arguments: tuple[Any, ...], handed_over: _HandedOver
    ) -> None:
        self._handler = handler
        self._arguments = arguments
        self._context = contextvars.copy_context()
        self._loop = asyncio.get_running_loop()
        self._done: asyncio.Future[Any] = self._loop.create_future()
        self._claimed = threading.Lock()
        self._error: BaseException | None = None
        self._handed_over = handed_over
        handed_over.add(1)

    def run(self) -> None:
        if not self._claimed.acquire(blocking=False):
            return
        try:
            self._context.run(self._handler, *self._arguments)
        except BaseException as exc:  # raised in the kernel, which logs it as its own
            self._error = exc
        finally:
            self._handed_over.add(-1)
            resolve_soon(self._loop, self._done)

    def abandon(self) -> None:
        """Not handed over after all: the kernel runs the handler itself."""
        self._claimed.acquire(blocking=False)
        self._handed_over.add(-1)

    async def outcome(self, runner: Any) -> None:
        while True:
            done, _ = await asyncio.wait([self._done], timeout=CHECK_EVERY)
            if done:
                error, self._error = self._error, None
                if error is not None:
                    raise error
                return
            if not getattr(runner, "started", True) and self._claimed.acquire(blocking=False):
                # The session ended before its loop ran the handler: run it here, once.
                self._handed_over.add(-1)
                self._context.run(self._handler, *self._arguments)
                return
