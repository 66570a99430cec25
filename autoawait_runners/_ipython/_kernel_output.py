"""Jupyter glue: a cell's output, and its tasks' output, go to the request that ran the cell.

ipykernel 7 tells which request a print or a display belongs to by a context variable (its
promise: output of a task goes to the cell that started it). A runner's cell runs in the
session's own context (R4), in the runner's thread for the thread-based ones: without this,
the variable there is missing or stale, and output goes to whichever request the kernel
handled last, a later cell or a widget's message. So each cell sets it first thing, in its
own context, to the request being answered; the tasks it starts copy that context, and
keep it. ipykernel 6 goes by thread instead (see ``_runners._dedicated_thread``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .._runners._base import add_cell_setup

if TYPE_CHECKING:
    from ._extension import Extension


def install(extension: Extension) -> None:
    shell: Any = extension.shell
    if not extension.in_kernel or not callable(getattr(shell, "set_thread_parent", None)):
        return

    def setup() -> Callable[[], None]:
        request = shell.get_parent()  # in the kernel's thread: the request being answered

        def in_the_cell() -> None:
            shell.set_thread_parent(request)

        return in_the_cell

    extension.changes.on_undo(add_cell_setup(setup))
