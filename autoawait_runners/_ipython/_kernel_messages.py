"""Jupyter glue, ipykernel 6: the frontend's comm messages are handled while a cell runs.

ipykernel 6 takes the shell channel's messages one at a time, from one queue, so a comm
message (a slider moved, a button clicked) waits behind the cell that awaits it: for good.
ipykernel 7 hands comm messages over at once while a cell runs; this does the same for 6.
While a runner's cell runs (waiting parked in the kernel's loop, which reads messages
meanwhile), a ``comm_open``, ``comm_msg`` or ``comm_close`` put in the queue is handled at
once, in the kernel's main thread, by 6's own handler for it, with a busy and an idle status
of its own (``_kernel_comms``). Every other message keeps its place in the queue.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from .._runners._base import add_cell_setup
from ._kernel_comms import beside_a_cell

if TYPE_CHECKING:
    from ._extension import Extension

COMM_MESSAGES = frozenset({"comm_open", "comm_msg", "comm_close"})


def install(extension: Extension) -> None:
    kernel: Any = getattr(extension.shell, "kernel", None)
    if not extension.in_kernel or kernel is None or hasattr(kernel, "shell_main"):
        return  # not a kernel, or ipykernel 7, which does it itself

    def cell_running() -> bool:
        return bool(getattr(extension.active, "cells_running", 0))

    def setup() -> Callable[[], None]:
        # The queue is made when the kernel starts, after a configured extension loads: it
        # is taken over at the first cell (in the kernel's thread, here).
        queue = getattr(kernel, "msg_queue", None)
        if queue is not None and "put_nowait" not in vars(queue):
            extension.changes.set_attribute(
                queue, "put_nowait", _handling_comms_at_once(kernel, queue, cell_running)
            )
        return _nothing

    extension.changes.on_undo(add_cell_setup(setup))


def _nothing() -> None:
    pass


def _handling_comms_at_once(
    kernel: Any, queue: Any, cell_running: Callable[[], bool]
) -> Callable[[Any], None]:
    queue_it = type(queue).put_nowait.__get__(queue)

    def put_nowait(item: Any) -> None:
        _, dispatch, args = item
        if not (cell_running() and args and dispatch == kernel.dispatch_shell):
            queue_it(item)
            return
        idents, frames = kernel.session.feed_identities(args[0], copy=False)
        try:
            # A peek: without the content, the message's signature is not recorded as seen,
            # and the kernel can take it in its turn.
            kind = kernel.session.deserialize(frames, content=False, copy=False)["header"][
                "msg_type"
            ]
        except Exception:  # left to the kernel, which logs it in its turn
            kind = None
        if kind not in COMM_MESSAGES:
            queue_it(item)
            return
        try:
            message = kernel.session.deserialize(frames, content=True, copy=False)
        except Exception:
            kernel.log.error("Invalid message", exc_info=True)
            return
        # Handled as part of the cell's request: the parent is left alone, which 6 also uses
        # for where the output of the runner's thread goes (it goes by one global parent
        # there), and the cell, released by this very message, prints at once.
        try:
            with beside_a_cell():  # its status is sent by the handler (_kernel_comms)
                handled = kernel.shell_handlers[kind](kernel.shell_stream, idents, message)
        except Exception:
            kernel.log.error("Exception in %s handler:", kind, exc_info=True)
            return
        if inspect.isawaitable(handled):  # handed over to the runner's thread (_kernel_comms)
            task = asyncio.ensure_future(_logged(handled, kernel, kind))
            _handling.add(task)  # the loop keeps only a weak reference
            task.add_done_callback(_handling.discard)

    return put_nowait


#: The handlers the kernel waits for, each in a task of its loop.
_handling: set[asyncio.Future[None]] = set()


async def _logged(handled: Awaitable[Any], kernel: Any, kind: str) -> None:
    try:
        await handled
    except Exception:
        kernel.log.error("Exception in %s handler:", kind, exc_info=True)
