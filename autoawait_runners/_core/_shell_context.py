"""Context variables: the shell's values in the session's cells, and the cells' in the shell
(F8).

Without the extension, IPython runs a cell in its own thread's context, the *shell's
context*: what a startup file sets there (``decimal.getcontext().prec = 6``) is there in
every cell, and what a cell sets is there for the next cell, for IPython's own code between
cells, and for whatever runner comes next. A session runs its cells in a context of its own
instead (one for all its cells, R4), because the shell's cannot be entered where cells run:
in a task of the session loop, in the loop's own thread. Left at that, a value set in the
shell's context before or between cells is missing in cells (the startup file's precision:
28 digits where plain IPython gives 6), and a value set in a cell is gone after a switch of
runner or ``%unload_ext``: silently wrong numbers.

So the two are kept in step, one cell at a time (:class:`ContextsInStep`): before a cell,
what differs in the shell's context is set in the cell, first thing (after the last cell
they agreed: what differs now was set in the shell since); after it, what the cell changed
in the session's context is set in the shell's. Values are compared as objects: a value is
changed when it is not the very object they agreed on. (A decimal context changed in place,
``getcontext().prec = 6``, is the same object on both sides once they agree: nothing to
copy.) Only the outermost cell does this, in the thread that runs cells without the
extension; a cell run inside a cell is already in the session's context, and a kernel
subshell's cell runs in its own thread's context, as without the extension (ipykernel keeps
the request it answers there).

Variables that mark the session itself (:func:`session_only`) never reach the shell's
context: they would pin the ended session there, and tell the shell's own tasks (a kernel's)
they are the session's.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

_SESSION_ONLY: set[contextvars.ContextVar[Any]] = set()
_NOT_SET = object()


def session_only(var: contextvars.ContextVar[T]) -> contextvars.ContextVar[T]:
    """Mark a variable that belongs to the session's context only (see the module)."""
    _SESSION_ONLY.add(var)
    return var


class ContextsInStep:
    """The shell's context and one session's, kept in step cell by cell (see the module).

    One per session: a new session starts from the shell's context as it is then.
    """

    __slots__ = ("_agreed",)

    def __init__(self) -> None:
        #: variable -> the value both sides had when they last agreed.
        self._agreed: dict[contextvars.ContextVar[Any], Any] = {}

    def from_the_shell(self, session: contextvars.Context | None) -> Callable[[], None] | None:
        """Called in the shell's thread as a cell is handed over: what the cell must do
        first thing, in the session's context: set what differs from the shell's context
        there (a value set in the shell between cells, or a session context new since).
        None when nothing differs (most cells: nothing is added to them)."""
        shell = contextvars.copy_context()
        if session is not None and all(
            session.get(var, _NOT_SET) is value
            for var, value in shell.items()
            if var not in _SESSION_ONLY
        ):
            return None
        agreed = self._agreed

        def set_in_the_cell() -> None:
            for var, value in shell.items():
                if var in _SESSION_ONLY:
                    continue
                if var.get(_NOT_SET) is not value:
                    var.set(value)
                agreed[var] = value

        return set_in_the_cell

    def to_the_shell(self, session: contextvars.Context | None) -> None:
        """Called in the shell's thread after a cell: set in the shell's context what the
        cell changed in the session's."""
        if session is None:
            return
        agreed = self._agreed
        for var, value in session.items():
            if agreed.get(var, _NOT_SET) is not value and var not in _SESSION_ONLY:
                var.set(value)
                agreed[var] = value
