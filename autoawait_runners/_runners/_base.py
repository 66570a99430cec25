"""The runner interface every built-in runner implements.

IPython's contract for a loop runner is small: a synchronous callable that takes the
coroutine of a cell and returns its result. A runner here adds a session to that: it starts
on first use, lives across cells, and :meth:`Runner.close` ends it (cancelling background
work, joining threads, closing loops). Selecting a closed runner again starts a fresh session.

Third-party runners only need the IPython contract (a callable, optionally ``close()`` and a
``__str__`` giving the name); subclassing :class:`Runner` is a convenience, not a requirement.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from .._core import _private_api
from .._core._messages import plural, say, say_failed

if TYPE_CHECKING:
    from IPython.core.interactiveshell import InteractiveShell


@dataclass
class TaskRow:
    """One task of a session, as ``%tasks`` lists it (M2); made by the runner, which knows
    its library."""

    #: The library's task object.
    task: Any
    name: str
    #: "waiting", "running", "failed" (an exception nobody retrieved yet) or "done".
    state: str
    #: time.monotonic() when the task was made, if the runner saw it being made.
    started: float | None
    #: The task's coroutine (the user's, not a wrapper of the runner's).
    coro: Any
    #: Why ``%tasks`` hides it without ``--all``: "cell", "runner", "kernel", the
    #: library's name (its own tasks); "" for background work of the session.
    hidden: str = ""
    #: How deep in the task tree (``%tasks --tree``): 0 for a flat list.
    depth: int = 0


#: A prompt_toolkit input hook, as ``%gui`` sets one (a *GUI hook*): called with a context
#: (``fileno()``, ``input_is_ready()``) while the prompt waits, it runs its toolkit's events
#: until the context's descriptor is readable, or returns at once with nothing to run.
GuiHook = Callable[[Any], None]

#: What the front end needs done in each cell's own thread and context before its code runs,
#: prepared in the calling thread (see :func:`add_cell_setup`).
CellSetup = Callable[[], Callable[[], None]]
_cell_setups: list[CellSetup] = []


def add_cell_setup(setup: CellSetup) -> Callable[[], None]:
    """Have every runner built on :class:`Runner` call ``setup()`` as a cell is handed over
    (in the thread that calls the runner, where IPython's front end has its state), and what
    it returns first thing in the cell (in the runner's thread, in the cell's context).
    Returns what removes it.

    The Jupyter glue routes output this way: ipykernel says which request a print belongs
    to by a context variable, which a cell run in another thread, or in the session's own
    context, would otherwise not have (its output, and its tasks', would go to whichever
    request the kernel handled last).
    """
    _cell_setups.append(setup)
    return lambda: _cell_setups.remove(setup) if setup in _cell_setups else None


async def _set_up_then(steps: list[Callable[[], None]], coro: Coroutine[Any, Any, Any]) -> Any:
    for step in steps:
        step()
    return await coro


def _cannot_await(coro: Coroutine[Any, Any, Any]) -> bool:
    """Whether the cell whose coroutine this is has no ``await``, ``async for`` or ``async
    with`` at top level: its source has neither word (a cell defining an ``async def``, or
    with the word in a string, is counted out too, which costs it only the faster way)."""
    source = _private_api.cell_source(coro)
    return source is not None and _AWAIT_OR_ASYNC.search(source) is None


_AWAIT_OR_ASYNC = re.compile(r"\b(?:await|async)\b")


class RunnerUnavailable(RuntimeError):
    """A runner cannot be used here; the message says why, in one line."""


class Runner(ABC):
    """A persistent loop runner: one object is one session.

    Subclasses set the class attributes and implement :meth:`_startup`, :meth:`_run_cell`,
    :meth:`_shutdown` and :meth:`_inside_cell`.
    """

    #: The name ``%autoawait NAME`` selects.
    name: ClassVar[str]
    #: The import name of the library the runner needs.
    library: ClassVar[str]
    #: The extra of ``autoawait-runners`` that installs the library, if any.
    extra: ClassVar[str | None] = None
    #: One line for ``%autoawait --list``.
    description: ClassVar[str]
    #: Whether the runner wants every cell, not only cells that contain ``await``: a
    #: persistent runner runs plain cells inside its loop too, so they can see it (R3).
    every_cell: ClassVar[bool] = True
    #: Whether :meth:`session_tasks` can give the tasks as a tree (``%tasks --tree``).
    task_tree: ClassVar[bool] = False
    #: Whether a cell that cannot await (no ``await`` or ``async`` in its source) goes to
    #: :meth:`_run_plain_cell`, which may run it without a trip through the loop.
    plain_cells_apart: ClassVar[bool] = False

    def __init__(self) -> None:
        self._started = False
        self._depth = 0
        self._close_requested = False
        #: What the ending session could not end, in a few words each; said by close().
        self._left_running: list[str] = []

    @property
    def cells_running(self) -> int:
        """How many cells this runner runs now (a cell may run another, and a kernel's
        subshells run theirs alongside)."""
        return self._depth

    # -- IPython's loop-runner contract ----------------------------------------------------

    def __call__(self, coro: Coroutine[Any, Any, Any]) -> Any:
        try:
            self.start()
        except RunnerUnavailable as exc:
            return self._without_session(coro, str(exc))
        if self._inside_cell():
            # A cell called run_cell (or a magic that does): the loop is busy with the
            # outer cell, so run the inner one the way IPython runs plain cells.
            try:
                return _private_api.pseudo_sync_runner()(coro)
            except RuntimeError:
                raise RuntimeError(
                    f"a cell run from inside a {self.name} cell cannot await "
                    "(the session loop is busy running the outer cell)"
                ) from None
        # Read before the set-up below wraps the cell's coroutine.
        plain = self.plain_cells_apart and _cannot_await(coro)
        if _cell_setups:
            coro = _set_up_then([setup() for setup in _cell_setups], coro)
        self._depth += 1
        try:
            return self._run_plain_cell(coro) if plain else self._run_cell(coro)
        finally:
            self._depth -= 1
            if self._depth == 0:
                self._after_cell()
                if self._close_requested:
                    self.close()

    def __str__(self) -> str:
        return self.name

    def __repr__(self) -> str:
        state = "running" if self._started else "closed"
        return f"<autoawait_runners {self.name} runner ({state})>"

    # -- session life cycle ----------------------------------------------------------------

    @property
    def started(self) -> bool:
        """Whether a session is live (started and not closed)."""
        return self._started

    def start(self) -> None:
        """Start a session if none is live. Raises :class:`RunnerUnavailable` on failure."""
        if not self._started:
            self._startup()
            self._started = True

    def close(self) -> None:
        """End the session: cancel background work, join threads, close the loop.

        Called from inside one of the runner's own cells (``%autoawait other`` or
        ``%unload_ext`` run as a cell), the session ends right after that cell.
        """
        if not self._started:
            return
        if self._depth > 0 or self._inside_cell():
            self._close_requested = True
            return
        self._close_requested = False
        self._started = False
        cancelled = self._shutdown()
        left, self._left_running = self._left_running, []
        if cancelled or left:
            # One line for the whole ending: what was cancelled, and what did not end.
            say(
                f"{self.name} runner closed: cancelled {plural(cancelled, 'background task')}"
                + (f"; left running: {', '.join(left)}" if left else "")
            )

    # -- prompt integration ----------------------------------------------------------------

    #: Whether the session loop runs in the thread that reads the prompt, so that between
    #: cells only the prompt's input hook runs it (:meth:`run_until_readable`).
    runs_at_the_prompt: ClassVar[bool] = False

    def run_until_readable(self, fd: int, gui: GuiHook | None) -> bool:
        """Called while the terminal prompt waits for input (in the prompt's input hook):
        run the session until ``fd`` is readable, with ``gui``, the hook of the GUI event
        loop ``%gui`` set (if any), run in the session's thread whenever the session has
        nothing to do (``_gui_wait``). Returns False, at once, when there is no session to
        run here now: the prompt then runs ``gui`` itself, as IPython does."""
        return False

    def attach(self, shell: InteractiveShell) -> None:  # noqa: B027 - optional hook
        """Called when the runner becomes the shell's active runner."""

    def detach(self, shell: InteractiveShell) -> None:  # noqa: B027 - optional hook
        """Called when the runner stops being the shell's active runner."""

    # -- for subclasses --------------------------------------------------------------------

    @abstractmethod
    def _startup(self) -> None:
        """Create the session (loop, thread...)."""

    @abstractmethod
    def _run_cell(self, coro: Coroutine[Any, Any, Any]) -> Any:
        """Run one cell to completion in the session and return its result."""

    @abstractmethod
    def _shutdown(self) -> int:
        """End the session; return how many background tasks were cancelled."""

    @abstractmethod
    def _inside_cell(self) -> bool:
        """Whether the caller is running inside this runner's loop right now."""

    def _run_plain_cell(self, coro: Coroutine[Any, Any, Any]) -> Any:
        """Run a cell that cannot await (see :attr:`plain_cells_apart`)."""
        return self._run_cell(coro)

    def _without_session(self, coro: Coroutine[Any, Any, Any], why: str) -> Any:
        """Run a cell when the session cannot be had (it could when the runner was
        selected): without a loop, as IPython runs plain cells, so that the way out (a
        magic such as ``%autoawait sync``) still works (F4)."""
        say(f"the {self.name} runner cannot run its session ({why}); this cell runs without it")
        return _private_api.pseudo_sync_runner()(coro)

    def _lost_tasks(self) -> list[str]:
        """The names of the background tasks a session that died took with it."""
        return []

    def _say_session_ended(self, exc: BaseException) -> None:
        """One report of a session that ended by itself (its loop crashed): what failed,
        where (F6), and what it took with it; the next cell starts a new one."""
        cause = exc.__cause__ if exc.__cause__ is not None else exc
        lost = self._lost_tasks()
        say_failed(
            f"the {self.name} session ended unexpectedly "
            f"({type(cause).__name__}: {cause}); the next cell starts a new one"
            + (f"; background tasks lost: {', '.join(lost)}" if lost else ""),
            cause,
        )

    def _after_cell(self) -> None:  # noqa: B027 - optional hook
        """Called after each top-level cell, before the next prompt."""

    # -- %tasks (M2): called from a cell of the session, in the loop's thread ----------------

    def session_tasks(self, *, tree: bool = False) -> list[TaskRow]:
        """The session's tasks, hidden ones included (marked), in tree order if ``tree``
        and the library has parent/child structure. Raises NotImplementedError for a runner
        that cannot list them."""
        raise NotImplementedError(f"the {self.name} runner cannot list its tasks")

    def cancel_task(self, task: Any) -> str:
        """Cancel one task the library's way; return what happened, in a few words.
        Raises ValueError (the reason) if it cannot be cancelled."""
        raise NotImplementedError(f"the {self.name} runner cannot cancel tasks")
