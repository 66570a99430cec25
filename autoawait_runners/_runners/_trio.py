"""The ``trio`` runner: one ``trio.run`` for the whole session, with a session nursery.

IPython's own trio runner starts a fresh ``trio.run`` for every cell: nothing started in a
cell outlives it. Here one ``trio.run`` lives in a dedicated thread for the session (the
plumbing is shared with the other threaded runners, see ``_dedicated_thread``); every cell, plain
ones too, runs as a task in it, inside a cancel scope of its own.

Why a thread, rather than guest mode on a host loop or trio in the main thread with input
read in a thread (as ``python -m trio`` does): the run keeps going while the prompt waits
and inside a Jupyter kernel alike, trio's own SIGINT handling stays out of IPython's and
prompt_toolkit's way (trio installs it only in the main thread), and the runner needs
nothing of IPython's internals. The price is the thread runner's: one hand-over per cell,
and cells do not run in the main thread. ``docs/runners.rst`` has the full reasoning.

Background work that outlives a cell goes in the session nursery,
:func:`autoawait_runners.trio_nursery`. A task there that fails has its traceback printed at
once; it does not cancel the nursery or the session. Only trio's public API is used.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import math
import select
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from .._core import _ctrl_c, _private_api
from .._core._cell import AwaitInterrupted, CellCoroutine, cancelled_before_it_ran
from .._core._loop_watch import LoopWatch
from .._core._messages import say_failed
from .._core._tracebacks import cut_to_task_code, for_the_user
from .._nesting._shim import trio_cells_nest
from ._base import GuiHook, TaskRow, cell_in, runs_cells
from ._dedicated_thread import DedicatedThreadRunner, SubmittedCell

if TYPE_CHECKING:
    import trio


# What Ctrl-C must know of trio: where its run loop sleeps, and that the handler trio.run
# installs (around embed() in a trio program) may be taken over by a cell.
_ctrl_c.know(
    _ctrl_c.LoopLibrary(
        "trio", waits_in=(_private_api.TRIO_WAITS_IN,), sigint_handlers_in=("trio.",)
    )
)


class SessionNursery:
    """The trio session's nursery: tasks started here outlive the cell that started them.

    Get it with :func:`autoawait_runners.trio_nursery` in a cell of the ``trio`` runner.
    Unlike a plain nursery, a child that fails does not cancel its siblings: its traceback
    is printed (R6) and the session goes on. The children are cancelled when the session
    ends (switching runner, ``%unload_ext``, exit).
    """

    def __init__(self, nursery: trio.Nursery, runner_name: str) -> None:
        self._nursery = nursery
        self._runner_name = runner_name
        #: Set when the session ends as asked: a child cancelled before that was lost in a
        #: crash of the run (a system task raised), and is named in ``lost``.
        self.ending = False
        self.lost: list[str] = []
        #: Each child's own cancel scope (see %tasks cancel).
        self.scopes: dict[trio.lowlevel.Task, trio.CancelScope] = {}

    @property
    def trio_nursery(self) -> trio.Nursery:
        """The trio nursery underneath."""
        return self._nursery

    @property
    def child_tasks(self) -> frozenset[trio.lowlevel.Task]:
        """The background tasks alive now."""
        return self._nursery.child_tasks

    def start_soon(self, async_fn: Callable[..., Any], *args: Any, name: object = None) -> None:
        """Start ``async_fn(*args)`` in the background, like :meth:`trio.Nursery.start_soon`."""
        self._nursery.start_soon(self._guarded, async_fn, args, name=name or async_fn)

    async def start(self, async_fn: Callable[..., Any], *args: Any, name: object = None) -> Any:
        """Start ``async_fn(*args, task_status=...)`` in the background and wait until it
        calls ``task_status.started(value)``; return that value, like
        :meth:`trio.Nursery.start` (``await trio_nursery().start(trio.serve_tcp, handler,
        0)``). An error before ``started()`` is raised here, as trio does; after it, the
        task is background work like any other (its failure is reported)."""
        return await self._nursery.start(self._guarded, async_fn, args, name=name or async_fn)

    async def _guarded(
        self, async_fn: Callable[..., Any], args: tuple[Any, ...], task_status: Any = None
    ) -> None:
        import trio

        me = trio.lowlevel.current_task()
        status = None if task_status is None else _Started(task_status)
        try:
            # A scope of its own, so that %tasks can cancel this task alone.
            with trio.CancelScope() as self.scopes[me]:
                await async_fn(*args, **({} if status is None else {"task_status": status}))
        except BaseException as exc:
            if _only_cancelled(exc):
                if not self.ending:
                    self.lost.append(getattr(async_fn, "__qualname__", None) or str(async_fn))
                raise  # the session is ending: let the nursery absorb it
            if status is not None and not status.done:
                raise  # start() raises it in the caller
            self._report(exc, async_fn)
        finally:
            self.scopes.pop(me, None)

    def _report(self, exc: BaseException, what: object) -> None:
        name = getattr(what, "__qualname__", None) or str(what)
        cut_to_task_code(exc)  # from the user's code on, not from _guarded
        say_failed(f"background task {name} of the {self._runner_name} session failed:", exc)


class _Started:
    """The ``task_status`` a task started by :meth:`SessionNursery.start` gets: trio's own,
    remembering whether ``started()`` was called."""

    def __init__(self, status: Any) -> None:
        self._status = status
        self.done = False

    def started(self, value: Any = None) -> None:
        self.done = True
        self._status.started(value)


def _only_cancelled(exc: BaseException) -> bool:
    import trio

    if isinstance(exc, BaseExceptionGroup):
        return all(_only_cancelled(inner) for inner in exc.exceptions)
    return isinstance(exc, trio.Cancelled)


def translate_cancellation(resumed: Any) -> Any:
    """What trio resumes an interrupted cell with, as the cell should see it.

    trio resumes a task by sending it an outcome; after the runner cancelled the cell's
    scope that is ``Error(Cancelled)`` at every checkpoint that is not shielded. The cell
    gets ``Error(KeyboardInterrupt)`` instead: IPython shows KeyboardInterrupt, and
    ``finally`` blocks run as for any exception.
    (``trio.Cancelled`` cannot be subclassed, so this one is a KeyboardInterrupt only:
    ``AwaitInterrupted``, whose traceback ends at the cell's await.)
    """
    import outcome

    if isinstance(resumed, outcome.Error) and _is_the_interruption(resumed.error):
        return outcome.Error(AwaitInterrupted())
    return None


def _is_the_interruption(exc: BaseException) -> bool:
    """Whether ``exc`` is the cancellation of the cell's scope (explicit), not a deadline's
    such as the one inside ``trio.sleep()`` that a shielded clean-up awaits: shields must
    hold (F3). (trio before 0.30 does not say where a cancellation comes from.)"""
    import trio

    return isinstance(exc, trio.Cancelled) and getattr(exc, "source", "explicit") == "explicit"


class TrioSession:
    """A trio runner's session, wherever its ``trio.run`` runs: in a thread of its own
    (``trio``), or in the main thread as a guest of the session's asyncio loop
    (``trio-guest``). The run's main task holds the session nursery; each cell is a system
    task of the run, in the session's one context, inside a cancel scope of its own."""

    name: ClassVar[str]
    library: ClassVar[str] = "trio"
    extra: ClassVar[str | None] = "trio"
    task_tree: ClassVar[bool] = True
    cells_in_a_session_context: ClassVar[bool] = True
    #: How many background tasks the ending session cancelled (set by _main).
    _cancelled: int

    def __init__(self) -> None:
        super().__init__()
        _sessions.append(self)
        self._token: trio.lowlevel.TrioToken | None = None
        self._context: contextvars.Context | None = None
        self._nursery: SessionNursery | None = None
        self._stop_requested: trio.Event | None = None
        self._trios_own: set[trio.lowlevel.Task] = set()
        self._born: dict[trio.lowlevel.Task, float] = {}  # task -> when spawned, for %tasks
        #: The run's root task, whose tree the loop watch reads from its thread (B3).
        self._root_task: trio.lowlevel.Task | None = None

    def _session_context(self) -> contextvars.Context | None:
        return self._context

    @property
    def nursery(self) -> SessionNursery | None:
        """The session nursery, or None when the runner is closed."""
        return self._nursery

    async def _main(self, ready: Callable[[], None]) -> None:
        import trio

        self._token = trio.lowlevel.current_trio_token()
        self._root_task = trio.lowlevel.current_root_task()
        # Every cell runs in this one context, so context variables set in one cell are
        # seen by the next (R4); tasks a cell starts copy it, as usual.
        self._context = contextvars.copy_context()
        self._stop_requested = trio.Event()
        trios_own = self._trios_own = set(_system_tasks())  # this one, and trio's own
        trio.lowlevel.add_instrument(_births(self._born))
        async with trio.open_nursery() as background:
            self._nursery = SessionNursery(background, self.name)
            ready()
            await self._stop_requested.wait()
            self._nursery.ending = True
            # System tasks that cells spawned end with the run: they count too (R8).
            spawned = [
                task
                for task in _system_tasks()
                if task not in trios_own and task.name != CELL_TASK_NAME
            ]
            self._cancelled = len(background.child_tasks) + len(spawned)
            background.cancel_scope.cancel()
        # Cells still running (the one that closed the session) are system tasks: trio
        # cancels them when this, the main task, returns.

    def _make_cell(self, coro: Coroutine[Any, Any, Any]) -> CellCoroutine[Any]:
        return CellCoroutine(coro, translate_cancellation, level_triggered=True)

    def _submit(self, submitted: SubmittedCell) -> None:
        import trio

        token, context = self._token, self._context
        assert token is not None and context is not None
        scope = trio.CancelScope()  # may be cancelled before the cell even starts
        submitted.cancel = lambda: token.run_sync_soon(scope.cancel)
        # A system task, because only those take a context; _run_cell_task never raises.
        token.run_sync_soon(
            lambda: trio.lowlevel.spawn_system_task(
                _cell_task, submitted, scope, context=context, name=CELL_TASK_NAME
            )
        )

    def _request_stop(self) -> None:
        import trio

        token, stop = self._token, self._stop_requested
        assert token is not None and stop is not None
        with contextlib.suppress(trio.RunFinishedError):
            token.run_sync_soon(stop.set)

    def session_tasks(self, *, tree: bool = False) -> list[TaskRow]:
        import trio

        nursery = self._nursery
        if nursery is None:
            return []
        current = trio.lowlevel.current_task()
        rows: list[TaskRow] = []

        def add(task: trio.lowlevel.Task, hidden: str, depth: int) -> None:
            coro = task.coro
            if task in nursery.scopes and coro.cr_await is not None:
                coro = coro.cr_await  # the user's coroutine, not _guarded
            state = "running" if task is current else "waiting"
            # A cell's task is in the session's context: the newest cell's mark is there.
            cell = None if task.name == CELL_TASK_NAME else cell_in(task.context)
            rows.append(
                TaskRow(
                    task, task.name, state, self._born.get(task), coro, hidden, depth, cell=cell
                )
            )
            if tree:
                for child_nursery in task.child_nurseries:
                    if child_nursery is nursery.trio_nursery:
                        continue  # the session nursery's tasks are the tree's roots
                    for child in _oldest_first(child_nursery.child_tasks, self._born):
                        add(child, hidden, depth + 1)

        for task in _oldest_first(nursery.child_tasks, self._born):
            add(task, "", 0)
        for task in _oldest_first(_system_tasks(), self._born):
            if task.name == CELL_TASK_NAME:
                # The cell asking; another cell's task is one given up on (it still runs).
                add(task, "cell" if task is current else "", 0)
            elif task in self._trios_own:
                add(task, "runner" if task.coro.cr_code is self._main.__code__ else "trio", 0)
            else:
                add(task, "", 0)  # a system task a cell spawned
        return rows

    def start_background(
        self,
        coro: Coroutine[Any, Any, Any],
        *,
        name: str,
        context: contextvars.Context,
    ) -> None:
        nursery = self.nursery
        assert nursery is not None
        # trio's child copies the context it is started in.
        context.run(nursery.start_soon, lambda: coro, name=name)

    def cancel_task(self, task: Any) -> str:
        nursery = self._nursery
        scope = nursery.scopes.get(task) if nursery is not None else None
        if scope is None:
            raise ValueError(
                "trio cancels scopes, not tasks: only tasks of the session nursery can be "
                "cancelled one by one"
            )
        scope.cancel()
        return "cancelled: its clean-up runs as the loop goes on"

    def _pause(self, seconds: float) -> Awaitable[None]:
        import trio

        return trio.sleep(seconds)

    def _lost_tasks(self) -> list[str]:
        return list(self._nursery.lost) if self._nursery is not None else []

    def _tasks_for_the_watch(self) -> list[tuple[str, Any]]:
        """Every task of the run, down its nurseries (from the watch's thread: trio's own
        ``current_root_task`` works only in the run's)."""
        found: list[tuple[str, Any]] = []
        waiting = [self._root_task] if self._root_task is not None else []
        while waiting:
            task = waiting.pop()
            found.append((task.name, task.coro))
            for nursery in list(task.child_nurseries):
                waiting.extend(list(nursery.child_tasks))
        return found

    def _reset(self) -> None:
        self._token = self._context = self._nursery = self._stop_requested = None
        self._root_task = None
        # Nothing of the ended run is kept (F8): the runner object lives on, for the next.
        self._trios_own = set()
        self._born = {}


class TrioRunner(TrioSession, DedicatedThreadRunner):
    """One ``trio.run`` for the session, in its own thread, with a session nursery."""

    name = "trio"
    description = "one trio.run for the session, in its own thread; a session nursery"

    def _serve(self, ready: Callable[[], None]) -> None:
        import trio

        # The loop watch (B3): trio says when its run waits for I/O and timers.
        watch = self._start_watching(threading.get_ident())
        trio.run(self._main, ready, instruments=[_watch_marks(watch)])

    def call_soon_where_cells_run(self, callback: Callable[[], None]) -> bool:
        import trio

        token = self._token
        if token is None or self._inside_cell():
            return False
        try:
            token.run_sync_soon(callback)
        except trio.RunFinishedError:
            return False
        return True

    def _wait_in_gui(self, gui: GuiHook, fds: Sequence[int]) -> Coroutine[Any, Any, None]:
        return _until_readable(gui, fds)


async def _until_readable(gui: GuiHook, fds: Sequence[int]) -> None:
    """Run the session until one of ``fds`` is readable (the prompt has input), the GUI
    waiting in trio's place (``_gui_wait``): once every other task waits, trio would wait
    for I/O until its next deadline; the GUI runs until that wait would have ended."""
    import trio
    import trio.testing

    from ._gui_wait import gui_while, in_turns

    io_fd = _private_api.trio_io_fd()
    if io_fd is None:
        await in_turns(gui, fds, lambda: trio.sleep(0))
        return
    async with trio.open_nursery() as nursery:

        async def end_when_readable(fd: int) -> None:
            await trio.lowlevel.wait_readable(fd)
            nursery.cancel_scope.cancel()

        for fd in fds:
            nursery.start_soon(end_when_readable, fd)
        while True:
            # Even while a task keeps trio busy, the prompt's input ends this at once.
            await trio.testing.wait_all_tasks_blocked()
            seconds = trio.lowlevel.current_statistics().seconds_to_next_deadline
            timeout = None if seconds == math.inf else max(0.0, seconds)
            gui_while(gui, functools.partial(select.select, [io_fd], [], [], timeout))


#: Every trio session object, for :func:`trio_nursery`.
_sessions: list[TrioSession] = []

#: The name of a cell's task (a system task, as those a cell may spawn itself).
CELL_TASK_NAME = "autoawait_runners cell"


def _oldest_first(tasks: Any, born: dict[trio.lowlevel.Task, float]) -> list[trio.lowlevel.Task]:
    return sorted(tasks, key=lambda task: born.get(task, 0.0))


def _births(born: dict[trio.lowlevel.Task, float]) -> trio.abc.Instrument:
    """A trio instrument that notes when each task was spawned (for %tasks' age)."""
    import trio

    class Births(trio.abc.Instrument):
        def task_spawned(self, task: trio.lowlevel.Task) -> None:
            born[task] = time.monotonic()

        def task_exited(self, task: trio.lowlevel.Task) -> None:
            born.pop(task, None)

    return Births()


def _watch_marks(watch: LoopWatch) -> trio.abc.Instrument:
    """A trio instrument that marks the loop watch around the run's wait for I/O and
    timers (B3)."""
    import trio

    class WatchMarks(trio.abc.Instrument):
        def before_io_wait(self, timeout: float) -> None:
            watch.waiting()

        def after_io_wait(self, timeout: float) -> None:
            watch.woke()

    return WatchMarks()


def _system_tasks() -> list[trio.lowlevel.Task]:
    import trio

    root = trio.lowlevel.current_root_task()
    assert root is not None
    return [task for nursery in root.child_nurseries for task in nursery.child_tasks]


def _cell_task(submitted: SubmittedCell, scope: trio.CancelScope) -> Coroutine[Any, Any, None]:
    """The cell's task: in a portal (see ``_portal``) with ``%nest trio on``, so that
    ``trio.run()`` called from the cell's synchronous code runs in the cell's task, and for
    a cell that runs cells (``%run script.ipy``), so that those can await in its task."""
    coro = _run_cell_task(submitted, scope)
    if not (trio_cells_nest() or runs_cells(submitted.cell)):
        return coro
    from .._nesting._portal import Portal

    cell = submitted.cell
    assert isinstance(cell, CellCoroutine)

    def interrupted(exc: BaseException) -> BaseException:
        return KeyboardInterrupt() if cell.pending_interrupt and _is_the_interruption(exc) else exc

    return Portal(coro, cell=cell, error_hook=interrupted)


async def _run_cell_task(submitted: SubmittedCell, scope: trio.CancelScope) -> None:
    """A cell, as a task of the session: whatever happens, it settles ``submitted`` and
    raises nothing (an exception from a system task would end the run)."""
    try:
        with scope:
            if scope.cancel_called:
                # Interrupted before it started (its loop was held by a task that does not
                # yield): it must not run, checkpoint or not.
                submitted.cell.close()
                submitted.fail(cancelled_before_it_ran())
                return
            value = await submitted.cell
            submitted.succeed(value)
            return
        submitted.fail(KeyboardInterrupt())  # cancelled outside the user's code
    except BaseException as exc:
        submitted.fail(exc)


_runner = TrioRunner()


def get_runner() -> TrioRunner:
    """Entry point: the session's trio runner (one object per process)."""
    return _runner


def trio_nursery() -> SessionNursery:
    """The session nursery of the active ``trio`` or ``trio-guest`` runner: start background
    tasks in it.

    Call it in a cell of either runner::

        nursery = autoawait_runners.trio_nursery()
        nursery.start_soon(ticker)

    Raises RuntimeError when neither has a live session.
    """
    for session in _sessions:
        if session.nursery is not None:
            return session.nursery
    raise for_the_user(
        RuntimeError(
            "no trio session is running: select one with %autoawait trio or %autoawait trio-guest"
        )
    )
