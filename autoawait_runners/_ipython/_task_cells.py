"""Tasks belong to cells (B2): each cell marks its context with its ``In [n]`` (and, in
Jupyter, the frontend's ``cellId``), and a notebook cell run again meets the tasks its
earlier runs left alive as ``c.AutoawaitRunners.rerun`` says.

The mark is a context variable (``_runners._base.mark_cell``), set first thing in each
cell, in the cell's own context, by a cell setup: every task copies its creator's context,
so a task started by a task of cell 5 belongs to cell 5 too, under every runner and for
every library, whichever cell runs when it is made. The runners read it where they see
tasks made (asyncio: the session's task factory; trio: ``Task.context``; curio: the
session's task class) and give it in ``%tasks``' rows (``TaskRow.cell``).

A run again is told by its ``cellId`` (sent by JupyterLab and Notebook 7 in the execute
request's metadata); a terminal sends none, and each input is a new cell there. Only a
``cellId`` seen before costs anything: its earlier runs' tasks are looked for in the cell,
before its code, where the session's tasks can be listed and cancelled in the library's
way; with 'cancel', the cell waits (at most the shutdown timeout) for them to end.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

from .._core._messages import SHUTDOWN_TIMEOUT, plural, say
from .._runners._base import CellMark, CellStep, TaskRow, add_cell_setup, awaits_first, mark_cell

if TYPE_CHECKING:
    from ._extension import Extension


def install(extension: Extension) -> None:
    shell: Any = extension.shell
    kernel = getattr(shell, "kernel", None) if extension.in_kernel else None
    # ipykernel 6 and 7: the request being answered, in the kernel's thread.
    request_of = getattr(kernel, "get_parent", None)
    seen: set[str] = set()  # the cellIds run so far

    def setup() -> CellStep:
        cell_id = ""
        if request_of is not None:
            metadata = (request_of("shell") or {}).get("metadata") or {}
            found = metadata.get("cellId")
            cell_id = found if isinstance(found, str) else ""
        mark = CellMark(shell.execution_count, cell_id)
        if not cell_id or cell_id not in seen:
            if cell_id:
                seen.add(cell_id)
            return lambda: mark_cell(mark)
        mode, runner = extension.config.rerun, extension.active
        if mode == "keep":
            return lambda: mark_cell(mark)

        def marked_after_earlier_runs() -> Awaitable[None] | None:
            mark_cell(mark)
            return _after_earlier_runs(runner, mark, mode)

        return awaits_first(marked_after_earlier_runs)

    extension.changes.on_undo(add_cell_setup(setup))


def _after_earlier_runs(runner: Any, mark: CellMark, mode: str) -> Awaitable[None] | None:
    """In the cell run again, before its code: what ``rerun`` says for the tasks its earlier
    runs left alive."""
    try:
        rows = runner.session_tasks()
    except (AttributeError, NotImplementedError):
        return None  # not one of the extension's sessions: nothing to look at
    left = [row for row in rows if _of_an_earlier_run(row, mark)]
    if not left:
        return None
    names = ", ".join(f"{_name(row)} ({row.cell})" for row in left)
    if mode == "warn":
        say(
            f"this cell's earlier runs left {plural(len(left), 'task')} running: {names}; "
            "see c.AutoawaitRunners.rerun"
        )
        return None
    return _ended(runner, left)


async def _ended(runner: Any, rows: list[TaskRow]) -> None:
    alive = await runner.end_tasks([row.task for row in rows], SHUTDOWN_TIMEOUT)
    if alive:
        still = ", ".join(f"{_name(row)} ({row.cell})" for row in rows if row.task in alive)
        say(
            f"{plural(len(alive), 'task')} of this cell's earlier runs still "
            f"running {SHUTDOWN_TIMEOUT:g} s after cancellation: {still}"
        )


def _of_an_earlier_run(row: TaskRow, mark: CellMark) -> bool:
    cell = row.cell
    return (
        cell is not None
        and cell.cell_id == mark.cell_id
        and cell != mark
        and not row.hidden
        and row.state in ("waiting", "running")
    )


def _name(row: TaskRow) -> str:
    """The task's name, or its coroutine's where the name is asyncio's ``Task-N``."""
    name = row.name if row.name.isprintable() else repr(row.name)[1:-1]
    if re.fullmatch(r"Task-\d+|None", name):
        return str(getattr(row.coro, "__qualname__", type(row.coro).__name__)) + "()"
    return name
