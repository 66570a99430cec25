"""Jupyter glue: a kernel asked to shut down while a runner's cell runs ends as quietly as
without the extension.

jupyter_client's restart (and its shutdown) interrupts the kernel, then asks it to shut
down. A cell that the kernel's own asyncio integration awaits does not end at the interrupt:
its loop stops, and the process ends without a reply to it. A runner's cell does end at the
interrupt (R5), but a few milliseconds later, in its own thread; ipykernel 7 has stopped
its shell channel's thread by then, and sends the cell's reply on a closed socket (``ZMQError:
Socket operation on non-socket``, logged by the old kernel). Asked to shut down without an
interrupt, the kernel cannot stop at all: the cell holds the kernel's main thread, parked in
its loop, until the client gives up waiting and kills the process (its exit clean-up, the
session's history among it, never runs).

So the shutdown first interrupts a runner's cells where they wait (or at their next
await), as the interrupt button does, and waits (at most :data:`WAIT_FOR_THE_CELLS`) until
they have ended and the kernel's main thread is back in its loop, their replies sent; then
it shuts down as before, and the process ends at once, through its exit clean-up.

That exit clean-up has a race of ipykernel's own, with the extension or without: the
control thread, having handled the shutdown request, still announces "idle" on IOPub while
the main thread, its loop stopped, already closes IOPub at exit; the announcement's send
then waits for a reader that is gone, the exit waits for the control thread, and the client
kills the kernel (about one restart in ten on Python 3.15). So the exit first waits (at
most :data:`WAIT_FOR_THE_CELLS`) for the control thread to end.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import inspect
import time
from typing import TYPE_CHECKING, Any

from .._core import _ctrl_c
from .._core._messages import SHUTDOWN_TIMEOUT

if TYPE_CHECKING:
    from ._extension import Extension

#: How long a shutdown waits for the cells it interrupted.
WAIT_FOR_THE_CELLS = SHUTDOWN_TIMEOUT
#: How often it looks whether they have ended.
LOOK_EVERY = 0.01


def install(extension: Extension) -> None:
    kernel: Any = getattr(extension.shell, "kernel", None)
    if not extension.in_kernel or not callable(getattr(kernel, "do_shutdown", None)):
        return
    do_shutdown = kernel.do_shutdown

    async def cells_first_then_shut_down(restart: bool) -> Any:
        runner = extension.active
        if getattr(runner, "cells_running", 0):
            await _cells_ended(runner, getattr(kernel, "io_loop", None))
        # Registered now, it runs before ipykernel's own exit clean-up (registered earlier).
        atexit.register(_the_control_threads_end, kernel)
        content = do_shutdown(restart)
        return await content if inspect.isawaitable(content) else content

    extension.changes.set_attribute(kernel, "do_shutdown", cells_first_then_shut_down)


async def _cells_ended(runner: Any, kernel_loop: Any) -> None:
    """Interrupt the runner's cells; wait until they have ended and the kernel's main thread
    has run its loop once since (its reply to each cell is sent in the same step)."""
    deadline = time.monotonic() + WAIT_FOR_THE_CELLS
    _ctrl_c.interrupt_cells_at_their_next_await()
    while getattr(runner, "cells_running", 0):
        if time.monotonic() > deadline:
            return  # a cell that ignores interrupts: the shutdown goes on without it
        await asyncio.sleep(LOOK_EVERY)
    loop = getattr(kernel_loop, "asyncio_loop", None)  # tornado's IOLoop
    if loop is None:
        return
    back = concurrent.futures.Future[None]()
    try:
        loop.call_soon_threadsafe(back.set_result, None)
    except RuntimeError:  # closed: nothing more runs there
        return
    await asyncio.wait([asyncio.wrap_future(back)], timeout=deadline - time.monotonic())


def _the_control_threads_end(kernel: Any) -> None:
    """At exit, before IOPub closes: wait until the control thread, which stops after its
    last message, has announced that message's end."""
    thread = getattr(kernel, "control_thread", None)
    if thread is not None and thread.is_alive():
        thread.join(WAIT_FOR_THE_CELLS)
