"""The runner interface every built-in runner implements.

IPython's contract for a loop runner is small: a synchronous callable that takes the
coroutine of a cell and returns its result. A runner here adds a session to that: it starts
on first use, lives across cells, and :meth:`Runner.close` ends it (cancelling background
work, joining threads, closing loops). Selecting a closed runner again starts a fresh session.

Third-party runners only need the IPython contract (a callable, optionally ``close()`` and a
``__str__`` giving the name); subclassing :class:`Runner` is a convenience, not a requirement.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import re
import time
import weakref
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from .._core import _private_api
from .._core._cell import CellCoroutine
from .._core._loop_watch import LoopWatch
from .._core._messages import plural, say, say_failed
from .._core._shell_context import ContextsInStep, session_only
from .._core._tracebacks import for_the_user

if TYPE_CHECKING:
    from IPython.core.interactiveshell import InteractiveShell


@dataclass(frozen=True, slots=True)
class CellMark:
    """The cell a task belongs to (B2): the one whose code started it, directly or through
    tasks it started. Set in each cell's context as the cell starts (:func:`mark_cell`);
    tasks copy their creator's context, and with it the mark."""

    #: The cell's execution count, its ``In [n]``.
    number: int
    #: The frontend's id of the cell (Jupyter's ``cellId``), the same for each run of it;
    #: "" where none is sent (a terminal).
    cell_id: str = ""

    def __str__(self) -> str:
        return f"In [{self.number}]"


#: The mark of the cell whose code runs (or, in a task's context, started it). Session
#: only: in the shell's context it would mark a kernel's own tasks as a cell's.
_cell_mark: contextvars.ContextVar[CellMark | None] = session_only(
    contextvars.ContextVar("autoawait_runners_cell", default=None)
)


def mark_cell(mark: CellMark) -> None:
    """Mark the running cell's context with ``mark``: first thing in each cell (the glue's
    cell setup), and in the context of anything made to stand for a cell."""
    _cell_mark.set(mark)


def current_cell() -> CellMark | None:
    """The cell the running code belongs to, or None (code the session's cells did not
    start: the runner's own, a kernel's)."""
    return _cell_mark.get()


def cell_in(context: contextvars.Context) -> CellMark | None:
    """The cell marked in ``context`` (a task's): the cell the task belongs to."""
    return context.get(_cell_mark)


def cell_of(row: TaskRow) -> str:
    """``In [5]``, the cell a task of ``%tasks`` belongs to; "" when it is not known."""
    return "" if row.cell is None else str(row.cell)


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
    #: The library the task is of, where a session has tasks of two (trio-guest: trio's,
    #: and its host loop's asyncio tasks); "": the runner's library.
    library: str = ""
    #: The cell the task belongs to (B2), if the session knows it.
    cell: CellMark | None = None


#: A prompt_toolkit input hook, as ``%gui`` sets one (a *GUI hook*): called with a context
#: (``fileno()``, ``input_is_ready()``) while the prompt waits, it runs its toolkit's events
#: until the context's descriptor is readable, or returns at once with nothing to run.
GuiHook = Callable[[Any], None]

#: What the front end needs done in each cell's own thread and context before its code runs,
#: prepared in the calling thread (see :func:`add_cell_setup`); what the step returns, if
#: anything, the cell awaits before its code.
CellStep = Callable[[], Awaitable[None] | None]
CellSetup = Callable[[], CellStep]
_cell_setups: list[CellSetup] = []


def add_cell_setup(setup: CellSetup) -> Callable[[], None]:
    """Have every runner built on :class:`Runner` call ``setup()`` as a cell is handed over
    (in the thread that calls the runner, where IPython's front end has its state), and what
    it returns first thing in the cell (in the runner's thread, in the cell's context), and,
    if that returns an awaitable (of the runner's library), awaits it before the cell's
    code. Returns what removes it. A step that may return an awaitable says so
    (:func:`awaits_first`): the cell then runs as one that awaits.

    The Jupyter glue routes output this way: ipykernel says which request a print belongs
    to by a context variable, which a cell run in another thread, or in the session's own
    context, would otherwise not have (its output, and its tasks', would go to whichever
    request the kernel handled last).
    """
    _cell_setups.append(setup)
    return lambda: _cell_setups.remove(setup) if setup in _cell_setups else None


def awaits_first(step: CellStep) -> CellStep:
    """Mark a cell's step as one that may return something to await (see
    :func:`add_cell_setup`)."""
    step.awaits = True  # type: ignore[attr-defined]
    return step


def _not_translated(resumed: Any) -> None:
    """The library delivers the interruption itself (curio throws the runner's own class)."""
    return None


async def _set_up_then(steps: list[CellStep], coro: Coroutine[Any, Any, Any]) -> Any:
    for step in steps:
        then = step()
        if then is not None:
            await then
    return await coro


def _cannot_await(source: str | None) -> bool:
    """Whether the cell of this source (None: unknown) has no ``await``, ``async for`` or
    ``async with`` at top level: its source has neither word (a cell defining an ``async
    def``, or with the word in a string, is counted out too, which costs it only the faster
    way)."""
    return source is not None and _AWAIT_OR_ASYNC.search(source) is None


_AWAIT_OR_ASYNC = re.compile(r"\b(?:await|async)\b")

#: What in a cell's source runs other cells, inside it: ``%run`` of an ``.ipy`` file or a
#: notebook, ``%rerun``, ``%macro``, ``get_ipython().run_cell()``, a cell magic's body.
_RUNS_CELLS = re.compile(r"\brun_cell(?:_magic)?\b|\brun_line_magic\(\s*['\"](?:run|rerun|macro)\b")
#: The coroutines handed to runners of cells that run cells (held weakly): see runs_cells.
_cells_that_run_cells: weakref.WeakSet[Coroutine[Any, Any, Any]] = weakref.WeakSet()


def runs_cells(cell: CellCoroutine[Any]) -> bool:
    """Whether the cell may run other cells inside it (``%run script.ipy``): those can
    await only through a portal of the cell's task (a runner whose loop cannot be parked
    in: trio, curio, uvloop), which the runner then gives it. Told from the source, so that
    the other cells pay nothing for it."""
    return cell.cell_code in _cells_that_run_cells


def in_a_kernel(shell: Any) -> bool:
    """Whether the shell is a Jupyter kernel's (ipykernel awaits cells on its own loop)."""
    return type(shell).__module__.startswith("ipykernel.")


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
    #: Whether cells run in a context of the session's (:meth:`_session_context`), kept in
    #: step with the shell's (``_core._shell_context``).
    cells_in_a_session_context: ClassVar[bool] = False

    def __init__(self) -> None:
        self._started = False
        self._depth = 0
        self._close_requested = False
        self._contexts = ContextsInStep()
        #: What the ending session could not end, in a few words each; said by close().
        self._left_running: list[str] = []
        #: The watch on the session loop (B3): made where the loop starts, closed with it.
        self._watch: LoopWatch | None = None

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
            return self._run_inner_cell(coro)
        # Read before the set-up below wraps the cell's coroutine.
        source = _private_api.cell_source(coro)
        cell_runs_cells = source is not None and _RUNS_CELLS.search(source) is not None
        steps = [setup() for setup in _cell_setups]
        plain = (
            self.plain_cells_apart
            and _cannot_await(source)
            and not any(getattr(step, "awaits", False) for step in steps)
        )
        # The outermost cell only: a cell run inside a cell is in the session's context.
        in_step = (
            self.cells_in_a_session_context
            and self._depth == 0
            and not self._cell_runs_in_the_shells_context()
        )
        if in_step:
            from_the_shell = self._contexts.from_the_shell(self._session_context())
            if from_the_shell is not None:
                steps.insert(0, from_the_shell)  # a kernel's own setting comes after
        if steps:
            coro = _set_up_then(steps, coro)
        if cell_runs_cells:
            _cells_that_run_cells.add(coro)
        self._depth += 1
        watch = self._watch
        if watch is not None and self._depth == 1:
            watch.cells_begin()
        try:
            return self._run_plain_cell(coro) if plain else self._run_cell(coro)
        finally:
            self._depth -= 1
            if in_step:
                self._contexts.to_the_shell(self._session_context())
            if self._depth == 0:
                self._after_cell()
                watch = self._watch  # the cell may have started the session (and its watch)
                if watch is not None:
                    watch.cells_end()
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
            self._contexts = ContextsInStep()  # a new session starts from the shell's context

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
        try:
            cancelled = self._shutdown()
        finally:
            self._stop_watching()
        self._contexts = ContextsInStep()  # nothing of the ended session is kept (F8)
        left, self._left_running = self._left_running, []
        if cancelled or left:
            # One line for the whole ending: what was cancelled, and what did not end.
            say(
                f"{self.name} runner closed: cancelled {plural(cancelled, 'background task')}"
                + (f"; left running: {', '.join(left)}" if left else "")
            )

    # -- the loop watch (B3) ---------------------------------------------------------------

    def _start_watching(
        self,
        thread_id: int,
        heartbeat: Callable[[Callable[[], None]], Any] | None = None,
    ) -> LoopWatch:
        """Start the watch on the session loop, which runs in ``thread_id``; the runner then
        marks the loop's waits (``LoopWatch.waiting``/``woke``), or gives a ``heartbeat``
        where it cannot. A watch of an earlier session (one that died) is ended first."""
        self._stop_watching()
        watch = LoopWatch(self.name, thread_id, self._tasks_for_the_watch, heartbeat)
        self._watch = watch
        if self._depth > 0:
            watch.cells_begin()
        return watch.start()

    def _stop_watching(self) -> None:
        watch, self._watch = self._watch, None
        if watch is not None:
            watch.close()

    def _tasks_for_the_watch(self) -> list[tuple[str, Any]]:
        """The session's tasks as (name, coroutine the task runs) pairs, read from the
        watch's thread while the loop is held (what cannot be read safely is left out)."""
        return []

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

    def call_soon_where_cells_run(self, callback: Callable[[], None]) -> bool:
        """Have ``callback()`` run soon in the thread this runner's cells run in, between
        two steps of its loop, where the cells' library lets plain functions touch its
        objects (an asyncio future's ``set_result``, a trio ``Event.set``); thread-safe.
        False when the caller should run it itself: the cells run in the caller's thread
        anyway, or nothing runs there now (no session), or their library has no such place
        (curio's objects are awaited, not set from a function).

        The Jupyter glue runs a comm's callbacks this way while a cell runs (K4): on stock
        ipykernel cells and callbacks share a thread, and code written for it relies on
        that."""
        return False

    def _run_plain_cell(self, coro: Coroutine[Any, Any, Any]) -> Any:
        """Run a cell that cannot await (see :attr:`plain_cells_apart`)."""
        return self._run_cell(coro)

    def _run_inner_cell(self, coro: Coroutine[Any, Any, Any]) -> Any:
        """Run a cell that a cell of this runner runs (``%run script.ipy``, a notebook,
        ``run_cell``), in the outer cell's thread, while the outer cell waits for it.

        Without the extension such a cell runs as any cell does: awaiting, if it awaits.
        Here the session loop is busy with the outer cell, so one that awaits waits as a
        nested call: through the outer cell's portal (given to cells that run cells, see
        :func:`runs_cells`), or, on an asyncio loop, parked in it. One that does not await
        runs as IPython runs a plain cell.
        """
        if _cannot_await(_private_api.cell_source(coro)):
            return _private_api.pseudo_sync_runner()(coro)
        from .._nesting._portal import current_portal

        portal = current_portal()
        if portal is not None:
            return portal.await_(self._make_inner_cell(coro, portal.cell))
        loop = _private_api.running_loop()
        if self.library == "asyncio" and isinstance(loop, asyncio.BaseEventLoop):
            from .._core._nested_call import waiter_of
            from .._nesting._parking import run_on_running_loop

            outer = waiter_of(asyncio.current_task(loop))
            return run_on_running_loop(loop, self._make_inner_cell(coro, outer))
        coro.close()
        raise for_the_user(
            RuntimeError(
                f"a cell run from inside a {self.name} cell can await only when the outer cell "
                "runs it itself (%run, run_cell): run it from a cell of its own"
            )
        )

    def _make_cell(self, coro: Coroutine[Any, Any, Any]) -> CellCoroutine[Any]:
        """Wrap a cell's coroutine so that cancellation reaches it as an interruption (the
        library's cancellation translated, where it is not one already)."""
        return CellCoroutine(coro, _not_translated)

    def _make_inner_cell(self, coro: Coroutine[Any, Any, Any], outer: Any) -> CellCoroutine[Any]:
        """A cell run inside ``outer`` (a :class:`CellCoroutine`, or None if unknown): its
        code sees Ctrl-C, which interrupts the outer cell, as its own interruption."""
        inner = self._make_cell(coro)
        if isinstance(outer, CellCoroutine):
            inner.outer = outer
        return inner

    def _session_context(self) -> contextvars.Context | None:
        """The context the session's cells run in (:attr:`cells_in_a_session_context`), or
        None while there is none yet (the session makes it at its first cell)."""
        return None

    def _cell_runs_in_the_shells_context(self) -> bool:
        """Whether the cell about to run runs in the shell's context, not the session's (a
        kernel subshell's cell, on its own thread's loop, as ipykernel runs it): nothing to
        keep in step then, and the shell's context must not be given the session's values
        (ipykernel keeps a subshell's parent message in it)."""
        return False

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

    # -- %%background (B1): called from a cell of the session, in the loop's thread --------

    def start_background(
        self,
        coro: Coroutine[Any, Any, Any],
        *,
        name: str,
        context: contextvars.Context,
    ) -> None:
        """Start ``coro`` as a task of the session named ``name``, its steps run in
        ``context`` (the cell's). Raises :class:`RunnerUnavailable` (why, in one line) for
        a runner whose session does not run between cells."""
        coro.close()
        raise RunnerUnavailable(
            f"the {self.name} runner keeps no session loop running between cells"
        )

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

    # -- c.AutoawaitRunners.rerun (B2): called from a cell, before its code ----------------

    async def end_tasks(self, tasks: list[Any], timeout: float) -> list[Any]:
        """Cancel ``tasks`` the library's way and wait, at most ``timeout`` seconds, for
        them to end, their clean-up run. Returns those still running then (those that
        cannot be cancelled too). Awaited in a cell of the session, in its loop, before the
        cell's code: what the tasks do as they end comes first, under every runner."""
        for task in tasks:
            with contextlib.suppress(ValueError):
                await self._cancel_from_a_cell(task)
        deadline = time.monotonic() + timeout
        wanted = {id(task) for task in tasks}
        pause = 0.0  # the first pause lets the cancellations be delivered
        while True:
            alive = [
                row.task
                for row in self.session_tasks()
                if id(row.task) in wanted and row.state in ("waiting", "running")
            ]
            if not alive or time.monotonic() >= deadline:
                return alive
            await self._pause(pause)
            pause = 0.01

    async def _cancel_from_a_cell(self, task: Any) -> None:
        """Cancel ``task`` from a cell of the session (:meth:`end_tasks`)."""
        self.cancel_task(task)

    def _pause(self, seconds: float) -> Awaitable[None]:
        """The library's sleep, for a cell of the session to await."""
        raise NotImplementedError(f"the {self.name} runner cannot end tasks")
