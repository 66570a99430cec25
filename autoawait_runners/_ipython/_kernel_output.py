"""Jupyter glue: a cell's output, and its tasks' and threads' output, go to the request that
ran the cell, as ipykernel promises (K5).

Both ipykernel 6 and 7 tell which request a print or a display belongs to by a context
variable; a task copies its creator's context, so its output goes to the cell that started
it. A runner's cell runs in the session's own context (R4), in the runner's thread for the
thread-based ones: without this, the variable there is missing or stale, and output goes to
whichever request the kernel handled last, a later cell or a widget's message. So each cell
sets it first thing, in its own context, to the request being answered; the tasks it starts
copy that context, and keep it. ipykernel 7 sets it with ``set_thread_parent``; 6 with its
streams' ``set_parent``.

A thread has a context of its own. ipykernel 6 routes a thread's output by the thread it was
made in: one the kernel's thread made goes to the request the kernel was answering then,
one made by another thread goes where that thread's goes (7 goes by the context only). A
thread a cell makes in a runner's thread would follow that thread, which goes to the current
cell: a thread started in one cell would print under the next ones. So a thread made in the
runner's thread counts as made in the kernel's, as the cell would have made it without the
extension: its output goes to the cell running when it starts.
"""

from __future__ import annotations

import contextvars
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .._core import _private_api
from .._runners._base import add_cell_setup

if TYPE_CHECKING:
    from ._extension import Extension


def install(extension: Extension) -> None:
    shell: Any = extension.shell
    if not extension.in_kernel:
        return
    if callable(getattr(shell, "set_thread_parent", None)):  # ipykernel 7

        def setup() -> Callable[[], None]:
            request = shell.get_parent()  # in the kernel's thread: the request being answered

            def in_the_cell() -> None:
                shell.set_thread_parent(request)

            return in_the_cell

    elif callable(getattr(shell, "get_parent", None)):  # ipykernel 6

        def setup() -> Callable[[], None]:
            request = shell.get_parent()

            def in_the_cell() -> None:
                for stream in (sys.stdout, sys.stderr):
                    set_parent = getattr(stream, "set_parent", None)
                    if callable(set_parent):  # an OutStream, not a capture's
                        set_parent(request)
                _request.set(request)

            return in_the_cell

        _threads_made_in_cells_follow_them(extension)
        _displays_follow_the_cell(extension)
    else:
        return
    extension.changes.on_undo(add_cell_setup(setup))


#: ipykernel 6: the request the cell answers, in the cell's context (and its tasks').
_request: contextvars.ContextVar[Any] = contextvars.ContextVar("autoawait_runners_request")


def _displays_follow_the_cell(extension: Extension) -> None:
    """ipykernel 6: a display goes to the request of the context it is made in.

    ipykernel 6 sends a display to the request its display publisher was last told of (one
    for the whole kernel; 7 keeps it per context): a task, or a ``%%background`` cell, that
    displays after a later cell has started would display in that cell. So a display made in
    a context whose request is not the publisher's is sent as that request's: the publisher
    is told of it for the call, and told back after, if no one has told it of another
    meanwhile (the kernel's thread, answering a new request)."""
    from jupyter_client.session import extract_header

    publisher: Any = extension.shell.display_pub

    def routed(found: Callable[..., Any]) -> Callable[..., Any]:
        def to_the_cells_request(*args: Any, **kwargs: Any) -> Any:
            request = _request.get(None)
            kernels = publisher.parent_header
            if request is None:
                return found(*args, **kwargs)
            header = extract_header(request)
            if header.get("msg_id") == kernels.get("msg_id"):
                return found(*args, **kwargs)
            publisher.parent_header = header
            try:
                return found(*args, **kwargs)
            finally:
                if publisher.parent_header.get("msg_id") == header.get("msg_id"):
                    publisher.parent_header = kernels

        return to_the_cells_request

    for name in ("publish", "clear_output"):
        extension.changes.set_attribute(publisher, name, routed(getattr(publisher, name)))


def _threads_made_in_cells_follow_them(extension: Extension) -> None:
    """ipykernel 6: a thread made in the runner's thread counts as made in the kernel's."""
    kernels_thread = threading.main_thread().ident
    assert kernels_thread is not None
    run_found = threading.Thread.run  # ipykernel 6's hook, which calls Thread.run

    def run(thread: threading.Thread) -> None:
        made_in = _private_api.thread_made_in(thread)
        cells_thread = getattr(getattr(extension.active, "thread", None), "ident", None)
        if made_in is not None and made_in == cells_thread:
            _private_api.say_thread_made_in(thread, kernels_thread)
        run_found(thread)

    extension.changes.set_attribute(threading.Thread, "run", run)
